"""A PNG preview of a scene with its road network drawn over it (the service's /results/preview)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw
from pyproj import Transformer
from rasterio.enums import Resampling

from worker.apls import read_lines
from worker.scene import inspect_scene, open_scene

#: Road lines: yellow over a dark red casing, visible on bright and dark imagery alike.
ROAD_COLOUR = (255, 230, 0)
CASING_COLOUR = (170, 0, 0)


def render_preview(scene: Path, roads_geojson: Path, out_png: Path, max_size: int = 2048) -> Path:
    """Write ``out_png``: the scene at most ``max_size`` pixels a side with the roads drawn over it.

    The scene is read as inference reads it (:mod:`worker.scene`: its RGB bands, 8-bit data as is,
    other data stretched 2-98 %), downsampled by averaging; no data is black. The roads are GeoJSON in
    lon/lat (RFC 7946), or pixel coordinates when the scene is not georeferenced. Returns ``out_png``.
    """
    info = inspect_scene(Path(scene), require_georeference=False, min_side=1, max_pixels=2**62)
    factor = max(1.0, max(info.width, info.height) / max_size)
    height, width = max(1, round(info.height / factor)), max(1, round(info.width / factor))
    with open_scene(info) as src:
        data = src.read(info.bands, out_shape=(3, height, width), masked=True, resampling=Resampling.average)
    values = np.asarray(data.data, dtype=np.float32)
    if info.stretch is not None:
        for band, (low, high) in zip(values, info.stretch, strict=True):
            band[:] = (band - low) * (255.0 / (high - low))
    rgb = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    rgb[:, np.ma.getmaskarray(data).all(axis=0)] = 0

    image = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)), "RGB")
    draw = ImageDraw.Draw(image)
    to_pixel = ~Affine(*info.transform)
    to_scene = Transformer.from_crs("EPSG:4326", info.crs, always_xy=True) if info.georeferenced else None
    core = max(2, round(max(width, height) / 400))
    lines = []
    for line in read_lines(roads_geojson):
        coords = shapely.get_coordinates(line)
        x, y = coords[:, 0], coords[:, 1]
        if to_scene is not None:
            x, y = to_pixel @ to_scene.transform(x, y)
        lines.append(
            list(zip((np.asarray(x) / factor).tolist(), (np.asarray(y) / factor).tolist(), strict=True))
        )
    for width_px, colour in ((core + 2, CASING_COLOUR), (core, ROAD_COLOUR)):
        for points in lines:
            draw.line(points, fill=colour, width=width_px, joint="curve")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, format="PNG", optimize=True)
    return out_png
