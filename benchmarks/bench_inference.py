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

``--int8`` measures instead float32 against INT8 on the CPU for the model (``roadnet quantize`` run
afresh into a temporary folder): windows/s on the same windows, in alternating rounds; GFLOP/s and
their fraction of ONNX Runtime's own float32 MatMul and uint8 x int8 MatMulInteger rates measured
beside them; validation mIoU of each at stride 64 (``model_card.validation_scores``); and the issue's
rule: INT8 becomes the CPU default when it loses at most 0.005 mIoU and is at least 1.8x faster.

``--gpu`` measures CPU float32, CUDA float32, CUDA float16 (``roadnet quantize --fp16``) and TensorRT
(float16 engine): windows/s, km^2/min at 0.5 m and stride 64, the largest difference from the CPU's
probabilities, validation mIoU of each. It fails when CUDA or TensorRT is not the provider that
runs; with ``--cpu-only`` every configuration runs on the CPU instead (a dry run of the code path on a
machine without a GPU). ``scripts/gpu-check.sh`` runs it on a GPU machine.
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


def random_batches(count: int, batch: int, window: int = 256) -> list[np.ndarray]:
    """``count`` seeded batches of raw 0-255 windows (speed does not depend on the content)."""
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, (batch, 3, window, window)).astype(np.float32) for _ in range(count)]


def km2_per_min(windows_per_s: float, stride: int = 64) -> float:
    """Scene area per minute at :data:`PIXEL_M` pixels: each window of the grid adds stride^2 pixels."""
    return windows_per_s * stride**2 * PIXEL_M**2 * 60 / 1e6


