"""Train, export and evaluate in one go, for a GPU machine lent for minutes: everything into one folder.

    python scripts/gpu_train.py OUT [--config training/configs/gpu.yaml] [--data ../shared/data] [--set K=V]

OUT gets ``run/`` (the training run: split, metrics, curves, checkpoints), ``model.onnx`` (the run's
configured ensemble, exported and checked against PyTorch), ``scores.json`` (validation mIoU per set at
the model's stride 64, through the worker's ONNX Runtime sliding window), and copies of the small files
a device lease brings back (``metrics.jsonl``, ``curves.png``, ``final.json``, ``split.json``).
Imports only the training side (no service): PyTorch, NumPy, Pillow, PyYAML, ONNX, ONNX Runtime and
tqdm, all on the lent GPU machines' image. The raw data (205 MB, and SpaceNet's needs rasterio) cannot
travel with a lease (64 MiB), a pack of it can (``training/pack.py``: 34 MiB)::

    python -m training.pack ../shared/data .gpu-data && echo /.gpu-data/ >> .git/info/exclude
    # device run, carry [".gpu-data"]:
    python3 scripts/gpu_train.py /tmp/g --data .gpu-data && cp /tmp/g/*.* $OUT/

Its ``scores.json`` is measured on the pack (JPEG images); score the model on the raw data here
(``roadnet evaluate``) before shipping it. Tested on the CPU with the smoke config
(``tests/test_training.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from roadnet.logs import configure_logging
from training.checkpoint import mean_of_checkpoints
from training.config import TrainConfig
from training.data import find_pairs, load_split
from training.evaluate import onnx_predictor, per_dataset, score_images
from training.export import export_onnx
from training.train import train

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("gpu_train")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "training" / "configs" / "gpu.yaml")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    configure_logging("INFO")
    out: Path = args.out
    run = out / "run"
    started = time.monotonic()

    config = TrainConfig.from_yaml(args.config, args.overrides)
    final = train(config, [args.data], run, resume=(run / "last.pt").is_file())
    trained = time.monotonic()

    model, metadata = mean_of_checkpoints([run])
    onnx_path = export_onnx(model, metadata, out / "model.onnx")
    predict, metadata = onnx_predictor(onnx_path)
    pairs = {pair.key: pair for pair in find_pairs(args.data)}
    validation = [pairs[key] for key in load_split(run / "split.json")["val"]]
    scores = score_images(
        predict,
        ((pair.key, *pair.load()) for pair in validation),
        window=metadata.window,
        stride=metadata.stride,
        batch_size=64,
        threshold=metadata.threshold,
    )
    report = {
        "config": str(args.config),
        "overrides": args.overrides,
        "train_s": round(trained - started, 1),
        "total_s": round(time.monotonic() - started, 1),
        "table1": {kind: round(row["miou"], 4) for kind, row in final.items()},
        "stride": metadata.stride,
        "threshold": metadata.threshold,
        **scores.summary(),
        "datasets": per_dataset(scores),
    }
    (out / "scores.json").write_text(json.dumps(report, indent=1) + "\n")
    for name in ("metrics.jsonl", "curves.png", "final.json", "split.json"):
        shutil.copy(run / name, out / name)
    log.info(
        "validation mIoU %.4f at stride %d in %.0f s: %s",
        report["miou"],
        metadata.stride,
        report["total_s"],
        json.dumps(report["datasets"]),
    )


if __name__ == "__main__":
    main()
