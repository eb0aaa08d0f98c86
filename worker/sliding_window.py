"""The paper's inference: fixed windows at a stride, overlapping probabilities averaged.

One implementation serves training's validation (a PyTorch model behind ``predict``) and the worker
(an ONNX Runtime session behind ``predict``): both call :func:`predict_array` or build on
:func:`window_starts`. ``predict`` takes a float32 batch ``(B, 3, window, window)`` of raw 0-255 RGB
(normalisation is part of the model) and returns road probabilities ``(B, 1, window, window)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows along one axis so that every pixel is covered.

    The starts step by ``stride``; a last window aligned to the end is added when the stride does not
    land there, so edge pixels are covered without padding. A side shorter than the window gets one
    window at 0 (the caller pads the image to the window).
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    if stride > window:
        raise ValueError(f"stride {stride} larger than window {window} would leave pixels unpredicted")
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def iter_batches(
    image: np.ndarray, origins: list[tuple[int, int]], window: int, batch_size: int
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Yield ``(origins, batch)`` with each batch's windows cut from ``image`` ``(3, H, W)`` as float32."""
    for first in range(0, len(origins), batch_size):
        chunk = origins[first : first + batch_size]
        batch = np.stack([image[:, r : r + window, c : c + window] for r, c in chunk]).astype(np.float32)
        yield chunk, batch


def accumulate(
    image: np.ndarray,
    origins: list[tuple[int, int]],
    predict: PredictFn,
    window: int,
    batch_size: int,
    total: np.ndarray,
    count: np.ndarray,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Add each window's prediction into the running ``total`` and ``count`` accumulators (in place).

    ``image``, ``total`` and ``count`` share one pixel grid; ``origins`` are (row, col) in that grid.
    """
    for chunk, batch in iter_batches(image, origins, window, batch_size):
        probs = np.asarray(predict(batch), dtype=np.float32).reshape(len(chunk), window, window)
        for (r, c), prob in zip(chunk, probs, strict=True):
            total[r : r + window, c : c + window] += prob
            count[r : r + window, c : c + window] += 1
        if on_batch is not None:
            on_batch(len(chunk))


def predict_array(
    image: np.ndarray,
    predict: PredictFn,
    window: int = 256,
    stride: int = 64,
    batch_size: int = 16,
) -> np.ndarray:
    """Road probability ``(H, W)`` for an in-memory image ``(3, H, W)`` of raw 0-255 values.

    Every pixel's probability is the mean over all windows that cover it. Sides shorter than the
    window are black-filled to the window, as in training, and cropped back.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image of shape (3, H, W), got {image.shape}")
    _, height, width = image.shape
    padded_h, padded_w = max(height, window), max(width, window)
    if (padded_h, padded_w) != (height, width):
        image = np.pad(image, ((0, 0), (0, padded_h - height), (0, padded_w - width)))
    origins = [
        (r, c)
        for r in window_starts(padded_h, window, stride)
        for c in window_starts(padded_w, window, stride)
    ]
    total = np.zeros((padded_h, padded_w), np.float32)
    count = np.zeros((padded_h, padded_w), np.float32)
    accumulate(image, origins, predict, window, batch_size, total, count)
    return (total / count)[:height, :width]
