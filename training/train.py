"""The paper's training recipe, top to bottom: data, model, loop, validation, snapshots, ensembles.

Run with ``roadnet train --config CONFIG --data DIR --out RUN_DIR``; under ``torchrun`` it trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU). The run folder gets:

- ``split.json``: the per-image train/validation split (fixed by the config's seed);
- ``metrics.jsonl``: one line per epoch (train loss, lr, raw and EMA validation scores);
- ``curves.png``: loss, mIoU and lr per epoch;
- ``last.pt``: the checkpoint ``--resume`` continues from (arch, kwargs, config, normalisation, step,
  raw and EMA weights, optimiser, plateau state);
- ``snapshots/epoch-NNN.pt``: raw and EMA weights at the end of each cyclic-lr cycle;
- ``final.pt`` and ``final.json``: the averaged snapshots (BN recomputed) and the Table 1 row
  (single model, EMA, CLR snapshot average; mIoU on the validation split).

:func:`train` reads as the recipe: set up the processes, the data and the model, run the epochs, then
score the ensembles. Each step below is one function; the state a checkpoint holds is :class:`_State`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from models import create_model
from roadnet.errors import InputError
from training.augment import AugmentConfig
from training.config import TrainConfig
from training.data import Pair, PatchDataset, channel_stats, find_pairs, load_split, split_pairs
from training.ensemble import average_weights, ema_model, recompute_bn
from training.evaluate import per_dataset, score_images, torch_predictor
from training.export import Normalized
from training.metrics import LOSSES, Scores, ThresholdSweep
from training.schedule import PlateauState, is_snapshot_epoch, learning_rate, plateau_step
from training.warm_start import onnx_normalisation, warm_start

log = logging.getLogger(__name__)

ValImages = Iterable[tuple[str, np.ndarray, np.ndarray]]


def train(config: TrainConfig, data: list[Path], out: Path, *, resume: bool = False) -> dict[str, Any]:
    """Train per ``config`` on the pairs under ``data`` into ``out``; return the final Table 1 row."""
    procs = _setup_processes(config)
    _check_run_folder(out, resume)
    run_data = _setup_data(config, data, out, resume, procs)
    state = _setup_model(config, run_data, procs, out if resume else None)
    for epoch in range(state.epoch, config.epochs):
        started = time.monotonic()
        losses, lr = _train_epoch(config, state, run_data.dataset, procs, epoch)
        validating = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs
        raw_scores: dict[str, float] = {}
        ema_scores: dict[str, float] = {}
        if validating:
            raw_scores = _validate(config, state.model, run_data, procs)
            ema_scores = _validate(config, state.ema.module, run_data, procs)
        if epoch < config.clr_start and validating:
            state.plateau = plateau_step(state.plateau, raw_scores["loss"], config)
        if is_snapshot_epoch(epoch, config):
            _save_snapshot(state, out, epoch, procs.main)
        if procs.main:
            seconds = time.monotonic() - started
            row = _metrics_row(epoch, state.step, lr, losses, seconds, raw_scores, ema_scores)
            _record_epoch(config, state, run_data, out, row)
    final = _score_ensembles(config, state, run_data, procs, out)
    if procs.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return final


# -- set-up --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Processes:
    """This process's place: one process, or one per GPU/CPU slot under torchrun."""

    distributed: bool
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 writes the run folder and logs; the others only train and score their share."""
        return self.rank == 0


def _setup_processes(config: TrainConfig) -> _Processes:
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if config.threads:
        torch.set_num_threads(config.threads)
    return _Processes(distributed, rank, world, device)


def _check_run_folder(out: Path, resume: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "last.pt"
    if resume and not checkpoint_path.is_file():
        raise InputError(f"--resume: {checkpoint_path} does not exist; start without --resume")
    if not resume and checkpoint_path.is_file():
        raise InputError(f"{out} already holds a run; pass --resume to continue it or choose another --out")


# -- data ----------------------------------------------------------------------------------------------


@dataclass
class _Data:
    """The split, the training patches, their normalisation, and this rank's validation images."""

    split: dict[str, list[str]]
    dataset: PatchDataset
    mean: list[float]
    std: list[float]
    val_images: Callable[[], ValImages]  # a fresh pass over this rank's share each call


