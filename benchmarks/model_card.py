"""The figures of the shipped model's card, from one command anyone can rerun.

    .venv/bin/python benchmarks/model_card.py [--model models/weights/roadnet-risnet.onnx]

Measures, with the worker's own code (ONNX Runtime, the stride-64 sliding window, vectorisation):

- validation mIoU per dataset, on the validation images of the training run's split (shipped next to
  the model as ``split.json``), at the model's own window, stride and threshold, and in fast mode;
- the time of one 1024 x 1024 DeepGlobe tile at stride 64 and in fast mode, inference and
  vectorisation apart, on this machine;
- ``docs/examples/<dataset>-<id>.png`` for validation images: the scene, the ground truth in red, the
  predicted road network drawn over the scene.

and writes them to ``models/weights/model_card.json``. Needs the training extra (the pair readers).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from roadnet.model_files import default_model_path
from roadnet.options import InferenceOptions
from training.data import Pair, find_pairs, load_split
from training.evaluate import onnx_predictor, per_dataset, score_images
from worker.inference.predict import predict_scene
from worker.runner.preview import render_preview
from worker.vector.vectorize import vectorize_mask

REPO = Path(__file__).resolve().parents[1]
SPEED_TILE = "deepglobe/104"  # a 1024 x 1024 DeepGlobe tile, the paper's image size
EXAMPLES = (
    "deepglobe/unknown_id_2",
    "massachusetts/10078660_15",
    "spacenet/AOI_2_Vegas_img0",
    "ottawa/1-17-11",
    "epfl/satImage_021",
)
PANEL = 512  # pixels a side of each panel in the example images


def validation_scores(
    model: Path,
    pairs: list[Pair],
    fast: bool,
    *,
    providers: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """mIoU per dataset of ``model`` on ``pairs``, at the model's window and stride or in fast mode,
    run by ``providers`` (default: the worker's choice) in batches of ``batch_size`` windows."""
    predict, metadata = onnx_predictor(model, providers=providers)
    window, stride = (1024, 768) if fast else (metadata.window, metadata.stride)
    scores = score_images(
        predict,
        ((pair.key, *pair.load()) for pair in pairs),
        window=window,
        stride=stride,
        batch_size=batch_size or (16 if not fast else 1),
        threshold=metadata.threshold,
    )
    summary = scores.summary()
    return {
        "window": window,
        "stride": stride,
        "threshold": metadata.threshold,
        "miou": summary["miou"],
        "pooled_iou": summary["iou"],
        "precision": summary["precision"],
        "recall": summary["recall"],
        "datasets": per_dataset(scores),
    }


def tile_speed(model: Path, tile: Path, fast: bool) -> dict[str, float]:
    """Seconds to predict and vectorise one tile (the model already loaded by an earlier call)."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = predict_scene(tile, Path(tmp), model_path=model, options=InferenceOptions(fast=fast))
        inferred = time.perf_counter()
        vectorize_mask(result.mask, Path(tmp) / "roads.geojson")
        done = time.perf_counter()
    return {
        "windows": result.windows,
        "inference_s": round(inferred - started, 2),
        "vectorize_s": round(done - inferred, 2),
    }


def example_image(model: Path, pair: Pair, out_png: Path) -> Path:
    """Scene | ground truth in red | predicted roads over the scene, side by side (no data: as is)."""
    image, mask = pair.load()
    scene = Image.fromarray(image)
    truth = scene.copy()
    red = np.zeros_like(image)
    red[..., 0] = 255
    truth.paste(Image.fromarray(red), mask=Image.fromarray((mask == 1).astype(np.uint8) * 160))
    with tempfile.TemporaryDirectory() as tmp:
        result = predict_scene(pair.image, Path(tmp), model_path=model)
        roads = vectorize_mask(result.mask, Path(tmp) / "roads.geojson")
        predicted = Image.open(render_preview(result.scene, roads.lines, Path(tmp) / "preview.png")).convert(
            "RGB"
        )
    panels = [panel.resize((PANEL, PANEL), Image.Resampling.BILINEAR) for panel in (scene, truth, predicted)]
    sheet = Image.new("RGB", (3 * PANEL + 16, PANEL), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (PANEL + 8), 0))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, optimize=True)
    return out_png


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--split", type=Path, default=None, help="default: split.json beside the model")
    parser.add_argument("--out", type=Path, default=None, help="default: model_card.json beside the model")
    args = parser.parse_args()
    split_path = args.split or args.model.with_name("split.json")
    out = args.out or args.model.with_name("model_card.json")

    pairs = {pair.key: pair for pair in find_pairs(args.data)}
    validation = [pairs[key] for key in load_split(split_path)["val"] if key in pairs]
    card: dict[str, object] = {"model": args.model.name, "validation_images": len(validation)}
    card["validation"] = validation_scores(args.model, validation, fast=False)
    card["validation_fast"] = validation_scores(args.model, validation, fast=True)
    print(json.dumps(card["validation"], indent=1), flush=True)

    tile = pairs[SPEED_TILE].image
    tile_speed(args.model, tile, fast=True)  # warm-up: loads the session
    card["tile_1024"] = {
        "image": SPEED_TILE,
        "stride_64": tile_speed(args.model, tile, fast=False),
        "fast": tile_speed(args.model, tile, fast=True),
    }
    print(json.dumps(card["tile_1024"], indent=1), flush=True)

    examples = [pairs[key] for key in EXAMPLES if key in pairs]
    card["examples"] = [
        str(
            example_image(
                args.model, pair, REPO / "docs" / "examples" / f"{pair.dataset}-{pair.id}.png"
            ).relative_to(REPO)
        )
        for pair in examples
    ]
    out.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
