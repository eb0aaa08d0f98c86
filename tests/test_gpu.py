"""The shipped model on a GPU: CUDA (float32 and float16) and TensorRT really run it, and agree with the CPU.

Run with ``pytest -m gpu tests/test_gpu.py`` on a machine with onnxruntime-gpu (``scripts/gpu-check.sh``
installs it). Every test fails, never skips, where CUDA or TensorRT is missing: the provider that ONNX
Runtime actually put first in the session is checked, since ONNX Runtime falls back to the CPU quietly.

Tolerances against the CPU's float32 probabilities (0-1) on real validation windows: CUDA float32 mean
difference under 1e-3 and at most 0.05 anywhere (cuDNN may use TF32 and other algorithms); float16,
CUDA or TensorRT, mean under 5e-3 and at most 0.15; and the road masks (threshold 0.5) agree on at
least 99 % of pixels in every case.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

from roadnet.model_files import default_model_path
from roadnet.settings import get_settings
from training.quantize import calibration_patches, convert_fp16
from worker.inference.model import load_model
from worker.inference.predict import predict_scene
from worker.inference.sliding_window import predict_array

pytestmark = pytest.mark.gpu

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
#: (mean, max) absolute difference from the CPU allowed per precision.
TOLERANCE = {"fp32": (1e-3, 0.05), "fp16": (5e-3, 0.15)}
MASK_AGREEMENT = 0.99


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory of the test session's own: TensorRT's engine cache goes there."""
    folder = tmp_path_factory.getbasetemp() / "gpu-data"
    monkeypatch.setenv("ROADNET_DATA_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def windows(shared_data: Path) -> np.ndarray:
    """Eight raw 256-px windows of real imagery."""
    return np.stack(calibration_patches([shared_data / "epfl_roads"], None, 256, count=8))


@pytest.fixture(scope="module")
def cpu_probability(windows: np.ndarray) -> np.ndarray:
    return load_model(default_model_path(), providers=[CPU], variants=False).predict(windows)


def _assert_close(actual: np.ndarray, expected: np.ndarray, precision: str) -> None:
    mean_tol, max_tol = TOLERANCE[precision]
    diff = np.abs(actual - expected)
    agreement = float(((actual >= 0.5) == (expected >= 0.5)).mean())
    assert actual.shape == expected.shape
    assert float(diff.mean()) < mean_tol and float(diff.max()) <= max_tol, (diff.mean(), diff.max())
    assert agreement >= MASK_AGREEMENT, agreement


def test_installed_runtime_offers_cuda_and_tensorrt() -> None:
    import onnxruntime as ort

    assert {CUDA, TRT} <= set(ort.get_available_providers()), ort.get_available_providers()


@pytest.mark.parametrize(("providers", "precision"), [((CUDA, CPU), "fp32"), ((TRT, CUDA, CPU), "fp16")])
def test_gpu_provider_runs_the_model_and_agrees_with_the_cpu(
    providers: tuple[str, ...], precision: str, windows: np.ndarray, cpu_probability: np.ndarray
) -> None:
    model = load_model(default_model_path(), providers=providers, variants=False)
    assert model.session.get_providers()[0] == providers[0] == model.provider
    assert model.device is not None  # IO binding
    _assert_close(model.predict(windows), cpu_probability, precision)
    # A shorter batch goes through the same device buffers, padded.
    _assert_close(model.predict(windows[:3]), cpu_probability[:3], precision)


def test_tensorrt_keeps_its_engine_in_the_data_directory(data_dir: Path, windows: np.ndarray) -> None:
    model = load_model(default_model_path(), providers=(TRT, CUDA, CPU), variants=False)
    model.predict(windows)
    assert any((data_dir / "tensorrt-cache").iterdir())


def test_cuda_picks_the_fp16_copy(tmp_path: Path, windows: np.ndarray, cpu_probability: np.ndarray) -> None:
    model_path = tmp_path / "model.onnx"
    shutil.copy(default_model_path(), model_path)
    fp16 = convert_fp16(model_path)
    model = load_model(model_path, providers=(CUDA, CPU))
    assert model.path == fp16.resolve() and model.session.get_providers()[0] == CUDA
    _assert_close(model.predict(windows), cpu_probability, "fp16")


def test_worker_default_on_a_gpu_predicts_a_scene_like_the_cpu(shared_data: Path, tmp_path: Path) -> None:
    """``predict_scene`` with no provider given: the best GPU provider, a batch from free GPU memory."""
    scene = shared_data / "spacenet" / "pairs" / "RGB-PanSharpen_img1447.tif"
    result = predict_scene(scene, tmp_path)
    assert result.provider == TRT and result.batch_size > 16
    with rasterio.open(result.probability) as src:
        gpu = src.read(1).astype(np.float32) / 254
    with rasterio.open(scene) as src:
        rgb = src.read([1, 2, 3]).astype(np.float32)
    cpu = predict_array(rgb, load_model(default_model_path(), providers=[CPU], variants=False).predict)
    valid = gpu <= 1
    agreement = float(((gpu >= 0.5) == (cpu >= 0.5))[valid].mean())
    assert agreement >= MASK_AGREEMENT, agreement
