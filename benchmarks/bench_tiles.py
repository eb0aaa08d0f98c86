"""Time of map tile requests for a large result, answered from the COG's overviews.

A synthetic road mask (bench_vectorize's city grid, 0.5 m pixels in UTM) is written at each size and
converted to a COG with the worker's own code (:func:`worker.inference.cog.write_cog`), then published as the
mask and probability results of a job in a temporary data directory. Tiles are requested through the
service in process (FastAPI's TestClient: routing, the key check, ETag, rendering in the thread pool),
one at a time, at the TileJSON's minzoom (the coarsest overview), a middle zoom and maxzoom (full
resolution), random tiles over the scene. Side by side in the same run: the same tiles of a small
result, and minzoom tiles rendered from the large mask without overviews (a plain tiled GeoTIFF), which
is what the overviews save.

    .venv/bin/python benchmarks/bench_tiles.py --sizes 2048 20000 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import morecantile
import numpy as np
from bench_vectorize import write_mask
from fastapi.testclient import TestClient
from rio_tiler.errors import NoOverviewWarning

from roadnet.jobs import JobStore
from roadnet.outputs import OUTPUTS, OutputName
from roadnet.settings import Settings
from service.main import create_app
from service.tiles import TileLayer, render_tile
from worker.inference.cog import write_cog

TILES_PER_ZOOM = 30
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


def publish_result(store: JobStore, mask_cog: Path) -> str:
    """A successful job whose mask and probability are ``mask_cog`` (the other outputs are stand-ins)."""
    upload = store.new_upload_path()
    upload.write_bytes(b"stand-in")
    job_id = store.create(upload, owner=None, filename="synthetic.tif", options={}, scene={}).id
    store.start(job_id, "bench")
    workdir = store.new_workdir(job_id)
    for name, output in OUTPUTS.items():
        if name in (OutputName.mask, OutputName.probability):
            os.link(mask_cog, workdir / output.filename)
        else:
            (workdir / output.filename).write_bytes(b"stand-in")
    store.publish(job_id, workdir, {})
    return job_id


def time_tiles(client: TestClient, job_id: str, layer: str, zoom: int, bounds: list[float]) -> list[float]:
    """Seconds of each of up to TILES_PER_ZOOM random tiles of ``layer`` at ``zoom`` within ``bounds``."""
    tiles = list(WEB_MERCATOR.tiles(*bounds, zooms=[zoom]))
    rng = np.random.default_rng(zoom)
    picked = [tiles[i] for i in rng.choice(len(tiles), size=min(TILES_PER_ZOOM, len(tiles)), replace=False)]
    seconds = []
    for tile in picked:
        start = time.perf_counter()
        answer = client.get(f"/jobs/{job_id}/tiles/{layer}/{zoom}/{tile.x}/{tile.y}.png")
        seconds.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return seconds


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "tiles": len(ordered),
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def measure(size: int, workdir: Path, client: TestClient, store: JobStore) -> dict:
    tiled = workdir / f"mask_{size}.tiled.tif"
    start = time.perf_counter()
    write_mask(tiled, size)
    plain = workdir / f"mask_{size}.plain.tif"
    shutil.copy(tiled, plain)  # kept without overviews, for the comparison
    cog = workdir / f"mask_{size}.tif"
    write_cog(tiled, cog, resampling="NEAREST")
    prepared = time.perf_counter() - start
    job_id = publish_result(store, cog)
    tilejson = client.get(f"/jobs/{job_id}/tiles/mask/tilejson.json").json()
    minzoom, maxzoom = tilejson["minzoom"], tilejson["maxzoom"]
    row: dict = {"size": size, "minzoom": minzoom, "maxzoom": maxzoom, "prepare_s": round(prepared, 1)}
    for label, zoom in (("minzoom", minzoom), ("midzoom", (minzoom + maxzoom) // 2), ("maxzoom", maxzoom)):
        for layer in ("mask", "probability"):
            row[f"{layer}_{label}"] = {
                "zoom": zoom,
                **summary(time_tiles(client, job_id, layer, zoom, tilejson["bounds"])),
            }
    # The same minzoom tiles rendered straight from the mask without overviews (a few: each reads it all).
    tiles = list(WEB_MERCATOR.tiles(*tilejson["bounds"], zooms=[minzoom]))[:3]
    seconds = []
    warnings.simplefilter("ignore", NoOverviewWarning)  # the point of this comparison
    for tile in tiles:
        start = time.perf_counter()
        render_tile(plain, TileLayer.mask, minzoom, tile.x, tile.y)
        seconds.append(time.perf_counter() - start)
    row["mask_minzoom_without_overviews"] = {"zoom": minzoom, **summary(seconds)}
    plain.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 20000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(Path(tmp) / "data")
        with TestClient(create_app(Settings(data_dir=Path(tmp) / "data"))) as client:
            for size in sorted(args.sizes):
                rows.append(measure(size, Path(tmp), client, store))
                row = rows[-1]
                print(f"{size} x {size} px (zooms {row['minzoom']}-{row['maxzoom']})")
                for key, value in row.items():
                    if isinstance(value, dict):
                        print(
                            f"  {key:<32} z{value['zoom']:<3} median {value['median_ms']:7.1f} ms  "
                            f"p95 {value['p95_ms']:7.1f} ms  max {value['max_ms']:7.1f} ms  "
                            f"({value['tiles']} tiles)"
                        )
    large, small = rows[-1], rows[0]
    ratios = {
        "large_vs_small_maxzoom": large["mask_maxzoom"]["median_ms"] / small["mask_maxzoom"]["median_ms"],
        "large_vs_small_minzoom": large["mask_minzoom"]["median_ms"] / small["mask_minzoom"]["median_ms"],
        "without_vs_with_overviews_minzoom": large["mask_minzoom_without_overviews"]["median_ms"]
        / large["mask_minzoom"]["median_ms"],
    }
    for name, ratio in ratios.items():
        print(f"{name}: x{ratio:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runs": rows,
        "ratios": {name: round(ratio, 2) for name, ratio in ratios.items()},
    }
    (args.out / "bench_tiles.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_tiles.json'}")


if __name__ == "__main__":
    main()
