"""Does the network depend on which way is up? Each validation image under each of the square's eight
symmetries, measured per set, for every model given, side by side in one run.

    .venv/bin/python benchmarks/orientation.py [--model A.onnx --model B.onnx ...]
        [--split models/weights/split.json] [--data ../shared/data] [--stride 256] [--out FILE.json]

Every validation image of the split is turned or mirrored (``training.augment.dihedral``, training's
flips and turns: 0 as it is, 1-3 quarter turns, 4-7 the same followed by a transpose), predicted by
the plain sliding window at ``--stride`` (a coarse one answers the question in a sixteenth of the
paper's time), and the probability turned back before it is scored against the untouched mask at the
model's threshold. An image from above has no "up": a network of road shapes scores alike under all
eight; one that learned its few training scenes' road directions or shadows does not
(models/weights/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from roadnet.model_files import default_model_path
from training.augment import dihedral
from training.data import Pair
from training.evaluate import onnx_predictor, pairs_of_split, per_dataset
from training.metrics import Scores
from worker.inference.sliding_window import predict_array

REPO = Path(__file__).resolve().parents[1]
SYMMETRIES = range(8)
#: The symmetry that undoes each: quarter turns the other way; the four mirrors undo themselves.
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def orientation_scores(model: Path, pairs: list[Pair], stride: int) -> dict[str, dict[str, float]]:
    """mIoU, overall and per set, of ``model`` on ``pairs`` under each symmetry (keys ``"0"``-``"7"``)."""
    predict, metadata = onnx_predictor(model)
    scores = {k: Scores() for k in SYMMETRIES}
    for pair in pairs:
        image, mask = pair.load()
        raw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
        for k in SYMMETRIES:
            turned = dihedral(raw, k).contiguous().numpy()
            prob = predict_array(turned, predict, window=metadata.window, stride=stride, batch_size=16)
            back = dihedral(torch.from_numpy(prob), INVERSE[k]).contiguous().numpy()
            scores[k].add(pair.key, back, mask, metadata.threshold)
    return {
        str(k): {"all": round(s.summary()["miou"], 4)}
        | {name: round(row["miou"], 4) for name, row in per_dataset(s).items()}
        for k, s in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, action="append", help="default: the shipped model")
    parser.add_argument("--split", type=Path, default=None, help="default: split.json beside the model")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "orientation.json")
    args = parser.parse_args()
    models = args.model or [default_model_path()]
    pairs = pairs_of_split([args.data], args.split or models[0].with_name("split.json"), "val")
    report: dict[str, object] = {"stride": args.stride, "images": len(pairs), "models": {}}
    for model in models:
        by_symmetry = orientation_scores(model, pairs, args.stride)
        overall = [row["all"] for row in by_symmetry.values()]
        report["models"][model.name] = {  # type: ignore[index]
            "by_symmetry": by_symmetry,
            "worst": min(overall),
            "best": max(overall),
        }
        for k, row in by_symmetry.items():
            print(model.name, k, " ".join(f"{name} {value:.3f}" for name, value in row.items()), flush=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
