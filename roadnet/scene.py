"""What a scene is, checked before any work starts, and how its pixels become 8-bit RGB.

:func:`inspect_scene` opens any raster GDAL reads, refuses what inference cannot use (with a message that
says why) and returns a :class:`SceneInfo`; the service calls it to validate uploads and the worker to
plan a prediction. :func:`read_rgb` reads a block of rows as uint8 RGB plus a validity mask.

The rules:

- Bands: three bands are used as R, G, B. By default the bands whose colour interpretation is red,
  green and blue, otherwise bands 1, 2, 3 (so RGBA and RGB+NIR use their first three); ``bands`` picks
  others (1-based, e.g. ``(3, 2, 1)`` for BGR). Fewer than three bands are refused.
- 8-bit stretch: uint8 data are used as they are. Any other dtype (uint16, float, ...) is stretched per
  band, linearly from the band's 2nd percentile (0) to its 98th percentile (255), clipped. The
  percentiles come from one decimated read of the whole scene (at most 1024 pixels on the long side,
  overviews when the file has them), taken once, so every block of a scene is stretched alike.
- No data: a pixel is no data where GDAL's mask (nodata value, alpha band or mask band) marks all three
  used bands invalid, or where any used band is NaN or infinite. No-data pixels are fed to the model as
  black and come out as no data; the stretch's percentiles ignore them.
- Bounded cost: checking a scene reads at most about :data:`SAMPLE_PIXELS` pixels whatever its size and
  tiling: a decimated read where that level (the scene, or an overview) is small enough, else
  :data:`SAMPLE_BLOCKS` blocks spread over the scene. GDAL decodes a whole block to read any of its
  pixels, so a block (tile or strip) over :data:`MAX_BLOCK_BYTES` is refused.
- Georeference: a raster without a CRS or geotransform (plain JPEG/PNG) is accepted with a warning,
  and results are in pixel coordinates, unless ``require_georeference`` is set.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage

from roadnet.errors import BandCountError, NotGeoreferencedError, SceneSizeError, UnreadableRasterError
from roadnet.settings import get_settings
from roadnet.white_fill import metres_per_pixel, white, white_fill

log = logging.getLogger(__name__)

#: The long side of the decimated read that checks readability and gives the stretch percentiles.
STATS_SIDE = 1024
#: The most pixels a check reads from one level (the scene or an overview) in a decimated read.
SAMPLE_PIXELS = 4096 * 4096
#: Blocks read, spread over the scene, when a decimated read would cost more than SAMPLE_PIXELS.
SAMPLE_BLOCKS = 64
#: The side of each block's decimated read among the SAMPLE_BLOCKS.
SAMPLE_BLOCK_SIDE = 128
#: The largest block (tile or strip, every band) accepted: about 9 000 x 9 000 RGB pixels of 8 bit.
MAX_BLOCK_BYTES = 256 * 1024**2
#: The long side of the decimated read of the whole scene that finds its white fill.
FILL_SIDE = 1024
#: Percentiles of the 8-bit stretch for non-uint8 data.
STRETCH_PERCENTILES = (2.0, 98.0)
#: The smallest side accepted by default: the paper's window.
MIN_SIDE = 256


@dataclass(frozen=True)
class SceneInfo:
    """A readable scene and how to turn it into 8-bit RGB."""

    path: Path
    driver: str
    width: int
    height: int
    count: int
    dtype: str
    #: CRS as WKT, or None when the raster has none.
    crs: str | None
    #: The affine geotransform (a, b, c, d, e, f); the identity when not georeferenced.
    transform: tuple[float, float, float, float, float, float]
    georeferenced: bool
    #: The 1-based bands used as R, G, B.
    bands: tuple[int, int, int]
    #: Whether a nodata value, alpha band or mask band can mark pixels as no data.
    has_mask: bool
    #: Per used band (low, high) of the linear stretch to 8 bit; None for uint8 data (used as is).
    stretch: tuple[tuple[float, float], ...] | None
    #: The share of pixels that hold data, estimated from the checked sample.
    valid_fraction: float
    warnings: tuple[str, ...] = ()


def _unreadable(path: Path, exc: Exception) -> UnreadableRasterError:
    # rasterio's read errors say "see previous exception"; the cause holds GDAL's own message.
    detail = str(exc.__cause__ or exc).rstrip(".")
    if path.is_file() and path.stat().st_size == 0:
        detail = "the file is empty (0 bytes)"
    return UnreadableRasterError(
        f"{path.name} is not a raster that can be read, or it is truncated or corrupt: {detail}. "
        "Upload a complete GeoTIFF, JPEG or PNG image."
    )


def _open(path: Path) -> DatasetReader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _choose_bands(src: DatasetReader, bands: tuple[int, ...] | None) -> tuple[int, int, int]:
    if src.count < 3:
        if src.count == 1 and src.colorinterp[0] == ColorInterp.palette:
            kind = "single-band colour-mapped (palette)"
        else:
            kind = "single-band (grayscale or panchromatic)" if src.count == 1 else f"{src.count}-band"
        raise BandCountError(
            f"{Path(src.name).name} is a {kind} raster; road extraction needs three bands (red, green, "
            "blue). Upload an RGB image (3 bands, or 4 with alpha or near-infrared)."
        )
    if bands is None:
        interp = list(src.colorinterp)
        wanted = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        bands = tuple(interp.index(c) + 1 for c in wanted) if all(c in interp for c in wanted) else (1, 2, 3)
    if len(bands) != 3 or any(not 1 <= b <= src.count for b in bands):
        raise BandCountError(
            f"band order {bands} does not name three bands of {Path(src.name).name}, which has bands "
            f"1..{src.count}"
        )
    return (bands[0], bands[1], bands[2])


def _check_size(src: DatasetReader, min_side: int, max_pixels: int) -> None:
    name = Path(src.name).name
    if src.width < min_side or src.height < min_side:
        raise SceneSizeError(
            f"{name} is {src.width}x{src.height} pixels, smaller than the model's {min_side}x{min_side} "
            f"window; upload a scene at least {min_side} pixels on each side"
        )
    if src.width * src.height > max_pixels:
        raise SceneSizeError(
            f"{name} is {src.width}x{src.height} = {src.width * src.height:,} pixels, more than the "
            f"limit of {max_pixels:,} (ROADNET_MAX_SCENE_PIXELS); split it into smaller scenes"
        )


def _check_blocks(src: DatasetReader) -> None:
    block_h, block_w = src.block_shapes[0]
    size = block_h * block_w * src.count * np.dtype(src.dtypes[0]).itemsize
    if size > MAX_BLOCK_BYTES:
        raise SceneSizeError(
            f"{Path(src.name).name} is stored in blocks of {block_w}x{block_h} pixels ({size / 2**20:,.0f} "
            f"MiB each, more than {MAX_BLOCK_BYTES // 2**20} MiB), which cannot be read in parts; save it "
            "tiled, e.g. gdal_translate -co TILED=YES in.tif out.tif"
        )


def _sample(src: DatasetReader, used: tuple[int, int, int]) -> np.ma.MaskedArray:
    """Pixels ``(3, n)`` from all over the scene, read at a bounded cost (see the module docstring)."""
    shrink = max(1.0, max(src.width, src.height) / STATS_SIDE)
    # GDAL reads a decimated request from the coarsest overview still at least as fine as asked for.
    level = max(f for f in (1, *src.overviews(used[0])) if f <= shrink)
    if src.width * src.height / level**2 <= SAMPLE_PIXELS:
        out_shape = (3, max(1, int(src.height / shrink)), max(1, int(src.width / shrink)))
        return src.read(used, out_shape=out_shape, masked=True).reshape(3, -1)
    block_h, block_w = src.block_shapes[0]
    n_rows, n_cols = math.ceil(src.height / block_h), math.ceil(src.width / block_w)
    wanted = max(1, min(SAMPLE_BLOCKS, SAMPLE_PIXELS // (block_h * block_w)))
    cols = min(n_cols, math.isqrt(wanted))
    rows = min(n_rows, wanted // cols)
    parts = []
    for row in np.unique(np.linspace(0, n_rows - 1, rows).round().astype(int)):
        for col in np.unique(np.linspace(0, n_cols - 1, cols).round().astype(int)):
            window = Window(col * block_w, row * block_h, block_w, block_h).intersection(
                Window(0, 0, src.width, src.height)
            )
            side = (min(window.height, SAMPLE_BLOCK_SIDE), min(window.width, SAMPLE_BLOCK_SIDE))
            parts.append(src.read(used, window=window, out_shape=(3, *side), masked=True).reshape(3, -1))
    return np.ma.concatenate(parts, axis=1)


def _invalid(data: np.ma.MaskedArray) -> np.ndarray:
    """Where ``data`` (bands first) is no data: every band masked, or any band NaN or infinite."""
    invalid = np.asarray(np.ma.getmaskarray(data).all(axis=0))
    if data.dtype.kind == "f":
        invalid |= ~np.isfinite(np.asarray(data.data)).all(axis=0)
    return invalid


def _stretch_from(sample: np.ma.MaskedArray) -> tuple[tuple[float, float], ...]:
    limits = []
    for band in sample:
        values = band.compressed()
        values = values[np.isfinite(values)]
        if values.size == 0:
            low, high = 0.0, 1.0
        else:
            low, high = (float(v) for v in np.percentile(values, STRETCH_PERCENTILES))
        limits.append((low, high if high > low else low + 1.0))
    return tuple(limits)


def inspect_scene(
    path: Path,
    *,
    require_georeference: bool,
    bands: tuple[int, ...] | None = None,
    min_side: int = MIN_SIDE,
    max_pixels: int | None = None,
) -> SceneInfo:
    """Check that ``path`` is a scene inference can use and say how to read it.

    Reads a bounded sample (see the module docstring) and the last block, so it is quick on scenes of
    any size. Raises :class:`UnreadableRasterError` (not a raster, truncated, corrupt),
    :class:`BandCountError` (fewer than three bands, or a bad ``bands``), :class:`SceneSizeError` (a
    side under ``min_side``, more than ``max_pixels`` pixels (default ``ROADNET_MAX_SCENE_PIXELS``), or
    blocks too large to read in parts) and :class:`NotGeoreferencedError` (no CRS or geotransform while
    ``require_georeference``).
    """
    path = Path(path)
    if max_pixels is None:
        max_pixels = get_settings().max_scene_pixels
    try:
        src = _open(path)
    except RasterioError as exc:
        raise _unreadable(path, exc) from exc
    with src:
        used = _choose_bands(src, bands)
        _check_size(src, min_side, max_pixels)
        notes = []
        georeferenced = src.crs is not None and not src.transform.is_identity
        if not georeferenced:
            if require_georeference:
                raise NotGeoreferencedError(
                    f"{path.name} has no coordinate reference system or geotransform, so its roads "
                    "cannot be placed on a map; upload a GeoTIFF (or add a .aux.xml/world file)"
                )
            notes.append(f"{path.name} is not georeferenced: results are in pixel coordinates")
            log.warning(notes[-1])
        _check_blocks(src)
        # The sample may skip the file's end; the last block shows a truncated file.
        block_h, block_w = (min(b, n) for b, n in zip(src.block_shapes[0], src.shape, strict=True))
        last = Window(src.width - block_w, src.height - block_h, block_w, block_h)
        try:
            sample = _sample(src, used)
            src.read(used, window=last, out_shape=(3, min(block_h, 16), min(block_w, 16)))
        except RasterioError as exc:
            raise _unreadable(path, exc) from exc
        mask_flags = {flag for band in used for flag in src.mask_flag_enums[band - 1]}
        has_mask = any(flag.name != "all_valid" for flag in mask_flags)
        stretch = None if src.dtypes[used[0] - 1] == "uint8" else _stretch_from(sample)
        valid_fraction = 1.0 - float(_invalid(sample).mean()) if sample.size else 0.0
        return SceneInfo(
            path=path,
            driver=src.driver,
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=src.dtypes[used[0] - 1],
            crs=src.crs.to_wkt() if src.crs is not None else None,
            transform=tuple(src.transform)[:6],
            georeferenced=georeferenced,
            bands=used,
            has_mask=has_mask,
            stretch=stretch,
            valid_fraction=valid_fraction,
            warnings=tuple(notes),
        )


def open_scene(info: SceneInfo) -> DatasetReader:
    """Open the scene for :func:`read_rgb` (without the not-georeferenced warning)."""
    try:
        return _open(info.path)
    except RasterioError as exc:
        raise _unreadable(info.path, exc) from exc


def read_rgb(
    src: DatasetReader, info: SceneInfo, row_start: int, row_stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[row_start, row_stop)`` as uint8 RGB ``(3, rows, width)`` and a validity mask ``(rows, width)``.

    No-data pixels are black in the RGB array and False in the mask.
    """
    window = Window(0, row_start, info.width, row_stop - row_start)
    try:
        data = src.read(info.bands, window=window, masked=True, boundless=True)
    except RasterioError as exc:
        raise _unreadable(info.path, exc) from exc
    return to_rgb8(data, info.stretch)


