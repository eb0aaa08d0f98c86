"""Cloud-Optimised GeoTIFFs: the results' conversion, and the uploaded scene kept as one for map tiles.

A COG has internal tiles and overviews, so a map tile at any zoom reads a few small blocks of the
nearest overview instead of the whole scene (:mod:`service.tiles`). Files are written under a hidden
name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from roadnet.scene import SceneInfo, open_scene, read_rgb

#: Tile size of the COGs, and rows converted at a time.
BLOCK = 512
#: GDAL's block cache while converting: bounded, whatever the scene's size.
GDAL_CACHE_MB = 256
#: JPEG quality of the scene COG: imagery for the eye, a tenth of the size of lossless.
SCENE_JPEG_QUALITY = 90


def write_cog(tiled: Path, final: Path, *, resampling: str, compress: str = "DEFLATE") -> None:
    """Convert the tiled GeoTIFF ``tiled`` into the COG ``final`` with overviews made by ``resampling``
    (a GDAL name: NEAREST for classes, AVERAGE for values and imagery), then delete ``tiled``."""
    partial = final.with_name(f".{final.name}.partial")
    compression = (
        {"COMPRESS": "JPEG", "QUALITY": SCENE_JPEG_QUALITY}
        if compress == "JPEG"
        else {"COMPRESS": compress, "PREDICTOR": "YES"}
    )
    rasterio.shutil.copy(
        tiled,
        partial,
        driver="COG",
        BLOCKSIZE=BLOCK,
        OVERVIEWS="AUTO",
        OVERVIEW_RESAMPLING=resampling,
        BIGTIFF="IF_SAFER",
        **compression,
    )
    os.replace(partial, final)
    tiled.unlink()


def scene_to_cog(info: SceneInfo, out: Path) -> Path:
    """Write the scene as the model sees it (:mod:`roadnet.scene`: its RGB bands, 8 bit) to the COG ``out``:
    JPEG-compressed, with averaged overviews and, when the scene has no data, a mask marking it. Reads and
    writes :data:`BLOCK` rows at a time, so memory depends on the scene's width only. Returns ``out``."""
    tiled = out.with_name(f".{out.name}.tiled.tif")
    profile = {
        "driver": "GTiff",
        "width": info.width,
        "height": info.height,
        "count": 3,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "photometric": "RGB",
        "BIGTIFF": "IF_SAFER",
    }
    if info.georeferenced:
        profile |= {"crs": info.crs, "transform": rasterio.Affine(*info.transform)}
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True),
        warnings.catch_warnings(),
        open_scene(info) as src,
        rasterio.open(tiled, "w", **profile) as dst,
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        for row in range(0, info.height, BLOCK):
            stop = min(row + BLOCK, info.height)
            rgb, valid = read_rgb(src, info, row, stop)
            window = Window(0, row, info.width, stop - row)
            dst.write(rgb, window=window)
            if info.has_mask:
                dst.write_mask(valid, window=window)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        write_cog(tiled, out, resampling="AVERAGE", compress="JPEG")
    return out
