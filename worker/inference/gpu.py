"""What a model session needs on a GPU: the CUDA libraries, a batch size that fits, IO binding.

- ``onnxruntime-gpu`` finds CUDA and cuDNN installed as pip packages (``onnxruntime-gpu[cuda,cudnn]``)
  only once :func:`prepare_gpu_libraries` has loaded them.
- The batch size follows the GPU's free memory (read through NVML, the driver's own library, so no
  CUDA package is needed to ask): many windows per batch keep a GPU busy, but too many run it out of
  memory.
- :class:`DeviceBatches` runs a session through IO binding: the input and output live on the GPU for
  the whole job, so each batch is copied to the GPU once and its probabilities back once, with no
  per-batch allocation; every batch has the same shape (a short last batch is padded), so cuDNN's
  algorithm search and TensorRT's engine build happen once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from functools import lru_cache

import numpy as np
import onnxruntime as ort

from roadnet.model_metadata import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

#: Memory budgeted per window pixel, in bytes. The paper-width RISNet's float32 activations take 1.2 KB
#: per pixel (measured on the CPU: peak RSS of a batch of 8 windows less that of 1, per added pixel); the
#: rest is room for cuDNN's workspace and the CUDA arena's rounding up.
BYTES_PER_PIXEL = 4096
#: The share of the free memory the batches may take; the rest is the session's weights and workspace.
MEMORY_SHARE = 0.5
#: More windows than this per batch do not make a GPU faster, they only delay the progress reports.
MAX_BATCH = 64
#: The batch size when the free memory cannot be read.
FALLBACK_BATCH = 16


@lru_cache(maxsize=1)
def prepare_gpu_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the pip packages that ``onnxruntime-gpu[cuda,cudnn]``
    installs (ONNX Runtime 1.21+; a no-op where they are installed system-wide or absent)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def free_gpu_memory() -> int | None:
    """Free bytes on the GPU that CUDA calls device 0 (the first of ``CUDA_VISIBLE_DEVICES``); None when
    NVML cannot tell (no NVIDIA driver)."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        handle = ctypes.c_void_p()
        if visible.isdigit():
            status = nvml.nvmlDeviceGetHandleByIndex_v2(int(visible), ctypes.byref(handle))
        else:
            status = nvml.nvmlDeviceGetHandleByUUID(visible.encode(), ctypes.byref(handle))
        memory = _Memory()
        if status != 0 or nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
            return None
        return int(memory.free)
    finally:
        nvml.nvmlShutdown()


def gpu_batch_size(window: int, free_bytes: int | None = None) -> int:
    """Windows of ``window`` pixels a side per batch that fit in :data:`MEMORY_SHARE` of ``free_bytes``
    (default: :func:`free_gpu_memory`), 1 to :data:`MAX_BATCH`."""
    free_bytes = free_gpu_memory() if free_bytes is None else free_bytes
    if free_bytes is None:
        return FALLBACK_BATCH
    fits = int(free_bytes * MEMORY_SHARE) // (window * window * BYTES_PER_PIXEL)
    return max(1, min(MAX_BATCH, fits))


class DeviceBatches:
    """A session's batches through IO binding, with input and output buffers kept on the GPU.

    The buffers take the shape of the first batch and grow when a larger one comes; a smaller batch is
    padded to them with zeros and its part of the output returned.
    """

    def __init__(self, session: ort.InferenceSession, device_id: int = 0) -> None:
        self.session = session
        self.device_id = device_id
        self.binding = session.io_binding()
        self.host: np.ndarray | None = None
        self.input: ort.OrtValue | None = None
        self.output: ort.OrtValue | None = None
        # One binding and one pair of buffers: batches of several threads take turns.
        self.lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(B, 1, H, W)`` of a float32 batch ``(B, 3, H, W)``."""
        with self.lock:
            host = self._buffers(batch.shape)
            n = len(batch)
            if n == len(host):
                host = batch
            else:
                host[:n] = batch
                host[n:] = 0
            assert self.input is not None and self.output is not None
            self.input.update_inplace(host)
            self.session.run_with_iobinding(self.binding)
            return np.asarray(self.output.numpy()[:n])

    def _buffers(self, shape: tuple[int, ...]) -> np.ndarray:
        """The host staging buffer, after (re)allocating the device buffers when ``shape`` needs it."""
        n, _, height, width = shape
        if self.host is None or self.host.shape[1:] != shape[1:] or len(self.host) < n:
            self.host = np.zeros(shape, np.float32)
            self.input = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", self.device_id)
            self.output = ort.OrtValue.ortvalue_from_shape_and_type(
                (n, 1, height, width), np.float32, "cuda", self.device_id
            )
            self.binding.bind_ortvalue_input(INPUT_NAME, self.input)
            self.binding.bind_ortvalue_output(OUTPUT_NAME, self.output)
            log.info("GPU batch buffers: %d windows of %dx%d", n, height, width)
        return self.host
