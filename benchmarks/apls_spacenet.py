"""APLS of the default pipeline (predict, then vectorise) on the SpaceNet tiles that have RGB imagery.

For each tile: ``predict_scene`` with the model (default: the configured/shipped one) and its default
options, ``vectorize_mask`` with the default options, then APLS (SpaceNet 3 definition, worker/vector/apls.py)
against the tile's centreline labels, clipped to the tile (labels run a few pixels past its edge).
The vectoriser alone scores 0.995 on the solaris mask of its own labels (tests/test_vectorize.py), so
what falls short of that here is the segmentation's.

    .venv/bin/python benchmarks/apls_spacenet.py [--model M.onnx] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import rasterio
import shapely

from worker.inference.predict import predict_scene
from worker.vector.apls import apls_of_lines, read_lines
from worker.vector.vectorize import vectorize_mask

SHARED = Path(os.environ.get("ROADNET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: (name, scene, labels) under spacenet/pairs.
TILES = [
    ("AOI_2_Vegas_img0", "RGB-PanSharpen_AOI_2_Vegas_img0.tif", "AOI_2_Vegas_img0.geojson"),
    ("img1447_Paris (OSM labels)", "RGB-PanSharpen_img1447.tif", "OSMroads_img1447.geojson"),
]


def clipped_labels(labels: Path, scene: Path) -> list[shapely.LineString]:
    with rasterio.open(scene) as src:
        tile = shapely.box(*src.bounds)
    parts = [part for line in read_lines(labels) for part in getattr(line & tile, "geoms", [line & tile])]
    return [p for p in parts if isinstance(p, shapely.LineString) and not p.is_empty]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the configured one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    pairs = SHARED / "spacenet" / "pairs"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, scene, labels in TILES:
            work = Path(tmp) / scene
            start = time.perf_counter()
            outputs = predict_scene(pairs / scene, work, model_path=args.model)
            roads = vectorize_mask(outputs.mask, work / "roads.geojson")
            result = apls_of_lines(read_lines(roads.out), clipped_labels(pairs / labels, pairs / scene))
            rows.append(
                {
                    "tile": name,
                    "apls": round(result.apls, 4),
                    "truth_onto_proposal": round(result.truth_onto_proposal, 4),
                    "proposal_onto_truth": round(result.proposal_onto_truth, 4),
                    "segments": roads.segments,
                    "km": round((roads.total_length_m or 0) / 1000, 3),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    mean = sum(r["apls"] for r in rows) / len(rows)
    print(f"mean APLS {mean:.4f} over {len(rows)} tiles")
    args.out.mkdir(parents=True, exist_ok=True)
    model = str(args.model) if args.model else "default"
    (args.out / "apls_spacenet.json").write_text(
        json.dumps({"model": model, "mean_apls": round(mean, 4), "tiles": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
