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
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from models import create_model
from roadnet.errors import InputError
from training.augment import AugmentConfig
from training.config import TrainConfig
from training.data import PatchDataset, channel_stats, find_pairs, load_split, split_pairs
from training.ensemble import average_weights, ema_model, recompute_bn
from training.evaluate import per_dataset, score_images, torch_predictor
from training.export import Normalized
from training.metrics import LOSSES, Scores, ThresholdSweep
from training.schedule import PlateauState, is_snapshot_epoch, learning_rate, plateau_step
from training.warm_start import onnx_normalisation, warm_start

log = logging.getLogger(__name__)


def train(config: TrainConfig, data: list[Path], out: Path, *, resume: bool = False) -> dict[str, Any]:
    """Train per ``config`` on the pairs under ``data`` into ``out``; return the final Table 1 row."""
    # -- processes: one, or one per GPU/CPU slot under torchrun --------------------------------------------
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
    main = rank == 0
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "last.pt"
    if resume and not checkpoint_path.is_file():
        raise InputError(f"--resume: {checkpoint_path} does not exist; start without --resume")
    if not resume and checkpoint_path.is_file():
        raise InputError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    # -- data: split by image (recorded), patches, statistics of the training images -------------------
    pairs = {pair.key: pair for pair in find_pairs(*data)}
    split_path = out / "split.json"
    if resume and split_path.is_file():
        split = load_split(split_path)
    else:
        split = split_pairs(
            list(pairs.values()),
            config.val_fraction,
            config.seed,
            min_val=config.min_val,
            val_keys=config.val_keys,
        )
        if main:
            record = {"seed": config.seed, "val_fraction": config.val_fraction, **split}
            split_path.write_text(json.dumps(record, indent=1) + "\n")
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
        AugmentConfig(p=config.augment_p),
        config.seed,
        config.preload_images,
        samples=config.patches_per_epoch,
        set_weights=config.set_weights,
        scale=config.scale_range,
    )
    init_from = Path(config.init_from) if config.init_from else None
    mean, std = onnx_normalisation(init_from) if init_from else channel_stats(dataset.images())
    my_val_pairs = val_pairs[rank::world]  # each rank scores a share of the validation images
    preloaded_val = [(pair.key, *pair.load()) for pair in my_val_pairs] if config.preload_images else None

    def val_data() -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
        return preloaded_val if preloaded_val is not None else ((p.key, *p.load()) for p in my_val_pairs)

    if main:
        log.info(
            "%d training images (%d patches), %d validation images; mean %s std %s",
            len(train_pairs),
            len(dataset),
            len(val_pairs),
            [round(m, 1) for m in mean],
            [round(s, 1) for s in std],
        )

    # -- model, EMA, optimiser ---------------------------------------------------------------------------
    torch.manual_seed(config.seed)
    net = create_model(config.arch, **config.model_kwargs)
    normalized = Normalized(net, mean, std)
    if init_from and not resume:
        first = torch.stack([dataset[i][0] for i in range(min(len(dataset), 4 * config.batch_size))])
        warm_start(net, init_from, (first - normalized.mean) / normalized.std)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model: nn.Module = normalized.to(device)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]  # Module.to takes it; stubs don't
    ema = ema_model(model, config.ema_decay)
    ema_net = cast(Normalized, ema.module).model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=0)
    plateau = PlateauState(lr=config.lr)
    start_epoch, step = 0, 0
    snapshots: list[str] = []
    if resume:
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=False)
        net.load_state_dict(checkpoint["model"])
        ema_net.load_state_dict(checkpoint["ema"])
        ema.n_averaged.fill_(checkpoint["step"])  # non-zero: the next update averages, not copies
        optimizer.load_state_dict(checkpoint["optimizer"])
        plateau = PlateauState(**checkpoint["plateau"])
        start_epoch, step, snapshots = checkpoint["epoch"], checkpoint["step"], checkpoint["snapshots"]
        if main:
            log.info("resuming %s after epoch %d (step %d)", out, start_epoch, step)
    train_model = nn.parallel.DistributedDataParallel(model) if distributed else model
    loss_fn = LOSSES[config.loss]

    def validate(candidate: nn.Module, sweep: bool = False) -> dict[str, float]:
        """Validation scores of ``candidate``; with ``sweep``, also the best threshold and its mIoU."""
        thresholds = ThresholdSweep()
        scores = score_images(
            torch_predictor(candidate, device),
            val_data(),
            window=config.window,
            stride=config.val_stride,
            batch_size=config.val_batch_size,
            threshold=config.threshold,
            on_image=(lambda _key, prob, mask: thresholds.add(prob, mask)) if sweep else None,
        )
        by_set = {f"miou_{name}": v["miou"] for name, v in per_dataset(scores).items()}
        if distributed:  # per-image scores stay on their rank: the per-set figures are rank 0's share
            total = torch.cat([scores.as_tensor(), thresholds.iou_sums]).to(device)
            dist.all_reduce(total)
            scores = Scores.from_tensor(total[:8].cpu())
            thresholds.iou_sums, thresholds.images = total[8:].cpu(), scores.images
        summary = {**scores.summary(), **by_set}
        if sweep:
            summary["best_threshold"], summary["best_threshold_miou"] = thresholds.best()
        return summary

    def save_checkpoint(epoch: int) -> None:
        checkpoint = {
            **_model_record(config, mean, std),
            "epoch": epoch,
            "step": step,
            "model": net.state_dict(),
            "ema": ema_net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "plateau": asdict(plateau),
            "snapshots": snapshots,
        }
        torch.save(checkpoint, out / "last.pt.tmp")
        (out / "last.pt.tmp").replace(checkpoint_path)  # a crash mid-write keeps the previous one

    # -- the loop ----------------------------------------------------------------------------------------
    for epoch in range(start_epoch, config.epochs):
        started = time.monotonic()
        dataset.epoch = epoch  # the items are random patches drawn from (seed, epoch, index)
        order = torch.arange(len(dataset))
        order = order[: len(order) - len(order) % world][rank::world]  # equal shares, so DDP steps align
        loader: DataLoader = DataLoader(
            Subset(dataset, order.tolist()),
            batch_size=config.batch_size,
            num_workers=config.workers,
            drop_last=len(order) > config.batch_size,  # a last batch of 1 breaks batch norm
            persistent_workers=False,
        )
        train_model.train()
        losses = []
        progress = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not main, leave=False)
        for i, (images, masks) in enumerate(progress):
            lr = learning_rate(epoch, (i + 1) / len(loader), plateau, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                prob = train_model(images.to(device, memory_format=memory_format))
            loss = loss_fn(prob.float(), masks.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            step += 1
            losses.append(loss.item())
            progress.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")

        validating = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs
        raw_scores, ema_scores = (validate(model), validate(ema.module)) if validating else ({}, {})
        if epoch < config.clr_start and validating:
            plateau = plateau_step(plateau, raw_scores["loss"], config)
        if is_snapshot_epoch(epoch, config):
            name = f"snapshots/epoch-{epoch + 1:03d}.pt"
            snapshots.append(name)
            if main:
                (out / "snapshots").mkdir(exist_ok=True)
                torch.save({"model": net.state_dict(), "ema": ema_net.state_dict()}, out / name)
        if main:
            row = {
                "epoch": epoch + 1,
                "step": step,
                "lr": lr,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "seconds": round(time.monotonic() - started, 1),
                **{f"val_{k}": v for k, v in raw_scores.items()},
                **{f"ema_{k}": v for k, v in ema_scores.items()},
            }
            with (out / "metrics.jsonl").open("a") as stream:
                stream.write(json.dumps(row) + "\n")
            plot_curves(out / "metrics.jsonl", out / "curves.png")
            save_checkpoint(epoch + 1)
            log.info(
                "epoch %d/%d loss %.4f val mIoU %.4f ema mIoU %.4f lr %.2e (%.0f s)",
                epoch + 1,
                config.epochs,
                row["train_loss"],
                raw_scores.get("miou", math.nan),
                ema_scores.get("miou", math.nan),
                lr,
                row["seconds"],
            )

    # -- ensembles: the snapshot averages, BN statistics recomputed; the Table 1 row ---------------------
    # Each model in final_scores is scored with a threshold sweep (its own choice of threshold).
    scored = set(config.final_scores)
    final: dict[str, Any] = {
        kind: validate(candidate, sweep=True)
        for kind, candidate in (("single", model), ("ema", ema.module))
        if kind in scored
    }
    averaged: dict[str, dict[str, torch.Tensor]] = {}
    if distributed:
        dist.barrier()  # rank 0 has written the last snapshot
    if snapshots:
        states = [torch.load(out / name, map_location="cpu", weights_only=False) for name in snapshots]
        bn_loader: DataLoader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(config.seed),  # the same batches on every rank
        )
        for kind, key in (("swa", "model"), ("swa_ema", "ema")):
            candidate = Normalized(create_model(config.arch, **config.model_kwargs), mean, std).to(device)
            candidate.model.load_state_dict(average_weights([state[key] for state in states]))
            recompute_bn(candidate, _first_batches(bn_loader, config.bn_batches, device))
            averaged[kind] = candidate.model.state_dict()
            if kind in scored:
                final[kind] = validate(candidate, sweep=True)
    if main:
        torch.save(
            {
                **_model_record(config, mean, std),
                "step": step,
                "raw": net.state_dict(),
                "ema": ema_net.state_dict(),
                **averaged,
                "snapshots": snapshots,
                "scores": final,
                "split": split,
            },
            out / "final.pt",
        )
        (out / "final.json").write_text(json.dumps(final, indent=1) + "\n")
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return final


def _model_record(config: TrainConfig, mean: list[float], std: list[float]) -> dict[str, Any]:
    """What every checkpoint carries to rebuild the network and its input normalisation."""
    return {
        "arch": config.arch,
        "model_kwargs": dict(config.model_kwargs),
        "config": config.to_dict(),
        "mean": list(mean),
        "std": list(std),
    }


def _first_batches(loader: DataLoader, count: int, device: torch.device) -> list[torch.Tensor]:
    batches = []
    for images, _ in loader:
        batches.append(images.to(device))
        if len(batches) >= count:
            break
    return batches


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
