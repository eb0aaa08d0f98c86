"""White fill: the saturated white that some mosaics paint outside their imagery, read as no data.

Massachusetts' tiles (and scenes cut from such mosaics) are white where there is no imagery, with no
alpha or declared nodata to say so. Training ignores those pixels (``training.data``); the worker must
too, or the network, never taught what white means, draws a grid of roads there at its window spacing.

A region counts only when it touches the edge of the image (fill surrounds the imagery) and covers at
least :data:`WHITE_FILL_MIN_M2` of ground. Measured on the shared data: Massachusetts' fill is one
edge-touching region of 51-205 ha per 1500 px tile; the largest saturated region of SpaceNet's 0.3 m
Vegas scene (bright roofs and ground at its edge) is 0.13 ha, 14 467 px, which a pixel count alone
took for fill. Only the white pixels themselves become no data, and nothing is visible in saturated
white, roads included, so a roof taken for fill costs no road.
"""

from __future__ import annotations

import math

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import Affine

WHITE_FILL = 250  # every band at least this
WHITE_FILL_MIN_M2 = 50_000.0  # 5 ha: 10x below the smallest Massachusetts fill, 38x above Vegas' roofs
METRES_PER_DEGREE = 111_320.0  # at the equator; longitude scaled by the cosine of the latitude


def metres_per_pixel(transform: Affine, crs: CRS | None, height: int) -> float:
    """The mean ground side of a pixel in metres: degrees converted at the image's middle latitude for a
    geographic CRS, the CRS's linear unit otherwise. Without a CRS, 1 (the pixel is the unit)."""
    if crs is None:
        return 1.0
    side_x = math.hypot(transform.a, transform.d)
    side_y = math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        latitude = math.radians(transform.f + transform.e * height / 2)
        return 0.5 * (side_x * math.cos(latitude) + side_y) * METRES_PER_DEGREE
    return 0.5 * (side_x + side_y) * crs.linear_units_factor[1]


def white(rgb: np.ndarray) -> np.ndarray:
    """Saturated white pixels of ``rgb`` (3, H, W) uint8: every band at least :data:`WHITE_FILL`."""
    return np.all(rgb >= WHITE_FILL, axis=0)


def white_fill(rgb: np.ndarray, metres_per_px: float = 1.0) -> np.ndarray:
    """White fill in ``rgb`` (3, H, W) uint8 at ``metres_per_px``: white regions touching the image's
    edge of at least :data:`WHITE_FILL_MIN_M2`, as an (H, W) bool array."""
    from scipy import ndimage

    labels, count = ndimage.label(white(rgb))
    if not count:
        return np.zeros(labels.shape, bool)
    sizes = np.bincount(labels.ravel())
    fill = sizes * metres_per_px**2 >= WHITE_FILL_MIN_M2
    edge = np.zeros_like(fill)
    edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    fill &= edge
    fill[0] = False
    return fill[labels]
