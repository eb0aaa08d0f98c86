"""The paper's inference: fixed windows at a stride, overlapping probabilities averaged.

One implementation serves training's validation (a PyTorch model behind ``predict``) and the worker
(an ONNX Runtime session behind ``predict``): both call :func:`predict_array` or build on the window
grid (:mod:`roadnet.window_grid`). ``predict`` takes a float32 batch ``(B, 3, window, window)`` of raw
0-255 RGB (normalisation is part of the model) and returns road probabilities ``(B, 1, window, window)``.

The core is :func:`predict_rows`, which streams: it asks for image rows as the window grid reaches them
and hands back rows of probability as soon as no later window covers them, so it holds only about one
window's height of the image and the accumulators, whatever the image's height. :func:`predict_array`
is the same computation on an in-memory image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from roadnet.window_grid import window_starts

PredictFn = Callable[[np.ndarray], np.ndarray]
#: ``read_rows(start, stop)`` returns image rows ``[start, stop)`` as ``(3, stop - start, width)``.
RowReader = Callable[[int, int], np.ndarray]


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


def predict_rows(
    read_rows: RowReader,
    height: int,
    width: int,
    predict: PredictFn,
    window: int = 256,
    stride: int = 64,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream the stride-averaged probability of an image of ``height`` x ``width`` (both >= ``window``).

    Yields ``(first_row, probability)`` with ``probability`` ``(rows, width)`` float32, in order and
    covering every row once. Each step predicts whole rows of windows of the global grid
    (:func:`window_starts` on each axis), enough to fill a batch; rows above the next step's first
    window are final and are yielded. ``read_rows`` is called with consecutive, non-overlapping ranges.
    ``on_batch`` gets the number of windows of each predicted batch.
    """
    if height < window or width < window:
        raise ValueError(f"image {height}x{width} is smaller than the window {window}; pad it first")
    row_starts = window_starts(height, window, stride)
    col_starts = window_starts(width, window, stride)
    rows_per_step = math.ceil(batch_size / len(col_starts))
    top = 0  # the image row held at index 0 of the buffers
    image = np.zeros((3, 0, width), np.uint8)  # takes the dtype of what read_rows returns
    total = np.zeros((0, width), np.float32)
    count = np.zeros((0, width), np.float32)
    for first in range(0, len(row_starts), rows_per_step):
        step = row_starts[first : first + rows_per_step]
        held = top + image.shape[1]
        if step[-1] + window > held:
            new = read_rows(held, step[-1] + window)
            image = np.concatenate([image, new], axis=1)
            grow = np.zeros((new.shape[1], width), np.float32)
            total, count = np.concatenate([total, grow]), np.concatenate([count, grow])
        origins = [(r - top, c) for r in step for c in col_starts]
        accumulate(image, origins, predict, window, batch_size, total, count, on_batch)
        done = row_starts[first + rows_per_step] if first + rows_per_step < len(row_starts) else height
        rows = done - top
        yield top, total[:rows] / count[:rows]
        image, total, count, top = image[:, rows:], total[rows:], count[rows:], done


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
    rows = predict_rows(
        lambda start, stop: image[:, start:stop], padded_h, padded_w, predict, window, stride, batch_size
    )
    return np.concatenate([probability for _, probability in rows])[:height, :width]
