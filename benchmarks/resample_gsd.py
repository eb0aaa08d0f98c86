"""Does resampling a scene to the model's training resolution before inference help? Measured, per set.

    .venv/bin/python benchmarks/resample_gsd.py [--model models/weights/roadnet-risnet.onnx]
        [--split models/weights/split.json] [--data ../shared/data] [--stride N] [--out FILE.json]

For every validation image of the split: mIoU at its native resolution, and after resizing the image by
``set_gsd / model_gsd`` (``training.data.DATASETS`` resolutions; the model's ``gsd_m`` metadata),
predicting at the model's window and stride (or ``--stride``: a coarser one measures the same
question in a fraction of the time), and resizing the probability back to the image's grid.
Both side by side in one run, per set. A georeferenced scene knows its resolution, so the worker could do
the same; the figure decides whether it should (models/weights/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from roadnet.model_files import default_model_path
from training.data import DATASETS, find_pairs, load_split
from training.evaluate import onnx_predictor
from training.metrics import Scores
from worker.inference.sliding_window import predict_array

REPO = Path(__file__).resolve().parents[1]


def resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``array`` (H, W, 3) uint8 or (H, W) float32 resized to ``size`` (width, height), bilinear."""
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--split", type=Path, default=None, help="default: split.json beside the model")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--stride", type=int, default=None, help="default: the model's (64)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "resample_gsd.json")
    args = parser.parse_args()
    predict, metadata = onnx_predictor(args.model)
    if metadata.gsd_m is None:
        parser.error(f"{args.model} records no training resolution (gsd_m); export it with this version")
    stride = args.stride or metadata.stride
    pairs = {pair.key: pair for pair in find_pairs(args.data)}
    keys = load_split(args.split or args.model.with_name("split.json"))["val"]
    native, resampled = Scores(), Scores()
    for key in keys:
        pair = pairs[key]
        image, mask = pair.load()
        factor = DATASETS[pair.dataset].gsd_m / metadata.gsd_m
        height, width = mask.shape
        for scores, scale in ((native, 1.0), (resampled, factor)):
            size = (max(metadata.window, round(width * scale)), max(metadata.window, round(height * scale)))
            scene = image if scale == 1.0 else resized(image, size)
            raw = np.ascontiguousarray(scene.transpose(2, 0, 1), dtype=np.float32)
            prob = predict_array(raw, predict, window=metadata.window, stride=stride, batch_size=16)
            if scale != 1.0:
                prob = resized(prob.astype(np.float32), (width, height))
            scores.add(key, prob, mask, metadata.threshold)
        before, after = native.per_image[key], resampled.per_image[key]
        print(f"{key}: x{factor:.2f} native {before:.3f} resampled {after:.3f}")
    report: dict[str, object] = {
        "model": args.model.name,
        "model_gsd_m": metadata.gsd_m,
        "stride": stride,
        "sets": {},
    }
    for name in sorted({key.split("/")[0] for key in keys}):
        mine = [key for key in keys if key.startswith(name + "/")]
        report["sets"][name] = {  # type: ignore[index]
            "images": len(mine),
            "gsd_m": DATASETS[name].gsd_m,
            "native_miou": round(float(np.mean([native.per_image[k] for k in mine])), 4),
            "resampled_miou": round(float(np.mean([resampled.per_image[k] for k in mine])), 4),
        }
    report["native_miou"] = round(native.summary()["miou"], 4)
    report["resampled_miou"] = round(resampled.summary()["miou"], 4)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
