"""The sliding window's grid: where windows start along a side, and how many a scene gets.

The worker runs its windows on this grid (:mod:`worker.inference.sliding_window`) and the service counts them
to estimate a scene's time (:mod:`roadnet.speed`): one grid, so the estimate counts what the worker runs.
"""

from __future__ import annotations


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


def scene_windows(height: int, width: int, window: int, stride: int) -> int:
    """How many windows the grid puts on a ``height`` x ``width`` scene."""
    return len(window_starts(height, window, stride)) * len(window_starts(width, window, stride))
