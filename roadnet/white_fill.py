"""White fill: the saturated white that some mosaics paint outside their imagery, read as no data.

Massachusetts' tiles are white where there is no imagery, with no alpha or declared nodata to say so;
training ignores those pixels (``training.data``). Only large regions count, so a white roof or a
bright road stays imagery. The worker does not apply it (yet): on SpaceNet's 0.3 m 8-bit Vegas scene
bright ground forms regions this large too, so the rule needs the scene's resolution first.
"""

from __future__ import annotations

import numpy as np

WHITE_FILL = 250  # every band at least this
WHITE_FILL_MIN_PX = 10_000  # 100 m x 100 m at 1 m: far larger than any roof


def white_fill(rgb: np.ndarray) -> np.ndarray:
    """Pixels of ``rgb`` (H, W, 3) uint8 in white regions (all bands >= :data:`WHITE_FILL`) of at least
    :data:`WHITE_FILL_MIN_PX` pixels, as an (H, W) bool array."""
    from scipy import ndimage

    white = np.all(rgb >= WHITE_FILL, axis=2)
    labels, count = ndimage.label(white)
    if not count:
        return white
    sizes = np.bincount(labels.ravel())
    large = sizes >= WHITE_FILL_MIN_PX
    large[0] = False
    return large[labels]
