"""A road's confidence: the mean road probability along its line, read from the probability raster.

Each line is sampled at every pixel it crosses (points one pixel apart), and the raster is read one
block at a time, each block once for all the lines that cross it, so a city-sized network costs one
pass over the blocks its roads touch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.io import DatasetReader
from rasterio.windows import Window

#: Side of the blocks the probability is read in (pixels).
READ_BLOCK = 1024


def _densify(line: np.ndarray) -> np.ndarray:
    """Points along ``line`` ((n, 2) pixel x, y) at most one pixel apart, its vertices included."""
    steps = np.maximum(1, np.ceil(np.hypot(*np.diff(line, axis=0).T)).astype(int))
    parts = [
        start + np.linspace(0.0, 1.0, n, endpoint=False)[:, None] * (end - start)
        for start, end, n in zip(line[:-1], line[1:], steps, strict=True)
    ]
    return np.concatenate([*parts, line[-1:]])


def mean_along_lines(src: DatasetReader, lines: Sequence[np.ndarray], scale: float) -> list[float | None]:
    """The mean of band 1 of ``src`` along each of ``lines`` ((n, 2) arrays of pixel x, y, pixel centres at
    +0.5), divided by ``scale`` (the raster's value of probability 1) and rounded to 3 decimals; None for
    a line over no data only."""
    if not lines:
        return []
    points = [_densify(line) for line in lines]
    owner = np.repeat(np.arange(len(lines)), [len(p) for p in points])
    xy = np.floor(np.concatenate(points)).astype(np.int64)
    cols = np.clip(xy[:, 0], 0, src.width - 1)
    rows = np.clip(xy[:, 1], 0, src.height - 1)
    values = np.zeros(len(xy))
    valid = np.zeros(len(xy), bool)
    block = (rows // READ_BLOCK) * (src.width // READ_BLOCK + 1) + cols // READ_BLOCK
    order = np.argsort(block, kind="stable")
    bounds = np.flatnonzero(np.diff(block[order])) + 1
    for group in np.split(order, bounds):
        row0, col0 = (rows[group[0]] // READ_BLOCK) * READ_BLOCK, (cols[group[0]] // READ_BLOCK) * READ_BLOCK
        window = Window(col0, row0, min(READ_BLOCK, src.width - col0), min(READ_BLOCK, src.height - row0))
        data = src.read(1, window=window, masked=True)
        picked = data[rows[group] - row0, cols[group] - col0]
        values[group] = np.ma.filled(picked.astype(float), 0.0)
        valid[group] = ~np.ma.getmaskarray(picked)
    sums = np.bincount(owner, weights=values * valid, minlength=len(lines))
    counts = np.bincount(owner, weights=valid, minlength=len(lines))
    return [round(float(s / c / scale), 3) if c else None for s, c in zip(sums, counts, strict=True)]