def compare_runtimes(
    name: str, onnx_path: Path, arch: str, kwargs: dict[str, Any], windows: int, batch: int
) -> dict:
    """ORT and PyTorch eager on the same windows; FLOPs from ``models.cli.model_cost``."""
    import torch

    from models import create_model
    from models.cli import model_cost
    from worker.inference.model import load_model

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    batches = random_batches(windows // batch, batch)
    ort_model = load_model(onnx_path, threads=threads, variants=False)
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
        "km2_per_min_stride64": km2_per_min(ort_wps),
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
    from roadnet.options import InferenceOptions
    from worker.inference.predict import predict_scene

    options = InferenceOptions(fast=True) if stride == "fast" else InferenceOptions(stride=int(stride))
    result = predict_scene(scene, scene.parent / "out", model_path=onnx_path, options=options)
    peak = _peak_rss_mb()
    record = {"window": result.window, "stride": result.stride, "windows": result.windows}
    print(json.dumps(record | {"seconds": result.seconds, "peak_rss_mb": peak}))


def fast_mode(onnx_path: Path, pairs: int) -> dict:
    """Stride 64 against fast mode on labelled DeepGlobe pairs: IoU with the truth, agreement, speed-up."""
    import rasterio
    from PIL import Image

    from roadnet.options import InferenceOptions
    from worker.inference.predict import predict_scene

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


def ort_matmul_peaks(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """This machine's matrix-multiply rates in ONNX Runtime's own kernels, G(FL)OP/s, best of ``repeats``:
    float32 MatMul and uint8 x int8 MatMulInteger (the pair an INT8 QDQ convolution runs on)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    cases = {
        "fp32": ("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT,
                 rng.random((n, n), np.float32), rng.random((n, n), np.float32)),
        "int8": ("MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32,
                 rng.integers(0, 256, (n, n), np.uint8), rng.integers(-128, 128, (n, n), np.int8)),
    }  # fmt: skip
    peaks = {}
    for name, (op, a_type, b_type, c_type, a, b) in cases.items():
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["c"])],
            name,
            [
                helper.make_tensor_value_info("a", a_type, [n, n]),
                helper.make_tensor_value_info("b", b_type, [n, n]),
            ],
            [helper.make_tensor_value_info("c", c_type, [n, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        session.run(None, {"a": a, "b": b})
        best = min(_timed(lambda s=session, a=a, b=b: s.run(None, {"a": a, "b": b})) for _ in range(repeats))
        peaks[name] = 2 * n**3 / best / 1e9
    return peaks


def _validation_pairs(split: Path, limit: int | None) -> list[Any]:
    from training.data import find_pairs, load_split

    pairs = {pair.key: pair for pair in find_pairs(DATA)}
    return [pairs[key] for key in load_split(split)["val"] if key in pairs][:limit]


def int8_comparison(model: Path, split: Path, windows: int, batch: int, rounds: int, val_images: int | None,
                    tmp: Path) -> dict[str, Any]:  # fmt: skip
    """float32 against INT8 on the CPU: speed on the same windows, share of the matmul peaks, mIoU."""
    from model_card import validation_scores

    from models.cli import model_cost
    from training.onnx_metadata import read_metadata
    from training.quantize import quantize_int8
    from worker.inference.model import CPU, load_model

    threads = os.cpu_count() or 1
    started = time.perf_counter()
    int8 = quantize_int8(model, [DATA], split=split, out=tmp / model.name.replace(".onnx", ".int8.onnx"))
    quantize_s = time.perf_counter() - started
    files = {"fp32": model, "int8": int8}
    loaded = {
        name: load_model(path, threads=threads, providers=[CPU], variants=False)
        for name, path in files.items()
    }
    batches = random_batches(max(1, windows // batch), batch)
    peaks = ort_matmul_peaks()
    # Alternating rounds, so that both see the same load on a shared machine.
    speeds: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(rounds):
        for name, m in loaded.items():
            speeds[name].append(windows_per_second(m.predict, batches))
    after = ort_matmul_peaks()
    peaks = {name: max(peaks[name], after[name]) for name in peaks}
    meta = read_metadata(model)
    _, gflops = model_cost(meta.arch, meta.model_kwargs.get("width", 1.0), 256)
    pairs = _validation_pairs(split, val_images)
    report: dict[str, Any] = {
        "model": str(model), "split": str(split), "threads": threads, "windows": len(batches) * batch,
        "batch": batch, "rounds": rounds, "quantize_s": round(quantize_s, 1), "gflops_per_window": gflops,
        "matmul_peaks_gops": peaks, "validation_images": len(pairs),
    }  # fmt: skip
    for name, path in files.items():
        wps = float(np.median(speeds[name]))
        scores = validation_scores(path, pairs, fast=False, providers=[CPU])
        report[name] = {
            "file": path.name, "bytes": path.stat().st_size, "windows_per_s": wps,
            "rounds_windows_per_s": speeds[name],
            "gflops_per_s": wps * gflops, "fraction_of_peak": wps * gflops / peaks[name],
            "fraction_of_fp32_peak": wps * gflops / peaks["fp32"], "km2_per_min_stride64": km2_per_min(wps),
            "miou": scores["miou"], "datasets": scores["datasets"],
        }  # fmt: skip
    speedup = report["int8"]["windows_per_s"] / report["fp32"]["windows_per_s"]
    loss = report["fp32"]["miou"] - report["int8"]["miou"]
    report["int8_vs_fp32"] = {
        "speedup": speedup,
        "miou_loss": loss,
        "rule": "INT8 is the CPU default if it loses at most 0.005 mIoU at stride 64 and is >= 1.8x faster",
        "ship_int8": bool(loss <= 0.005 and speedup >= 1.8),
    }
    return report


#: The GPU comparison: name, which file (the float32 model or its float16 copy), providers in order.
GPU_CONFIGS = (
    ("CPU fp32", "fp32", ("CPUExecutionProvider",)),
    ("CUDA fp32", "fp32", ("CUDAExecutionProvider", "CPUExecutionProvider")),
    ("CUDA fp16", "fp16", ("CUDAExecutionProvider", "CPUExecutionProvider")),
    ("TensorRT fp16", "fp32", ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")),
)


def gpu_comparison(model: Path, split: Path, seconds: float, val_images: int | None, cpu_only: bool,
                   tmp: Path) -> dict[str, Any]:  # fmt: skip
    """CPU against CUDA fp32, CUDA fp16 and TensorRT: speed, km^2/min, agreement with the CPU, mIoU.

    Each configuration runs batches for at least ``seconds`` (after a warm-up that builds TensorRT's
    engine or fills its cache). Raises when a GPU configuration does not run on its provider."""
    import onnxruntime as ort
    from model_card import validation_scores

    from training.quantize import convert_fp16
    from worker.inference.model import load_model

    files = {"fp32": model, "fp16": convert_fp16(model, out=tmp / model.name.replace(".onnx", ".fp16.onnx"))}
    pairs = _validation_pairs(split, val_images)
    reference: np.ndarray | None = None
    results = []
    for name, variant, wanted in GPU_CONFIGS:
        providers = ("CPUExecutionProvider",) if cpu_only else wanted
        started = time.perf_counter()
        loaded = load_model(files[variant], providers=providers, variants=False)
        if loaded.provider != providers[0]:
            raise RuntimeError(f"{name}: asked for {providers[0]}, ONNX Runtime runs {loaded.provider}")
        batch = 16 if loaded.device is None else loaded.batch_size(256)
        (probe,) = random_batches(1, batch)
        first = loaded.predict(probe)  # warm-up: TensorRT builds its engine here
        load_s = time.perf_counter() - started
        reference = first if reference is None else reference
        count, spent = 0, 0.0
        while spent < seconds or count < 3 * batch:
            spent += _timed(lambda m=loaded, b=probe: m.predict(b))
            count += batch
        wps = count / spent
        scores = validation_scores(files[variant], pairs, fast=False, providers=providers, batch_size=batch)
        results.append({
            "config": name, "file": files[variant].name, "provider": loaded.provider,
            "session_providers": loaded.session.get_providers(), "batch": batch, "load_and_warmup_s": load_s,
            "windows_per_s": wps, "km2_per_min_stride64": km2_per_min(wps),
            "max_abs_diff_vs_cpu": float(np.abs(first - reference).max()), "miou": scores["miou"],
            "datasets": scores["datasets"],
        })  # fmt: skip
    return {
        "model": str(model), "cpu_only_dry_run": cpu_only, "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(), "cpus": os.cpu_count(),
        "validation_images": len(pairs), "configs": results,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, help="ONNX model (default: the shipped model, else a tiny RISNet)"
    )
    parser.add_argument("--json", type=Path, help="output (default: benchmarks/results/bench_<mode>.json)")
    parser.add_argument("--pairs", type=int, default=3, help="DeepGlobe pairs for the fast-mode comparison")
    parser.add_argument(
        "--full-scene", action="store_true", help="also a whole 20 000 x 20 000 scene in fast mode (long)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--int8", action="store_true", help="float32 against INT8 on the CPU (see above)")
    mode.add_argument("--gpu", action="store_true", help="CPU, CUDA fp32 and fp16, TensorRT (see above)")
    parser.add_argument("--cpu-only", action="store_true", help="--gpu with every configuration on the CPU")
    parser.add_argument("--split", type=Path, help="split.json (default: beside the model)")
    parser.add_argument("--val-images", type=int, help="score only the first N validation images")
    parser.add_argument("--windows", type=int, default=32, help="--int8: windows per timed round")
    parser.add_argument("--batch", type=int, default=16, help="--int8: windows per batch")
    parser.add_argument("--rounds", type=int, default=3, help="--int8: alternating timed rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="--gpu: timed seconds per configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        if args.int8 or args.gpu:
            from roadnet.model_files import default_model_path

            model = (args.model or default_model_path()).resolve()
            split = args.split or model.with_name("split.json")
            report = (
                int8_comparison(
                    model, split, args.windows, args.batch, args.rounds, args.val_images, Path(tmp)
                )
                if args.int8
                else gpu_comparison(model, split, args.seconds, args.val_images, args.cpu_only, Path(tmp))
            )
            default_json = "bench_int8.json" if args.int8 else "bench_gpu.json"
        else:
            report = run(args, Path(tmp))
            default_json = "bench_inference.json"
    out = args.json or REPO / "benchmarks" / "results" / default_json
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if args.int8:
        _print_int8(report)
    elif args.gpu:
        _print_gpu(report)
    else:
        _print(report)
    print(f"saved {out}")


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every measurement; exported models go to ``tmp``."""
    import onnxruntime as ort
    import torch

    from models import create_model
    from roadnet.model_files import default_model_path
    from roadnet.model_metadata import ModelMetadata
    from training.export import export_onnx
    from worker.inference.model import load_model

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


def _print_int8(report: dict) -> None:
    peaks = report["matmul_peaks_gops"]
    print(
        f"{report['threads']} threads, {report['windows']} windows x {report['rounds']} rounds; ONNX Runtime "
        f"matmul peaks: fp32 {peaks['fp32']:.0f} GFLOP/s, int8 {peaks['int8']:.0f} GOP/s"
    )
    print(
        "{:<6}{:>10}{:>9}{:>9}{:>10}{:>9}{:>8}".format(
            "", "win/s", "GOP/s", "of peak", "of fp32pk", "km2/min", "mIoU"
        )
    )
    for name in ("fp32", "int8"):
        r = report[name]
        print(
            f"{name:<6}{r['windows_per_s']:>10.2f}{r['gflops_per_s']:>9.1f}{r['fraction_of_peak']:>9.0%}"
            f"{r['fraction_of_fp32_peak']:>10.0%}{r['km2_per_min_stride64']:>9.3f}{r['miou']:>8.4f}"
        )
    d = report["int8_vs_fp32"]
    verdict = "ship INT8 as the CPU default" if d["ship_int8"] else "keep fp32 on the CPU"
    images = report["validation_images"]
    print(f"INT8: {d['speedup']:.2f}x, mIoU {-d['miou_loss']:+.4f} over {images} images: {verdict}")


def _print_gpu(report: dict) -> None:
    dry = " (dry run: all on the CPU)" if report["cpu_only_dry_run"] else ""
    print(f"onnxruntime {report['onnxruntime']}, {report['validation_images']} validation images{dry}")
    print("{:<15}{:<28}{:>6}{:>10}{:>9}{:>11}{:>8}".format(
        "config", "provider", "batch", "win/s", "km2/min", "max|dp|", "mIoU"))  # fmt: skip
    for r in report["configs"]:
        print(
            f"{r['config']:<15}{r['provider']:<28}{r['batch']:>6}{r['windows_per_s']:>10.1f}"
            f"{r['km2_per_min_stride64']:>9.2f}{r['max_abs_diff_vs_cpu']:>11.2e}{r['miou']:>8.4f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child-scene":
        _child_scene(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        main()
