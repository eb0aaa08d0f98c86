"""The paper's Table 1 for finished training runs, from one command anyone can rerun.

    .venv/bin/python benchmarks/table1.py --shipped runs/cpu-small-unet runs/cpu-small-deeplab ...

For each run folder (``roadnet train --out``), from its own files, and with ``--shipped`` for the
default model, from the run's files shipped beside it in ``models/weights/``:

- architecture, width, parameters and GFLOPs of one 256 x 256 window;
- the Table 1 row of ``final.json``: validation mIoU of the single model, its EMA weights and the CLR
  snapshot average (and the average of the snapshots' EMA weights), at the run's validation stride and
  threshold 0.5 — the same protocol for every run;
- the run's wall time (the sum of its epochs' seconds, validation included) and steps;
- the CLR snapshot average exported to ONNX (``<run>/clr.onnx``; for the default model, the shipped
  file) and scored as the service runs it: stride 64, the threshold tuned on validation, mIoU per
  dataset on the run's validation split.

Writes ``benchmarks/results/table1.json`` and prints a Markdown table; ``--plot PNG`` draws each run's
validation mIoU per epoch and its served mIoU per dataset side by side. Needs the training extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from model_card import validation_scores  # this folder's: the model card scores models the same way

from models.cli import model_cost
from roadnet.model_files import default_model_path
from training.checkpoint import mean_of_checkpoints
from training.data import Pair, find_pairs, load_split
from training.export import export_onnx
from worker.inference.model import load_model

REPO = Path(__file__).resolve().parents[1]
KINDS = ("single", "ema", "swa", "swa_ema")


def table1_row(
    name: str,
    final_json: Path,
    metrics_jsonl: Path,
    split_json: Path,
    onnx_path: Path,
    pairs: dict[str, Pair],
) -> dict[str, Any]:
    """Everything Table 1 reports about one finished run, from its files and its exported CLR model."""
    final = json.loads(final_json.read_text())
    epochs = [json.loads(line) for line in metrics_jsonl.read_text().splitlines()]
    metadata = load_model(onnx_path).metadata
    params, gflops = model_cost(metadata.arch, **metadata.model_kwargs)
    served = validation_scores(onnx_path, [pairs[key] for key in load_split(split_json)["val"]], fast=False)
    return {
        "run": name,
        "arch": metadata.arch,
        "model_kwargs": metadata.model_kwargs,
        "params": params,
        "gflops_per_window": round(gflops, 2),
        "epochs": len(epochs),
        "steps": epochs[-1]["step"],
        "train_minutes": round(sum(row["seconds"] for row in epochs) / 60, 1),
        "ema_curve": [[row["epoch"], round(row["ema_miou"], 4)] for row in epochs if "ema_miou" in row],
        "table1_miou": {kind: round(final[kind]["miou"], 4) for kind in KINDS if kind in final},
        "clr_stride64": {
            "threshold": served["threshold"],
            "miou": round(served["miou"], 4),
            "datasets": {k: round(v["miou"], 4) for k, v in served["datasets"].items()},
        },
    }


def run_row(run: Path, pairs: dict[str, Pair]) -> dict[str, Any]:
    """A ``roadnet train`` run folder's row; its CLR snapshot average is exported to ``clr.onnx``."""
    model, metadata = mean_of_checkpoints([run], "swa")
    onnx_path = export_onnx(model, metadata, run / "clr.onnx")
    files = (run / "final.json", run / "metrics.jsonl", run / "split.json")
    return table1_row(run.name, *files, onnx_path, pairs)


def shipped_row(pairs: dict[str, Pair]) -> dict[str, Any]:
    """The default model's row, from the files shipped beside it (its run folder is not kept)."""
    weights = default_model_path().parent
    return table1_row(
        f"default ({default_model_path().name})",
        weights / "training-final.json",
        weights / "training-metrics.jsonl",
        weights / "split.json",
        default_model_path(),
        pairs,
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    datasets = sorted({name for row in rows for name in row["clr_stride64"]["datasets"]})
    head = ["run", "arch", "width", "params", "GFLOP/window", "minutes", "single", "EMA", "CLR", "CLR of EMA"]
    head += ["CLR stride 64 (thr)", *datasets]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        t1, s64 = row["table1_miou"], row["clr_stride64"]
        cells = [
            row["run"],
            row["arch"],
            str(row["model_kwargs"].get("width", 1.0)),
            f"{row['params']:,}",
            f"{row['gflops_per_window']:.2f}",
            f"{row['train_minutes']:.0f}",
            *(f"{t1[kind]:.3f}" if kind in t1 else "-" for kind in KINDS),
            f"{s64['miou']:.3f} ({s64['threshold']:g})",
            *(f"{s64['datasets'][name]:.3f}" if name in s64["datasets"] else "-" for name in datasets),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], png: Path) -> None:
    """Each run's validation mIoU (EMA weights) per epoch, and each CLR ensemble's served mIoU per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({name for row in rows for name in row["clr_stride64"]["datasets"]})
    fig, (ax_epochs, ax_sets) = plt.subplots(1, 2, figsize=(14, 4.5))
    for row in rows:
        epochs, ema_miou = zip(*row["ema_curve"], strict=True)
        ax_epochs.plot(epochs, ema_miou, "o-", label=row["arch"])
    ax_epochs.set_title("validation mIoU per epoch (EMA weights, stride 256, threshold 0.5)")
    ax_epochs.set_xlabel("epoch")
    ax_epochs.legend()
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        served = row["clr_stride64"]
        scores = [*(served["datasets"].get(name, 0.0) for name in datasets), served["miou"]]
        xs = [x + i * width for x in range(len(scores))]
        ax_sets.bar(xs, scores, width, label=f"{row['arch']} (CLR, stride 64)")
    ax_sets.set_xticks([x + 0.4 - width / 2 for x in range(len(datasets) + 1)], [*datasets, "all"])
    ax_sets.tick_params(axis="x", labelrotation=30)
    ax_sets.set_title("validation mIoU per set, as served")
    ax_sets.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="*", help="finished run folders")
    parser.add_argument("--shipped", action="store_true", help="add the default model's row first")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "table1.json")
    parser.add_argument("--plot", type=Path, help="PNG of the runs' curves and per-set scores")
    args = parser.parse_args()
    pairs = {pair.key: pair for pair in find_pairs(args.data)}
    rows = [shipped_row(pairs)] if args.shipped else []
    rows += [run_row(run, pairs) for run in args.runs]
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))
    print(f"wrote {args.out}")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
