"""Peak memory and time of checking an upload, on crafted worst cases: the bounded check the service runs
(:func:`service.scene_check.check_scene`) against the unbounded decimated read it replaced, side by side.

Each measurement runs in a fresh interpreter (spawn), so its peak RSS is its own; the import-only
baseline is measured the same way. The files:

- ``one_tile_9024``: RGB noise in one 9024 x 9024 tile (233 MiB decoded), the largest block accepted;
- ``one_tile_16000``: one 16 000 x 16 000 tile (732 MiB decoded), sparse (a few hundred bytes):
  refused unread now;
- ``tiled_bomb_20000``: 20 000 x 20 000 zeros in deflated 256-pixel tiles (1.1 GiB decoded, ~2 MB);
- ``sparse_40000``: 40 000 x 40 000 declared, no tile written (a few kB).

    .venv/bin/python benchmarks/bench_validation.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

#: GDAL's block cache of both ways, as the service sets it.
CACHE_MB = 64


def _write(path: Path, side: int, block: int, written: bool, noise: bool = False) -> Path:
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5e6, 0.5, 0.5), "tiled": True,
               "blockxsize": block, "blockysize": block, "compress": "deflate", "SPARSE_OK": not written,
               "BIGTIFF": "IF_SAFER"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        if written:
            step = max(block, 2048 // block * block)
            rng = np.random.default_rng(0)
            for row in range(0, side, step):
                rows = min(step, side - row)
                shape = (3, rows, side)
                values = rng.integers(0, 255, shape, np.uint8) if noise else np.zeros(shape, np.uint8)
                dst.write(values, window=Window(0, row, side, rows))
    return path


def crafted(folder: Path) -> dict[str, Path]:
    """The worst cases, written into ``folder``."""
    return {
        "one_tile_9024": _write(folder / "one_tile_9024.tif", 9024, 9024, written=True, noise=True),
        "one_tile_16000": _write(folder / "one_tile_16000.tif", 16_000, 16_000, written=False),
        "tiled_bomb_20000": _write(folder / "tiled_bomb_20000.tif", 20_000, 256, written=True),
        "sparse_40000": _write(folder / "sparse_40000.tif", 40_000, 256, written=False),
    }


def _bounded(path: Path) -> str:
    from roadnet.errors import InputError
    from service.scene_check import check_scene

    try:
        check_scene(path, max_pixels=2**62)
        return "accepted"
    except InputError as exc:
        return f"refused: {str(exc)[:60]}"


def _unbounded(path: Path) -> str:
    """The check before issue 13: a decimated read of the whole scene (1024 px long side), the last block."""
    with rasterio.Env(GDAL_CACHEMAX=CACHE_MB), rasterio.open(path) as src:
        shrink = max(1.0, max(src.width, src.height) / 1024)
        src.read((1, 2, 3), out_shape=(3, int(src.height / shrink), int(src.width / shrink)), masked=True)
        block_h, block_w = src.block_shapes[0]
        src.read((1, 2, 3), window=Window(src.width - block_w, src.height - block_h, block_w, block_h))
    return "read"


def _baseline(path: Path) -> str:
    import service.scene_check  # noqa: F401  (the imports both ways pay)

    return "imported"


WAYS = {"baseline": _baseline, "bounded": _bounded, "unbounded": _unbounded}


def _child(way: str, path: Path, queue: Any) -> None:
    import service.scene_check  # noqa: F401

    started = time.monotonic()
    outcome = WAYS[way](path)
    seconds = time.monotonic() - started
    queue.put((outcome, seconds, _peak_rss_mib()))


def _peak_rss_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM; ru_maxrss would keep the forking
    parent's size across the exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def measure(way: str, path: Path) -> dict[str, Any]:
    """Outcome, seconds and peak RSS (MiB) of ``way`` on ``path`` in a fresh interpreter."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(way, path, queue))
    child.start()
    outcome, seconds, peak = queue.get()
    child.join()
    return {"outcome": outcome, "seconds": round(seconds, 2), "peak_rss_mib": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": platform.platform(), "gdal_cache_mb": CACHE_MB, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = crafted(Path(tmp))
        results["baseline"] = measure("baseline", next(iter(files.values())))
        print(f"import-only baseline: {results['baseline']['peak_rss_mib']} MiB")
        print(f"{'file':18} {'bytes':>10} | {'bounded':>30} | {'unbounded (before)':>30}")
        for name, path in files.items():
            row = {
                "bytes": path.stat().st_size,
                **{way: measure(way, path) for way in ("bounded", "unbounded")},
            }
            results["files"][name] = row
            cells = [f"{r['peak_rss_mib']:5d} MiB {r['seconds']:6.2f} s {r['outcome'][:12]:>12}"
                     for r in (row["bounded"], row["unbounded"])]  # fmt: skip
            print(f"{name:18} {row['bytes']:>10} | {cells[0]:>30} | {cells[1]:>30}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_validation.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
