"""Inference benchmark, every figure measured side by side in one run on this machine.

For the default model (the tiny test RISNet when none ships) and the paper-width RISNet:

- windows/s of 256 x 256 windows in ONNX Runtime and in PyTorch eager (same architecture, same batches,
  same thread count) and their ratio;
- km^2 per minute of scene at 0.5 m pixels and the paper's stride 64 (each window adds stride^2 pixels);
- achieved GFLOP/s (convolution FLOPs per window x windows/s) against this machine's own numpy float32
  matrix-multiply GFLOP/s;
- peak RSS of ``predict_scene`` on 20 000-pixel-wide scenes of two heights, each in a fresh process.
  The inference holds one strip of rows the full width of the scene, so memory depends on the width
  only (a 20 000 x 20 000 scene needs what a 20 000 x 512 one does) while time grows with the area.
- fast mode against stride 64 on the labelled DeepGlobe pairs: IoU of each with the ground truth, the
  IoU between the two masks, and the speed-up.

Run: ``.venv/bin/python benchmarks/bench_inference.py [--model M.onnx] [--json out.json]`` (a few minutes
on 2 cores). Needs the ``train`` extra (torch) for the eager comparison and the paper-width export.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("ROADNET_SHARED_DATA", REPO.parent / "shared" / "data"))
PIXEL_M = 0.5
WIDE = 20_000


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply throughput through numpy (best of ``repeats``)."""
    a = np.random.default_rng(0).random((n, n), np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def windows_per_second(predict: Any, batches: list[np.ndarray]) -> float:
    predict(batches[0])  # warm-up: graph optimisation, first allocations
    seconds = sum(_timed(lambda b=b: predict(b)) for b in batches)
    return sum(len(b) for b in batches) / seconds


def compare_runtimes(
    name: str, onnx_path: Path, arch: str, kwargs: dict[str, Any], windows: int, batch: int
) -> dict:
    """ORT and PyTorch eager on the same windows; FLOPs from ``models.cli.model_cost``."""
    import torch

    from models import create_model
    from models.cli import model_cost
    from worker.model import load_model

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 255, (batch, 3, 256, 256)).astype(np.float32) for _ in range(windows // batch)]
    ort_model = load_model(onnx_path, threads=threads)
    # On a shared machine the load changes by the minute: the matmul reference is taken right beside.
    matmul = matmul_gflops(repeats=3)
    ort_wps = windows_per_second(ort_model.predict, batches)
    matmul = max(matmul, matmul_gflops(repeats=3))
    # Same architecture and cost; weights do not change the speed.
    eager = create_model(arch, **kwargs).eval()

    def eager_predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return eager(torch.from_numpy(x)).numpy()

    eager_wps = windows_per_second(eager_predict, batches)
    _, gflops = model_cost(arch, kwargs.get("width", 1.0), 256)
    return {
        "model": name,
        "arch": arch,
        "kwargs": kwargs,
        "provider": ort_model.provider,
        "threads": threads,
        "windows": len(batches) * batch,
        "batch": batch,
        "gflops_per_window": gflops,
        "ort_windows_per_s": ort_wps,
        "eager_windows_per_s": eager_wps,
        "ort_vs_eager": ort_wps / eager_wps,
        "ort_gflops_per_s": ort_wps * gflops,
        "matmul_gflops_per_s": matmul,
        "fraction_of_matmul": ort_wps * gflops / matmul,
        "km2_per_min_stride64": ort_wps * 64**2 * PIXEL_M**2 * 60 / 1e6,
        "km2_per_min_fast": ort_wps / 16 * 768**2 * PIXEL_M**2 * 60 / 1e6,
    }


def write_wide_scene(path: Path, height: int) -> Path:
    """A random WIDE x ``height`` RGB GeoTIFF at 0.5 m, written in strips so this process stays small."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff", "width": WIDE, "height": height, "count": 3, "dtype": "uint8", "tiled": True,
        "crs": "EPSG:32633", "transform": from_origin(500_000, 5_000_000, PIXEL_M, PIXEL_M),
    }  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, height, 256):
            rows = min(256, height - top)
            dst.write(rng.integers(0, 256, (3, rows, WIDE), np.uint8), window=Window(0, top, WIDE, rows))
    return path


def scene_rss(onnx_path: Path, height: int, stride: int | None) -> dict:
    """Peak RSS and time of predict_scene on a WIDE x ``height`` scene, in a fresh process.

    ``stride`` None runs fast mode."""
    with tempfile.TemporaryDirectory() as tmp:
        scene = write_wide_scene(Path(tmp) / "wide.tif", height)
        out = subprocess.run(
            [sys.executable, __file__, "--child-scene", str(onnx_path), str(scene), str(stride or "fast")],
            check=True,
            capture_output=True,
            text=True,
        )
    return {"width": WIDE, "height": height, **json.loads(out.stdout.strip().splitlines()[-1])}


def _peak_rss_mb() -> float:
    """This process's peak RSS. Not getrusage: its ru_maxrss survives exec, so a child started by a big
    parent reports at least the parent's size; /proc's VmHWM belongs to the process's own memory."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_scene(onnx_path: Path, scene: Path, stride: str) -> None:
    from worker.inference import InferenceOptions, predict_scene

    options = InferenceOptions(fast=True) if stride == "fast" else InferenceOptions(stride=int(stride))
    result = predict_scene(scene, scene.parent / "out", model_path=onnx_path, options=options)
    peak = _peak_rss_mb()
    record = {"window": result.window, "stride": result.stride, "windows": result.windows}
    print(json.dumps(record | {"seconds": result.seconds, "peak_rss_mb": peak}))


def fast_mode(onnx_path: Path, pairs: int) -> dict:
    """Stride 64 against fast mode on labelled DeepGlobe pairs: IoU with the truth, agreement, speed-up."""
    import rasterio
    from PIL import Image

    from worker.inference import InferenceOptions, predict_scene

    folder = DATA / "deepglobe" / "pairs"
    images = sorted(folder.glob("*_sat.jpg"))[:pairs]
    sums = {"paper": [0, 0, 0.0], "fast": [0, 0, 0.0]}  # intersection, union, seconds
    agree = [0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for image in images:
            truth = (
                np.array(Image.open(folder / image.name.replace("_sat.jpg", "_mask.png")).convert("L")) > 127
            )
            masks = {}
            for mode, options in (("paper", InferenceOptions()), ("fast", InferenceOptions(fast=True))):
                result = predict_scene(image, Path(tmp) / mode, model_path=onnx_path, options=options)
                with rasterio.open(result.mask) as src:
                    masks[mode] = src.read(1) == 1
                sums[mode][0] += int((masks[mode] & truth).sum())
                sums[mode][1] += int((masks[mode] | truth).sum())
                sums[mode][2] += result.seconds
            agree[0] += int((masks["paper"] & masks["fast"]).sum())
            agree[1] += int((masks["paper"] | masks["fast"]).sum())
    iou = {mode: i / u if u else 1.0 for mode, (i, u, _) in sums.items()}
    return {
        "images": [p.name for p in images],
        "iou_stride64": iou["paper"],
        "iou_fast": iou["fast"],
        "iou_points_lost": 100 * (iou["paper"] - iou["fast"]),
        "iou_fast_vs_stride64_masks": agree[0] / agree[1] if agree[1] else 1.0,
        "seconds_stride64": sums["paper"][2],
        "seconds_fast": sums["fast"][2],
        "speedup": sums["paper"][2] / sums["fast"][2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, help="ONNX model (default: the shipped model, else a tiny RISNet)"
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_inference.json")
    parser.add_argument("--pairs", type=int, default=3, help="DeepGlobe pairs for the fast-mode comparison")
    parser.add_argument(
        "--full-scene", action="store_true", help="also a whole 20 000 x 20 000 scene in fast mode (long)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        report = run(args, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)
    print(f"saved {args.json}")


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every measurement; exported models go to ``tmp``."""
    import onnxruntime as ort
    import torch

    from models import create_model
    from roadnet.model_metadata import ModelMetadata
    from training.export import export_onnx
    from worker.model import default_model_path, load_model

    default = args.model or default_model_path()
    if default.is_file():
        meta = load_model(default).metadata
        name, arch, kwargs = default.name, meta.arch, meta.model_kwargs
    else:
        name, arch, kwargs = "tiny RISNet (no default model shipped)", "risnet", {"width": 0.0625}
        meta = ModelMetadata(arch=arch, mean=[100.0] * 3, std=[50.0] * 3, model_kwargs=kwargs)
        default = export_onnx(create_model(arch, **kwargs).eval(), meta, tmp / "tiny.onnx")
    paper_meta = ModelMetadata(arch="risnet", mean=[100.0] * 3, std=[50.0] * 3, model_kwargs={"width": 1.0})
    paper = export_onnx(create_model("risnet", width=1.0).eval(), paper_meta, tmp / "risnet-paper.onnx")

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "onnxruntime": ort.__version__, "torch": torch.__version__},
    }
    small = kwargs.get("width", 1.0) < 0.5
    report["runtimes"] = [
        compare_runtimes(name, default, arch, kwargs, windows=64 if small else 8, batch=16 if small else 4),
        compare_runtimes("paper-width RISNet", paper, "risnet", {"width": 1.0}, windows=8, batch=4),
    ]
    # The same width at two heights: peak RSS stays, time grows with the area.
    report["scene_memory"] = [
        {"model": name, **scene_rss(default, height=height, stride=128)} for height in (256, 512)
    ] + [{"model": "paper-width RISNet", **scene_rss(paper, height=256, stride=256)}]
    if args.full_scene:
        report["scene_memory"].append({"model": name, **scene_rss(default, height=WIDE, stride=None)})
    report["fast_mode"] = {"model": name, **fast_mode(default, args.pairs)}
    return report


def _print(report: dict) -> None:
    print(f"{report['machine']['cpus']} cores; matmul = numpy float32 GFLOP/s measured beside each model")
    head = (
        "model",
        "GFLOP/win",
        "ORT win/s",
        "eager win/s",
        "ORT/eager",
        "GFLOP/s",
        "matmul",
        "of it",
        "km2/min",
    )
    print("{:<36}{:>10}{:>10}{:>12}{:>10}{:>9}{:>8}{:>7}{:>9}".format(*head))
    for r in report["runtimes"]:
        print(
            f"{r['model'][:35]:<36}{r['gflops_per_window']:>10.2f}{r['ort_windows_per_s']:>10.2f}"
            f"{r['eager_windows_per_s']:>12.2f}{r['ort_vs_eager']:>10.2f}{r['ort_gflops_per_s']:>9.1f}"
            f"{r['matmul_gflops_per_s']:>8.1f}{r['fraction_of_matmul']:>7.0%}{r['km2_per_min_stride64']:>9.3f}"
        )
    for m in report["scene_memory"]:
        print(
            f"peak RSS {m['peak_rss_mb']:.0f} MB: {m['model']} on {m['width']}x{m['height']}, window "
            f"{m['window']}/stride {m['stride']}, {m['windows']} windows in {m['seconds']:.1f} s"
        )
    f = report["fast_mode"]
    print(
        f"fast mode ({f['model']}, {len(f['images'])} DeepGlobe pairs): IoU {f['iou_fast']:.3f} vs stride 64 "
        f"{f['iou_stride64']:.3f} ({f['iou_points_lost']:+.1f} points lost), masks agree at IoU "
        f"{f['iou_fast_vs_stride64_masks']:.3f}, {f['speedup']:.1f}x faster"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child-scene":
        _child_scene(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        main()
