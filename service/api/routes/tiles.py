"""``/jobs/{id}/tiles``: a successful job's scene, mask and probability as Web Mercator map tiles.

The same key isolation as the results (the job dependency answers 404 for another key's job), and the
same validators as their downloads: an ETag and Last-Modified from the source COG, so a browser asks
again with If-None-Match and gets 304 without a tile being rendered.
"""

from __future__ import annotations

import hashlib
from email.utils import formatdate
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from roadnet.errors import NotFoundError
from roadnet.jobs import JobRecord, JobStore
from service.api.deps import JobDep, StoreDep
from service.api.routes.jobs import require_successful
from service.errors import error_responses
from service.tiles import LAYERS, RENDERING_VERSION, TileLayer, render_tile, tilejson

router = APIRouter(prefix="/jobs/{job_id}/tiles", tags=["jobs"], responses=error_responses(401))

#: Results never change once published, but each key's tiles are its own: browsers only, an hour.
CACHE_CONTROL = "private, max-age=3600"


def _source(record: JobRecord, store: JobStore, layer: TileLayer) -> Path:
    require_successful(record)
    path = store.result_path(record.id, LAYERS[layer].source)
    if not path.is_file():
        raise NotFoundError(f"job {record.id} has no {layer.value} layer (it finished before map tiles)")
    return path


def _validators(path: Path, *what: object) -> dict[str, str]:
    """ETag and Last-Modified of a response made from ``path`` and ``what`` alone."""
    stat = path.stat()
    key = "-".join(str(part) for part in (stat.st_mtime_ns, stat.st_size, RENDERING_VERSION, *what))
    return {
        "ETag": f'"{hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()}"',
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Cache-Control": CACHE_CONTROL,
        "Vary": "X-API-Key, Authorization",
    }


def _not_modified(request: Request, headers: dict[str, str]) -> bool:
    tags = request.headers.get("if-none-match", "")
    return headers["ETag"] in (tag.strip().removeprefix("W/") for tag in tags.split(","))


#: What a layer's requests answer besides their content: not modified, and the errors of
#: :func:`service.api.routes.jobs.require_successful` (not ready: 404; failed: 500) and of the path.
_NOT_MODIFIED_OR_ERROR: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (If-None-Match)"},
    **error_responses(404, 422, 500),
}


@router.get(
    "/{layer}/tilejson.json",
    summary="A layer's TileJSON",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        **_NOT_MODIFIED_OR_ERROR,
    },
)
async def get_tilejson(record: JobDep, store: StoreDep, layer: TileLayer, request: Request) -> Response:
    """TileJSON 3.0 of one layer of a successful job (`scene`, `mask` or `probability`): its tile URL
    template, WGS 84 `bounds`, and `minzoom` (the coarsest overview) to `maxzoom` (full resolution)."""
    path = _source(record, store, layer)
    headers = _validators(path, layer.value, "tilejson", request.base_url)
    if _not_modified(request, headers):
        return Response(status_code=304, headers=headers)
    url = str(request.url_for("get_tile", job_id=record.id, layer=layer.value, z="{z}", x="{x}", y="{y}"))
    document = await run_in_threadpool(tilejson, path, layer, url.replace("%7B", "{").replace("%7D", "}"))
    return JSONResponse(document, headers=headers)


@router.get(
    "/{layer}/{z}/{x}/{y}.png",
    response_class=Response,
    summary="A map tile",
    responses={
        200: {"content": {"image/png": {}}, "description": "A 256 x 256 RGBA PNG; no data is transparent"},
        **_NOT_MODIFIED_OR_ERROR,
    },
)
async def get_tile(
    record: JobDep,
    store: StoreDep,
    layer: TileLayer,
    request: Request,
    z: int = PathParam(ge=0, le=30),
    x: int = PathParam(ge=0),
    y: int = PathParam(ge=0),
) -> Response:
    """Web Mercator (XYZ, EPSG:3857) tile `z/x/y` of one layer of a successful job: `scene` (the image),
    `mask` (roads in colour over transparency) or `probability` (viridis colour map)."""
    path = _source(record, store, layer)
    headers = _validators(path, layer.value, z, x, y)
    if _not_modified(request, headers):
        return Response(status_code=304, headers=headers)
    png = await run_in_threadpool(render_tile, path, layer, z, x, y)
    return Response(png, media_type="image/png", headers=headers)