def _setup_data(config: TrainConfig, data: list[Path], out: Path, resume: bool, procs: _Processes) -> _Data:
    """Split by image (recorded in ``split.json``), patches, statistics of the training images."""
    pairs = {pair.key: pair for pair in find_pairs(*data)}
    split = _split(config, list(pairs.values()), out / "split.json", resume, procs.main)
    missing = [key for key in split["train"] + split["val"] if key not in pairs]
    if missing:
        raise InputError(f"the run's split names images not found in --data: {missing[:5]}")
    train_pairs = [pairs[key] for key in split["train"]]
    val_pairs = [pairs[key] for key in split["val"]]
    if not val_pairs:
        raise InputError(
            "no validation images: a dataset needs three or more labelled images to give some to "
            "validation; add data or another --data folder"
        )
    dataset = PatchDataset(
        train_pairs,
        config.patch,
        AugmentConfig(p=config.augment_p, jitter=config.jitter, dihedral=config.dihedral),
        config.seed,
        config.preload_images,
        samples=config.patches_per_epoch,
        set_weights=config.set_weights,
        scale=config.scale_range,
    )
    init_from = Path(config.init_from) if config.init_from else None
    mean, std = onnx_normalisation(init_from) if init_from else channel_stats(dataset.images())
    val_images = _val_images(val_pairs[procs.rank :: procs.world], config.preload_images)
    if procs.main:
        log.info(
            "%d training images (%d patches), %d validation images; mean %s std %s",
            len(train_pairs),
            len(dataset),
            len(val_pairs),
            [round(m, 1) for m in mean],
            [round(s, 1) for s in std],
        )
    return _Data(split, dataset, mean, std, val_images)


def _val_images(pairs: list[Pair], preload: bool) -> Callable[[], ValImages]:
    """A fresh pass over ``pairs`` (this rank's share of the validation images) each call."""
    preloaded = [(pair.key, *pair.load()) for pair in pairs] if preload else None

    def val_images() -> ValImages:
        return preloaded if preloaded is not None else ((p.key, *p.load()) for p in pairs)

    return val_images


def _split(
    config: TrainConfig, pairs: list[Pair], path: Path, resume: bool, main: bool
) -> dict[str, list[str]]:
    """The run's split: read back when resuming, else drawn by the config's seed and recorded."""
    if resume and path.is_file():
        return load_split(path)
    split = split_pairs(
        pairs, config.val_fraction, config.seed, min_val=config.min_val, val_keys=config.val_keys
    )
    if main:
        record = {"seed": config.seed, "val_fraction": config.val_fraction, **split}
        path.write_text(json.dumps(record, indent=1) + "\n")
    return split


# -- model, EMA, optimiser: the state a checkpoint holds -------------------------------------------------


@dataclass
class _State:
    """Everything ``last.pt`` holds besides the model record, plus the live objects it comes from."""

    net: nn.Module  # the bare network; ``model`` wraps it with the normalisation, on the device
    model: Normalized
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    plateau: PlateauState
    train_model: nn.Module  # ``model``, or its DDP wrapper
    memory_format: torch.memory_format
    epoch: int = 0  # epochs done
    step: int = 0
    snapshots: list[str] = field(default_factory=list)

    @property
    def ema_net(self) -> nn.Module:
        return cast(Normalized, self.ema.module).model


def _setup_model(config: TrainConfig, run_data: _Data, procs: _Processes, resume_from: Path | None) -> _State:
    """The network, its EMA and optimiser: new (warm-started if configured) or as ``resume_from`` left."""
    torch.manual_seed(config.seed)
    net = create_model(config.arch, **config.model_kwargs)
    normalized = Normalized(net, run_data.mean, run_data.std)
    if config.init_from and resume_from is None:
        dataset = run_data.dataset
        first = torch.stack([dataset[i][0] for i in range(min(len(dataset), 4 * config.batch_size))])
        warm_start(net, Path(config.init_from), (first - normalized.mean) / normalized.std)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model = normalized.to(procs.device)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]  # Module.to takes it; stubs don't
    ema = ema_model(model, config.ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=0)
    train_model = nn.parallel.DistributedDataParallel(model) if procs.distributed else model
    state = _State(net, model, ema, optimizer, PlateauState(lr=config.lr), train_model, memory_format)
    if resume_from is not None:
        _load_checkpoint(state, resume_from / "last.pt", procs.device)
        if procs.main:
            log.info("resuming %s after epoch %d (step %d)", resume_from, state.epoch, state.step)
    return state


def _load_checkpoint(state: _State, path: Path, device: torch.device) -> None:
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    state.net.load_state_dict(checkpoint["model"])
    state.ema_net.load_state_dict(checkpoint["ema"])
    state.ema.n_averaged.fill_(checkpoint["step"])  # non-zero: the next update averages, not copies
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.plateau = PlateauState(**checkpoint["plateau"])
    state.epoch, state.step, state.snapshots = (
        checkpoint["epoch"],
        checkpoint["step"],
        checkpoint["snapshots"],
    )


