"""PNG previews of a job for the web map, the same size and extent: the scene with its road network
drawn over it (/results/preview) and the road mask over transparency (/results/mask_preview)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.io import DatasetReader

from roadnet.outputs import MASK_COLOUR
from roadnet.scene import SceneInfo, open_scene, to_rgb8

#: Road lines: yellow over a dark red casing, visible on bright and dark imagery alike.
ROAD_COLOUR = (255, 230, 0)
CASING_COLOUR = (170, 0, 0)
#: The longest side of a preview, in pixels.
MAX_SIZE = 2048


def read_downsampled(
    src: DatasetReader, bands: Sequence[int], max_size: int
) -> tuple[np.ma.MaskedArray, float]:
    """``bands`` of ``src`` at most ``max_size`` pixels a side, each pixel the average of the block it
    covers (in the data type of ``src``, so rounded; no data masked), and the factor it was downsampled
    by (1 when not).

    Every preview of a scene is read through here, so they all have the same size and extent.
    """
    factor = max(1.0, max(src.width, src.height) / max_size)
    height, width = max(1, round(src.height / factor)), max(1, round(src.width / factor))
    data = src.read(
        list(bands),
        out_shape=(len(bands), height, width),
        masked=True,
        resampling=Resampling.average,
    )
    return data, factor


def render_preview(
    scene: SceneInfo, lines: Sequence[np.ndarray], out_png: Path, max_size: int = MAX_SIZE
) -> Path:
    """Write ``out_png``: the scene at most ``max_size`` pixels a side with the roads drawn over it.

    The scene is read as inference reads it (:mod:`roadnet.scene`: its RGB bands, 8-bit data as is,
    other data stretched 2-98 %), downsampled by averaging; no data is black. The roads are lines of
    (column, row) coordinates in the scene's pixel grid, as the vectoriser traced them
    (:attr:`worker.vector.vectorize.VectorizeSummary.lines`). ``scene`` is the scene as inference
    inspected it (:attr:`worker.inference.predict.PredictionOutputs.scene`), so a job checks its scene
    once. Returns ``out_png``.
    """
    with open_scene(scene) as src:
        data, factor = read_downsampled(src, scene.bands, max_size)
    rgb, _ = to_rgb8(data, scene.stretch)
    height, width = rgb.shape[1:]

    image = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)), "RGB")
    draw = ImageDraw.Draw(image)
    core = max(2, round(max(width, height) / 400))
    points = [[(x, y) for x, y in (line / factor).tolist()] for line in lines]
    for width_px, colour in ((core + 2, CASING_COLOUR), (core, ROAD_COLOUR)):
        for line_points in points:
            draw.line(line_points, fill=colour, width=width_px, joint="curve")
    return _save(image, out_png)


def render_mask_preview(mask: Path, out_png: Path, max_size: int = MAX_SIZE) -> Path:
    """Write ``out_png``: the road mask (1 road, 0 background, its nodata none) as an RGBA PNG the size and
    extent of :func:`render_preview`'s for the same scene: roads opaque :data:`MASK_COLOUR`, the rest
    transparent. Downsampled, a pixel is road when at least half of its block is (GDAL's average
    rounded; its reads offer no maximum): a road narrower than half a preview pixel may break up there,
    as it would in any image of that size. Returns ``out_png``.
    """
    with rasterio.open(mask) as src:
        data, _ = read_downsampled(src, [1], max_size)
    road = np.ma.filled(data[0] > 0, False)
    rgba = np.zeros((*road.shape, 4), dtype=np.uint8)
    rgba[road] = MASK_COLOUR
    return _save(Image.fromarray(rgba, "RGBA"), out_png)


def _save(image: Image.Image, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, format="PNG", optimize=True)
    return out_png
