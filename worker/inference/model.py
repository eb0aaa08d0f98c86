"""The road model as an ONNX Runtime session: how it is loaded (where it lives: :mod:`roadnet.model_files`).

No torch here: the worker runs on ONNX Runtime alone. The session takes the best execution provider the
installed ONNX Runtime offers (TensorRT, then CUDA, then CPU) and the file made for it when the model
ships one beside it (:func:`file_for_provider`): ``M.int8.onnx`` on CPU, ``M.fp16.onnx`` on CUDA, both
written by ``roadnet quantize``; TensorRT builds its own float16 engine from the float32 file. On a GPU
the batches go through IO binding (:mod:`worker.inference.gpu`). Sessions run with the CPU memory arena and
memory patterns off: with them on, the arena alone grew to 7.9 GB for one million pixels of a
paper-width network; off, 0.6-3 GB at the same speed. Without the arena every activation is a fresh
allocation; glibc serves large ones with a new ``mmap`` each time, and the page faults of touching it
made a tiny network 2-4 times slower (mostly system time). :func:`keep_freed_memory` raises glibc's
thresholds so that freed activations are reused instead, bounded by the largest batch's peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from roadnet.errors import ModelError
from roadnet.model_files import default_model_path
from roadnet.model_metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from roadnet.settings import get_settings
from worker.inference.gpu import DeviceBatches, gpu_batch_size, prepare_gpu_libraries

log = logging.getLogger(__name__)

#: Pixels per CPU batch when the batch size is not given: 16 windows of 256 x 256, as in the paper.
CPU_BATCH_PIXELS = 16 * 256 * 256

#: Execution providers in order of preference; the first one the installed ONNX Runtime has is used.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CPU = "CPUExecutionProvider"
#: The sibling file (``M.<variant>.onnx``) each provider prefers to ``M.onnx`` when it is there.
VARIANT_FOR_PROVIDER = {CPU: "int8", "CUDAExecutionProvider": "fp16"}


def variant_path(path: Path, variant: str) -> Path:
    """``M.onnx``'s sibling of ``variant``: ``M.int8.onnx``, ``M.fp16.onnx``."""
    return path.with_name(f"{path.name.removesuffix('.onnx')}.{variant}.onnx")


def file_for_provider(path: Path, provider: str) -> Path:
    """The file to run on ``provider``: ``path``'s sibling for it (:data:`VARIANT_FOR_PROVIDER`) when
    there is one, else ``path``."""
    variant = VARIANT_FOR_PROVIDER.get(provider)
    sibling = variant_path(path, variant) if variant else None
    return sibling if sibling is not None and sibling.is_file() else path


def choose_providers(available: Sequence[str] | None = None) -> list[str]:
    """The preferred providers among ``available`` (default: the installed ONNX Runtime's), best first."""
    available = ort.get_available_providers() if available is None else available
    return [p for p in PROVIDER_PREFERENCE if p in available] or [CPU]


@dataclass(frozen=True)
class RoadModel:
    """A loaded model: its session, metadata and the provider that runs it."""

    path: Path
    session: ort.InferenceSession
    metadata: ModelMetadata
    provider: str
    threads: int
    #: The GPU's IO binding; None on CPU.
    device: DeviceBatches | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Road probability ``(B, 1, H, W)`` of a float32 batch ``(B, 3, H, W)`` of raw 0-255 RGB."""
        batch = np.ascontiguousarray(batch, np.float32)
        if self.device is not None:
            return self.device.run(batch)
        (probability,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(probability)

    def batch_size(self, window: int) -> int:
        """Windows per batch when none is given: about 1M pixels on CPU, from free memory on a GPU."""
        if self.device is not None:
            return gpu_batch_size(window)
        return max(1, CPU_BATCH_PIXELS // (window * window))


#: glibc ``mallopt`` parameters and the value given to both: allocations under it come from the heap and
#: freed memory under it stays there for reuse.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_THRESHOLD = 256 * 1024**2


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Make glibc reuse freed large blocks instead of unmapping them (Linux/glibc only; else no-op)."""
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _GLIBC_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _GLIBC_THRESHOLD))


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _provider_options(provider: str) -> dict[str, Any]:
    if provider == "TensorrtExecutionProvider":
        # Building a TensorRT engine takes minutes; the cache keeps it across jobs and restarts. TensorRT
        # picks float16 or float32 per layer from the float32 graph.
        cache = get_settings().data_dir / "tensorrt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
    return {}


def load_model(
    path: Path | None = None,
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    variants: bool = True,
) -> RoadModel:
    """Load ``path`` (default: :func:`default_model_path`) into an ONNX Runtime session.

    ``threads`` defaults to ``ROADNET_ORT_INTRA_OP_THREADS`` (0: all cores); ``providers`` to
    :func:`choose_providers`. With ``variants`` the first provider's sibling file is loaded when the
    model ships one (:func:`file_for_provider`); without, ``path`` itself. Sessions are cached per file
    (and its modification time), threads and providers, so a worker loads each model once. Raises
    :class:`ModelError` when the file is missing, not an ONNX model, or lacks roadnet's inputs, outputs
    or metadata.
    """
    is_default = path is None
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        how = (
            "the default model ships in models/weights/ of the roadnet repository; install roadnet from a "
            "checkout that has it, or set ROADNET_MODEL_PATH / pass --model to a model exported with "
            "`roadnet export`"
            if is_default
            else "pass the path of an ONNX model exported with `roadnet export`"
        )
        raise ModelError(f"model file {path} does not exist; {how}")
    threads = get_settings().ort_intra_op_threads if threads is None else threads
    chosen = tuple(choose_providers() if providers is None else providers)
    if variants:
        path = file_for_provider(path, chosen[0])
    return _load(path.resolve(), path.stat().st_mtime_ns, threads, chosen)


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int, threads: int, providers: tuple[str, ...]) -> RoadModel:
    keep_freed_memory()
    if providers[0] != CPU:
        prepare_gpu_libraries()
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=_session_options(threads),
            providers=[(p, _provider_options(p)) for p in providers],
        )
    except Exception as exc:  # ONNX Runtime raises its own untyped errors for unreadable models
        raise ModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelError(
            f"{path} has inputs {inputs} and outputs {outputs}; roadnet needs input '{INPUT_NAME}' and "
            f"output '{OUTPUT_NAME}': export it with `roadnet export`"
        )
    metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    provider = session.get_providers()[0]
    log.info(
        "loaded model %s (%s) on %s with %s threads", path.name, metadata.arch, provider, threads or "all"
    )
    device = DeviceBatches(session) if provider != CPU else None
    return RoadModel(path, session, metadata, provider, threads, device)