def _save_checkpoint(config: TrainConfig, state: _State, run_data: _Data, out: Path) -> None:
    checkpoint = {
        **_model_record(config, run_data.mean, run_data.std),
        "epoch": state.epoch,
        "step": state.step,
        "model": state.net.state_dict(),
        "ema": state.ema_net.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "plateau": asdict(state.plateau),
        "snapshots": state.snapshots,
    }
    torch.save(checkpoint, out / "last.pt.tmp")
    (out / "last.pt.tmp").replace(out / "last.pt")  # a crash mid-write keeps the previous one


def _model_record(config: TrainConfig, mean: list[float], std: list[float]) -> dict[str, Any]:
    """What every checkpoint carries to rebuild the network and its input normalisation."""
    return {
        "arch": config.arch,
        "model_kwargs": dict(config.model_kwargs),
        "config": config.to_dict(),
        "mean": list(mean),
        "std": list(std),
    }


# -- one epoch -----------------------------------------------------------------------------------------


def _train_epoch(
    config: TrainConfig, state: _State, dataset: PatchDataset, procs: _Processes, epoch: int
) -> tuple[list[float], float]:
    """One pass over this epoch's patches; returns the batch losses and the last step's learning rate."""
    dataset.epoch = epoch  # the items are random patches drawn from (seed, epoch, index)
    order = torch.arange(len(dataset))
    order = order[: len(order) - len(order) % procs.world][procs.rank :: procs.world]  # DDP steps align
    loader: DataLoader = DataLoader(
        Subset(dataset, order.tolist()),
        batch_size=config.batch_size,
        num_workers=config.workers,
        drop_last=len(order) > config.batch_size,  # a last batch of 1 breaks batch norm
        persistent_workers=False,
    )
    loss_fn = LOSSES[config.loss]
    device = procs.device
    state.train_model.train()
    losses: list[float] = []
    lr = learning_rate(epoch, 1.0, state.plateau, config)  # the rate a last step would have had
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not procs.main, leave=False)
    for i, (images, masks) in enumerate(progress):
        lr = learning_rate(epoch, (i + 1) / len(loader), state.plateau, config)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
            prob = state.train_model(images.to(device, memory_format=state.memory_format))
        loss = loss_fn(prob.float(), masks.to(device))
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.ema.update_parameters(state.model)
        state.step += 1
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")
    state.epoch = epoch + 1
    return losses, lr


# -- validation ----------------------------------------------------------------------------------------


def _validate(
    config: TrainConfig, candidate: nn.Module, run_data: _Data, procs: _Processes, sweep: bool = False
) -> dict[str, float]:
    """Validation scores of ``candidate``; with ``sweep``, also the best threshold and its mIoU."""
    thresholds = ThresholdSweep()
    scores = score_images(
        torch_predictor(candidate, procs.device),
        run_data.val_images(),
        window=config.window,
        stride=config.val_stride,
        batch_size=config.val_batch_size,
        threshold=config.threshold,
        on_image=(lambda _key, prob, mask: thresholds.add(prob, mask)) if sweep else None,
    )
    by_set = {f"miou_{name}": v["miou"] for name, v in per_dataset(scores).items()}
    if procs.distributed:  # per-image scores stay on their rank: the per-set figures are rank 0's share
        total = torch.cat([scores.as_tensor(), thresholds.iou_sums]).to(procs.device)
        dist.all_reduce(total)
        scores = Scores.from_tensor(total[:8].cpu())
        thresholds.iou_sums, thresholds.images = total[8:].cpu(), scores.images
    summary = {**scores.summary(), **by_set}
    if sweep:
        summary["best_threshold"], summary["best_threshold_miou"] = thresholds.best()
    return summary


# -- the epoch's record: snapshot, metrics, curves, checkpoint ------------------------------------------


def _save_snapshot(state: _State, out: Path, epoch: int, main: bool) -> None:
    """Keep the end of a cyclic-lr cycle; every rank lists it, rank 0 writes it."""
    name = f"snapshots/epoch-{epoch + 1:03d}.pt"
    state.snapshots.append(name)
    if main:
        (out / "snapshots").mkdir(exist_ok=True)
        torch.save({"model": state.net.state_dict(), "ema": state.ema_net.state_dict()}, out / name)