@dataclass(frozen=True)
class WhiteFill:
    """Where a scene's white fill (:mod:`roadnet.white_fill`) lies, on a decimated grid of the scene."""

    coarse: np.ndarray  # (h, w) bool
    height: int
    width: int

    def rows(self, rgb: np.ndarray, row_start: int) -> np.ndarray:
        """The white fill of ``rgb`` (3, rows, width), the scene's rows from ``row_start``: its white
        pixels within the decimated regions."""
        h, w = self.coarse.shape
        rows = np.arange(row_start, row_start + rgb.shape[1]) * h // self.height
        cols = np.arange(rgb.shape[2]) * w // self.width
        return white(rgb) & self.coarse[np.ix_(rows, cols)]


def find_white_fill(src: DatasetReader, info: SceneInfo) -> WhiteFill | None:
    """The scene's white fill, found on one decimated read of the whole scene (edge-touching and area
    rules need every region whole, which strips cut), or None when it has none."""
    shrink = max(1.0, max(info.height, info.width) / FILL_SIDE)
    shape = (3, max(1, round(info.height / shrink)), max(1, round(info.width / shrink)))
    try:
        data = src.read(info.bands, out_shape=shape, masked=True)
    except RasterioError as exc:
        raise _unreadable(info.path, exc) from exc
    rgb, _ = to_rgb8(data, info.stretch)
    crs = CRS.from_wkt(info.crs) if info.georeferenced and info.crs else None
    side = metres_per_pixel(Affine(*info.transform), crs, info.height) * info.height / shape[1]
    coarse = white_fill(rgb, side)
    if not coarse.any():
        return None
    # One decimated pixel more all round: the full-resolution test (white) keeps imagery out, and the
    # fill's edge pixels, rounded to the coarse grid either way, stay in.
    return WhiteFill(ndimage.binary_dilation(coarse), info.height, info.width)


def to_rgb8(
    data: np.ma.MaskedArray, stretch: tuple[tuple[float, float], ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bands ``(3, rows, cols)`` as uint8 RGB (stretched when ``stretch`` is given, see the module
    docstring) and their validity mask ``(rows, cols)``; no-data pixels are black."""
    invalid = _invalid(data)
    values = np.asarray(data.data)
    if stretch is None:
        rgb = values.astype(np.uint8, copy=False)
    else:
        rgb = np.empty(values.shape, np.uint8)
        for i, (low, high) in enumerate(stretch):
            scaled = (values[i].astype(np.float32) - low) * (255.0 / (high - low))
            scaled[invalid] = 0  # NaN and inf have no 8-bit value; these pixels are no data anyway
            rgb[i] = np.rint(np.clip(scaled, 0, 255))
    rgb[:, invalid] = 0
    return rgb, ~invalid
