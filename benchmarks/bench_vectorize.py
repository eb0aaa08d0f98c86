"""Time and peak memory of ``vectorize_mask`` on synthetic road masks of growing size.

The masks are written block by block to tiled GeoTIFFs (never whole in RAM): a city-like grid of roads
0.5 m pixels in UTM, 6-12 m wide, blocks 150-250 m apart, a few diagonal avenues, gaps under "trees"
and speckle noise, the same pattern at every size. Each size is vectorised in a fresh child process so
its peak RSS is its own. The ratios against the smallest size show how time and memory scale (linear
time, flat memory is the aim).

    .venv/bin/python benchmarks/bench_vectorize.py --sizes 5000 10000 20000 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

STRIP = 1024  # rows generated and written at a time


def _road_lines(size: int, rng: np.random.Generator) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(position, half width) of the vertical and horizontal roads, in pixels."""
    lines = []
    for _ in range(2):
        positions = np.cumsum(rng.integers(300, 500, size // 300 + 2))
        positions = positions[positions < size - 20]
        lines.append([(int(p), int(rng.integers(6, 13))) for p in positions])
    return lines[0], lines[1]


def write_mask(path: Path, size: int, seed: int = 0) -> float:
    """Write the synthetic mask; returns the road fraction."""
    rng = np.random.default_rng(seed)
    columns, rows = _road_lines(size, rng)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 5_000_000, 0.5, 0.5),
        "nodata": 255,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    cols = np.arange(size)
    road_pixels = 0
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, STRIP):
            height = min(STRIP, size - top)
            r = np.arange(top, top + height)[:, None]
            mask = np.zeros((height, size), bool)
            for centre, half in columns:
                mask[:, max(0, centre - half) : centre + half] = True
            for centre, half in rows:
                mask[np.abs(r[:, 0] - centre) < half, :] = True
            for slope, offset in ((0.5, 0), (-0.7, size)):  # two avenues across the grid
                mask |= np.abs(r - (slope * cols + offset)) < 8
            # 16 px holes on a 2 km lattice (where one falls on a road: a gap under a tree), speckles
            gap_rows = (r % 4000) < 16
            gap_cols = (cols % 4100) < 16
            mask &= ~(gap_rows & gap_cols[None, :])
            speck = np.random.default_rng(seed + top).random((height, size)) < 2e-5
            mask |= speck
            road_pixels += int(mask.sum())
            dst.write(mask.astype(np.uint8), 1, window=Window(0, top, size, height))
    return road_pixels / size**2


def _peak_rss_mib() -> float:
    """This process's peak resident memory.

    Linux's VmHWM, which starts afresh at exec; ru_maxrss would carry over the parent's peak (from
    generating the mask) into the spawned child.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(mask: Path, out: Path, queue: multiprocessing.Queue) -> None:
    from worker.vector.vectorize import vectorize_mask

    start = time.perf_counter()
    summary = vectorize_mask(mask, out)
    seconds = time.perf_counter() - start
    peak_mib = _peak_rss_mib()
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_mib": peak_mib,
            "segments": summary.segments,
            "km": (summary.total_length_m or 0) / 1000,
        }
    )


def measure(size: int, workdir: Path) -> dict:
    mask = workdir / f"mask_{size}.tif"
    start = time.perf_counter()
    fraction = write_mask(mask, size)
    generated = time.perf_counter() - start
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=_run, args=(mask, workdir / f"roads_{size}.geojson", queue)
    )
    child.start()
    result = queue.get()
    child.join()
    mask.unlink()
    return {
        "size": size,
        "megapixels": size * size / 1e6,
        "road_fraction": round(fraction, 4),
        "generate_s": round(generated, 1),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sorted(args.sizes):
            rows.append(measure(size, Path(tmp)))
            row = rows[-1]
            print(
                f"{size:>6} px  {row['seconds']:7.1f} s  {row['peak_rss_mib']:7.0f} MiB peak  "
                f"{row['segments']:>7} segments  {row['km']:8.1f} km  "
                f"pixels x{row['megapixels'] / rows[0]['megapixels']:.1f}  "
                f"time x{row['seconds'] / rows[0]['seconds']:.2f}  "
                f"memory x{row['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "runs": rows,
    }
    (args.out / "bench_vectorize.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_vectorize.json'}")


if __name__ == "__main__":
    main()