def _metrics_row(
    epoch: int,
    step: int,
    lr: float,
    losses: list[float],
    seconds: float,
    raw_scores: dict[str, float],
    ema_scores: dict[str, float],
) -> dict[str, Any]:
    """The line of ``metrics.jsonl`` for 0-based ``epoch``."""
    return {
        "epoch": epoch + 1,
        "step": step,
        "lr": lr,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "seconds": round(seconds, 1),
        **{f"val_{k}": v for k, v in raw_scores.items()},
        **{f"ema_{k}": v for k, v in ema_scores.items()},
    }


def _record_epoch(
    config: TrainConfig, state: _State, run_data: _Data, out: Path, row: dict[str, Any]
) -> None:
    """Rank 0: the metrics line, the curves, the checkpoint and the log line of a finished epoch."""
    with (out / "metrics.jsonl").open("a") as stream:
        stream.write(json.dumps(row) + "\n")
    plot_curves(out / "metrics.jsonl", out / "curves.png")
    _save_checkpoint(config, state, run_data, out)
    log.info(
        "epoch %d/%d loss %.4f val mIoU %.4f ema mIoU %.4f lr %.2e (%.0f s)",
        row["epoch"],
        config.epochs,
        row["train_loss"],
        row.get("val_miou", math.nan),
        row.get("ema_miou", math.nan),
        row["lr"],
        row["seconds"],
    )


# -- ensembles: the snapshot averages, BN statistics recomputed; the Table 1 row ---------------------------


def _score_ensembles(
    config: TrainConfig, state: _State, run_data: _Data, procs: _Processes, out: Path
) -> dict[str, Any]:
    """Score the models ``final_scores`` names, each with a threshold sweep; rank 0 writes ``final.*``."""
    scored = set(config.final_scores)
    final: dict[str, Any] = {
        kind: _validate(config, candidate, run_data, procs, sweep=True)
        for kind, candidate in (("single", state.model), ("ema", state.ema.module))
        if kind in scored
    }
    if procs.distributed:
        dist.barrier()  # rank 0 has written the last snapshot
    averaged: dict[str, dict[str, torch.Tensor]] = {}
    for kind, candidate in _snapshot_averages(config, state, run_data, procs.device, out):
        averaged[kind] = candidate.model.state_dict()
        if kind in scored:
            final[kind] = _validate(config, candidate, run_data, procs, sweep=True)
    if procs.main:
        torch.save(
            {
                **_model_record(config, run_data.mean, run_data.std),
                "step": state.step,
                "raw": state.net.state_dict(),
                "ema": state.ema_net.state_dict(),
                **averaged,
                "snapshots": state.snapshots,
                "scores": final,
                "split": run_data.split,
            },
            out / "final.pt",
        )
        (out / "final.json").write_text(json.dumps(final, indent=1) + "\n")
    return final


def _snapshot_averages(
    config: TrainConfig, state: _State, run_data: _Data, device: torch.device, out: Path
) -> Iterable[tuple[str, Normalized]]:
    """``swa`` and ``swa_ema``: the snapshots' raw and EMA weights averaged, BN re-estimated on patches."""
    if not state.snapshots:
        return
    states = [torch.load(out / name, map_location="cpu", weights_only=False) for name in state.snapshots]
    bn_loader: DataLoader = DataLoader(
        run_data.dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),  # the same batches on every rank
    )
    for kind, key in (("swa", "model"), ("swa_ema", "ema")):
        candidate = Normalized(create_model(config.arch, **config.model_kwargs), run_data.mean, run_data.std)
        candidate = candidate.to(device)
        candidate.model.load_state_dict(average_weights([snapshot[key] for snapshot in states]))
        recompute_bn(candidate, islice(bn_loader, config.bn_batches), device)
        yield kind, candidate


def plot_curves(metrics: Path, png: Path) -> None:
    """Loss, mIoU (raw and EMA) and learning rate per epoch from ``metrics.jsonl`` into ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    epochs = [row["epoch"] for row in rows]
    fig, (ax_loss, ax_iou, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in rows], label="train")
    ax_loss.plot(epochs, [row.get("val_loss", math.nan) for row in rows], label="validation")
    ax_loss.set_title("loss")
    ax_iou.plot(epochs, [row.get("val_miou", math.nan) for row in rows], "o-", label="raw weights")
    ax_iou.plot(epochs, [row.get("ema_miou", math.nan) for row in rows], "o-", label="EMA")
    ax_iou.set_title("validation mIoU")
    ax_lr.plot(epochs, [row["lr"] for row in rows])
    ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate (end of epoch)")
    for ax in (ax_loss, ax_iou, ax_lr):
        ax.set_xlabel("epoch")
    ax_loss.legend()
    ax_iou.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
