"""``roadnet train``, ``export``, ``quantize`` and ``evaluate``. torch is imported inside the commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from roadnet.errors import MissingDependencyError

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("torch", "train") from exc


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data", required=True, multiple=True, type=_DIR, help="Folder of labelled pairs.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value (YAML syntax), e.g. --set arch=unet --set epochs=10.",
)
def train_command(
    config_path: Path, data: tuple[Path, ...], out: Path, resume: bool, overrides: tuple[str, ...]
) -> None:
    """Train a road model by the paper's recipe (under torchrun: DistributedDataParallel)."""
    _require_torch()
    from training.config import TrainConfig
    from training.train import train

    final = train(TrainConfig.from_yaml(config_path, list(overrides)), list(data), out, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report
        click.echo(json.dumps({kind: round(s["miou"], 4) for kind, s in final.items()}))


@click.command("export")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="ONNX file.")
@click.option(
    "--ensemble",
    type=click.Choice(["raw", "ema", "swa", "swa_ema"]),
    default=None,
    help="Which weights of each run (default: the run config's export_ensemble).",
)
def export_command(runs: tuple[Path, ...], out: Path, ensemble: str | None) -> None:
    """Export a run's ensembled model to ONNX (normalisation inside, roadnet metadata, checked).

    Several RUNS (folders or .pt checkpoints) export one model averaging their predictions.
    """
    _require_torch()
    from training.checkpoint import mean_of_checkpoints
    from training.export import export_onnx

    model, metadata = mean_of_checkpoints(list(runs), ensemble)
    path = export_onnx(model, metadata, out)
    click.echo(f"wrote {path} ({metadata.arch}, {metadata.provenance['ensemble']})")


@click.command("average")
@click.argument("models", nargs=-1, required=True, type=_FILE)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="ONNX file.")
@click.option("--weight", "weights", multiple=True, type=float, help="One per model (default: equal).")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Road threshold (default: their weighted mean).",
)
def average_command(
    models: tuple[Path, ...], out: Path, weights: tuple[float, ...], threshold: float | None
) -> None:
    """Average the weights of exported MODELS of one network (one trained from the other): one model at
    the inference cost of one. Score it with `roadnet evaluate` before use."""
    from training.average import average_models

    metadata = average_models(list(models), out, weights or None, threshold)
    click.echo(f"wrote {out} ({metadata.arch}, threshold {metadata.threshold:g})")


@click.command("quantize")
@click.argument("model", type=_FILE)
@click.option("--int8", "int8", is_flag=True, help="Write M.int8.onnx, for CPUs (needs --data).")
@click.option("--fp16", "fp16", is_flag=True, help="Write M.fp16.onnx, for CUDA GPUs.")
@click.option("--data", "data", multiple=True, type=_DIR, help="Folder of labelled pairs (calibration).")
@click.option(
    "--split",
    "split_path",
    type=_FILE,
    help="Calibrate on this split's training images (default: split.json beside MODEL, else all).",
)
def quantize_command(
    model: Path, int8: bool, fp16: bool, data: tuple[Path, ...], split_path: Path | None
) -> None:
    """Write faster copies of MODEL beside it, which the worker then picks by itself: M.int8.onnx on CPU
    (static INT8, calibrated on training patches), M.fp16.onnx on CUDA. The metadata is kept."""
    from training.quantize import convert_fp16, quantize_int8

    if not (int8 or fp16):
        raise click.UsageError("say which copy to write: --int8, --fp16 or both")
    if int8:
        if not data:
            raise click.UsageError("--int8 calibrates on training images: give --data")
        click.echo(f"wrote {quantize_int8(model, list(data), split=split_path)}")
    if fp16:
        click.echo(f"wrote {convert_fp16(model)}")


@click.command("evaluate")
@click.option(
    "--model",
    "models",
    required=True,
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="An .onnx file, a .pt checkpoint or a run folder; several: their predictions are averaged.",
)
@click.option("--data", "data", required=True, multiple=True, type=_DIR, help="Folder of labelled pairs.")
@click.option(
    "--split",
    "split_path",
    type=_FILE,
    help="A run's split.json: score only its validation images.",
)
@click.option("--stride", type=int, default=None, help="Sliding-window stride (default: the model's, 64).")
@click.option("--threshold", type=float, default=None, help="Road threshold (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate_command(
    models: tuple[Path, ...],
    data: tuple[Path, ...],
    split_path: Path | None,
    stride: int | None,
    threshold: float | None,
    as_json: bool,
) -> None:
    """mIoU (per image, averaged), pooled IoU, precision and recall per dataset."""
    from training.evaluate import mean_predictor, onnx_predictor, pairs_of_split, per_dataset, score_images

    predictors, metadatas = [], []
    for path in models:
        if path.suffix == ".onnx":
            predict, metadata = onnx_predictor(path)
        else:
            _require_torch()
            from training.checkpoint import model_from_checkpoint
            from training.evaluate import torch_predictor

            model, metadata = model_from_checkpoint(path)
            predict = torch_predictor(model)
        predictors.append(predict)
        metadatas.append(metadata)
    pairs = pairs_of_split(list(data), split_path, "val")
    first = metadatas[0]
    scores = score_images(
        mean_predictor(predictors),
        ((pair.key, *pair.load()) for pair in pairs),
        window=first.window,
        stride=stride or first.stride,
        batch_size=16,
        threshold=threshold if threshold is not None else first.threshold,
    )
    summary: dict[str, Any] = {**scores.summary(), "datasets": per_dataset(scores)}
    summary.pop("loss")
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{'dataset':<16}{'images':>8}{'mIoU':>8}")
    for name, row in summary["datasets"].items():
        click.echo(f"{name:<16}{row['images']:>8}{row['miou']:>8.4f}")
    click.echo(f"{'all':<16}{int(summary['images']):>8}{summary['miou']:>8.4f}")
    pooled = f"pooled IoU {summary['iou']:.4f}  precision {summary['precision']:.4f}"
    click.echo(f"{pooled}  recall {summary['recall']:.4f}")
