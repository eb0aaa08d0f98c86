"""A job's results as Web Mercator map tiles and TileJSON, rendered by rio-tiler from the results' COGs.

rio-tiler reprojects each tile from the COG level (full resolution or an overview) nearest the tile's
resolution, whatever the scene's CRS, so a tile costs a few small block reads at any zoom. Pixels with
no data are transparent. The functions here block (file reads, warping, PNG encoding): the routes run
them in a worker thread. rio-tiler is imported on the first tile, not with the service: it is a third
of the service's import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import rasterio

from roadnet.errors import NotFoundError
from roadnet.outputs import MASK_COLOUR, OutputName

#: Pixels a side of a tile (Leaflet's and OpenStreetMap's).
TILE_SIZE = 256
#: Named into the ETag: a change to how tiles look must change it, or browsers keep old tiles.
RENDERING_VERSION = 1
#: zlib level of the PNGs: 1 encodes in a third of the time of the default 6, the files 4% larger.
PNG_ZLEVEL = 1
#: Opening a result must not list its folder (GDAL looks for sidecar files by default).
GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


class TileLayer(StrEnum):
    """The results a map can show as tiles."""

    scene = "scene"
    mask = "mask"
    probability = "probability"


@dataclass(frozen=True)
class LayerStyle:
    """How a layer is drawn: its COG, the resampling of tiles finer than it, its colour map."""

    source: OutputName
    resampling: str
    #: value -> RGBA, or the name of one of rio-tiler's colour maps; None for RGB data.
    colormap: dict[int, tuple[int, int, int, int]] | str | None
    description: str

    @property
    def resampling_options(self) -> dict[str, str]:
        """rio-tiler's options: the same resampling to read an overview and to reproject it."""
        return {"resampling_method": self.resampling, "reproject_method": self.resampling}


#: The mask: roads in the page's road colour, background transparent, so the scene shows through.
MASK_COLOURMAP = {0: (0, 0, 0, 0), 1: MASK_COLOUR}

LAYERS: dict[TileLayer, LayerStyle] = {
    TileLayer.scene: LayerStyle(OutputName.scene, "bilinear", None, "The scene, 8-bit RGB"),
    TileLayer.mask: LayerStyle(
        OutputName.mask, "nearest", MASK_COLOURMAP, "Road pixels in pink, the rest transparent"
    ),
    # Stored as probability x 254 (255 no data), so viridis's 256 entries span 0 to 1.
    TileLayer.probability: LayerStyle(
        OutputName.probability,
        "nearest",
        "viridis",
        "Road probability 0 (dark purple) to 1 (yellow), viridis",
    ),
}


def render_tile(path: Path, layer: TileLayer, z: int, x: int, y: int) -> bytes:
    """The PNG of Web Mercator tile ``z/x/y`` of ``layer`` from its COG ``path`` (RGBA: no data is
    transparent); :class:`NotFoundError` for a tile outside the layer's bounds, or off the zoom's grid."""
    from rio_tiler.colormap import cmap
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    # Off the zoom level's grid there is no tile at all; and such a tile's Web Mercator bounds can reach
    # 1e30 m, on which PROJ loops for minutes holding the GIL, so that the whole service stops answering.
    if x >= 2**z or y >= 2**z:
        raise NotFoundError(f"there is no tile {z}/{x}/{y}: at zoom {z}, x and y run from 0 to {2**z - 1}")
    style = LAYERS[layer]
    colormap = cmap.get(style.colormap) if isinstance(style.colormap, str) else style.colormap
    with rasterio.Env(**GDAL_OPTIONS), Reader(str(path)) as src:
        try:
            image = src.tile(x, y, z, tilesize=TILE_SIZE, **style.resampling_options)
        except TileOutsideBounds:
            raise NotFoundError(f"tile {z}/{x}/{y} lies outside the {layer.value} layer") from None
    return image.render(img_format="PNG", colormap=colormap, ZLEVEL=PNG_ZLEVEL)


def tilejson(path: Path, layer: TileLayer, tiles_url: str) -> dict[str, Any]:
    """The TileJSON 3.0 document of ``layer`` (its COG at ``path``), its tiles at ``tiles_url`` (a
    template with ``{z}``, ``{x}``, ``{y}``): WGS 84 bounds, and the zooms from the coarsest overview
    (``minzoom``) to the full resolution (``maxzoom``)."""
    from rio_tiler.io import Reader

    with rasterio.Env(**GDAL_OPTIONS), Reader(str(path)) as src:
        west, south, east, north = src.get_geographic_bounds("EPSG:4326")
        minzoom, maxzoom = src.minzoom, src.maxzoom
    return {
        "tilejson": "3.0.0",
        "name": layer.value,
        "description": LAYERS[layer].description,
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, minzoom],
    }
