"""Checking an uploaded scene, isolated: every raster and PROJ call of an upload runs here, in a child
process with a deadline and a memory limit.

Why a process and not a thread: a thread cannot be stopped, and PROJ can loop for many minutes on
absurd coordinates (EPSG:3857 near 1e30 m) or GDAL decode a deflate bomb for a minute; in a thread that
would hold a worker thread (and PROJ's lock) for good. A child process is killed at the deadline, and its
address space is capped (``RLIMIT_AS``) so no file can take the API's memory. Children are forked by a
forkserver that has already imported rasterio, so a check costs a fork (milliseconds), not an
interpreter start; the forkserver itself never touches an upload.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # what GDAL's errors raise; rasterio.errors does not export it
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform_bounds

from roadnet.errors import GeoreferenceError, InputError, RoadnetError, SceneCheckTimeoutError
from roadnet.scene import SceneInfo, inspect_scene

#: GDAL's block cache (MB) while an upload is checked: by default it may grow to 5% of the machine's
#: memory, which a large upload's sample would fill.
VALIDATION_CACHE_MB = 64
#: The largest projected coordinate accepted, in metres: far beyond any projection of the Earth (its
#: circumference is 4e7 m), and small enough that PROJ answers at once.
MAX_PROJECTED_M = 1e8

_forkserver = multiprocessing.get_context("forkserver")
# "__main__" too, as multiprocessing does by default: each child then finds it imported, not run again.
_forkserver.set_forkserver_preload(["__main__", __name__])


@dataclass(frozen=True)
class CheckedScene:
    """What the service records about an accepted scene."""

    width: int
    height: int
    valid_fraction: float
    #: Size, bands, dtype and CRS, as the status document shows them.
    summary: dict[str, Any]
    #: WGS 84 ``[west, south, east, north]``; None for a scene without a CRS.
    bbox: list[float] | None


def _geotransform(info: SceneInfo) -> Affine:
    transform = Affine(*info.transform)
    if not all(math.isfinite(v) for v in info.transform) or transform.determinant == 0:
        raise GeoreferenceError(
            f"{info.path.name} has an unusable geotransform {info.transform} (a pixel size of zero, or "
            "values that are not finite); fix its georeference, e.g. with gdal_edit.py -a_ullr"
        )
    return transform


def _check_coordinates(info: SceneInfo, crs: CRS, xs: list[float], ys: list[float]) -> None:
    """Refuse corners off the globe (geographic CRS) or absurdly far out (projected), before PROJ."""
    name = info.path.name
    if crs.is_geographic:
        if not (all(-90 <= y <= 90 for y in ys) and all(-180 <= x <= 360 for x in xs)):
            raise GeoreferenceError(
                f"{name}'s corners (longitude {min(xs):g} to {max(xs):g}, latitude {min(ys):g} to "
                f"{max(ys):g}) are off the globe; fix its georeference"
            )
        return
    unit = crs.linear_units_factor[1] if crs.is_projected else 1.0
    if max(abs(v) for v in (*xs, *ys)) * unit > MAX_PROJECTED_M:
        raise GeoreferenceError(
            f"{name}'s coordinates reach {max(abs(v) for v in (*xs, *ys)):.3g} map units, farther than "
            f"{MAX_PROJECTED_M:g} m from the origin of its CRS; fix its georeference"
        )


def scene_bbox(info: SceneInfo) -> list[float] | None:
    """The scene's bounds in WGS 84 longitude/latitude, ``[west, south, east, north]`` (RFC 7946 bbox),
    for placing it on a map; None when it has no CRS.

    All four corners count, so a rotated geotransform is covered; the edges are densified in the
    transformation, since a straight edge in a projected CRS bulges in lon/lat. Raises
    :class:`GeoreferenceError` for a georeference that cannot be placed on the globe.
    """
    if info.crs is None:
        return None
    transform = _geotransform(info)
    corners = [transform * (col, row) for col in (0, info.width) for row in (0, info.height)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    try:
        crs = CRS.from_wkt(info.crs)
        _check_coordinates(info, crs, xs, ys)
        bbox = list(transform_bounds(crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys)))
    except GeoreferenceError:
        raise
    except (CRSError, RasterioError, CPLE_BaseError):
        raise GeoreferenceError(
            f"{info.path.name}'s coordinate reference system cannot be transformed to longitude and "
            "latitude (a local or engineering CRS?); give it a CRS with an EPSG code or a full definition"
        ) from None
    south, north = bbox[1], bbox[3]
    if not all(math.isfinite(v) for v in bbox) or not -90 <= south <= north <= 90:
        raise GeoreferenceError(
            f"{info.path.name}'s bounds come out as {bbox} in longitude/latitude, which is not on the "
            "globe; fix its georeference"
        )
    return bbox


def check_scene(path: Path, *, max_pixels: int) -> CheckedScene:
    """Check ``path`` as a job's input (see :func:`roadnet.scene.inspect_scene`, georeference required)
    and place it on the globe. Raises :class:`InputError` subclasses for a scene that cannot be used."""
    with rasterio.Env(GDAL_CACHEMAX=VALIDATION_CACHE_MB):
        info = inspect_scene(path, require_georeference=True, max_pixels=max_pixels)
        bbox = scene_bbox(info)
        summary = {
            "width": info.width,
            "height": info.height,
            "bands": info.count,
            "dtype": info.dtype,
            "crs": CRS.from_wkt(info.crs).to_string() if info.crs else None,
        }
    return CheckedScene(info.width, info.height, info.valid_fraction, summary, bbox)


def _check_in_child(conn: Connection, path: Path, max_pixels: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ok", check_scene(path, max_pixels=max_pixels)))
    except RoadnetError as exc:
        conn.send(("error", exc))
    except MemoryError:
        conn.send(("error", None))
    finally:
        conn.close()


def check_scene_isolated(path: Path, *, max_pixels: int, timeout_s: float, memory_mb: int) -> CheckedScene:
    """:func:`check_scene` in a child process killed after ``timeout_s``, with ``memory_mb`` of address
    space. Blocks (call it in a thread). Raises :class:`SceneCheckTimeoutError` past the deadline and
    :class:`InputError` when the check ran out of memory or died."""
    receiver, sender = _forkserver.Pipe(duplex=False)
    child = _forkserver.Process(
        target=_check_in_child, args=(sender, path, max_pixels, memory_mb * 2**20), daemon=True
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise SceneCheckTimeoutError(
                f"{path.name} took longer than {timeout_s:g} s to check (ROADNET_SCENE_CHECK_TIMEOUT_S), "
                "so it was refused; check its georeference and compression, or split it"
            )
        outcome, value = receiver.recv()
    except EOFError:  # the child died without answering: killed by the memory limit, or a crash
        outcome, value = "error", None
    finally:
        child.kill()
        child.join()
        receiver.close()
    if outcome == "ok":
        assert isinstance(value, CheckedScene)
        return value
    if isinstance(value, RoadnetError):
        raise value
    raise InputError(
        f"checking {path.name} needed more than {memory_mb} MiB of memory (ROADNET_SCENE_CHECK_MEMORY_MB) "
        "or failed; save it tiled with overviews (gdal_translate -co TILED=YES, gdaladdo), or split it"
    )
