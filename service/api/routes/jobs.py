"""``/jobs``: upload a scene to start a job, follow it, list, cancel, and download its results."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from celery import Celery
from fastapi import APIRouter, Query, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from starlette.concurrency import run_in_threadpool

from roadnet.errors import (
    InputError,
    JobFailedError,
    NotFoundError,
    QueueUnavailableError,
    ResultNotReadyError,
)
from roadnet.settings import Settings
from service.api.deps import CeleryDep, JobDep, OwnerDep, SettingsDep, StoreDep
from service.errors import error_responses
from service.schemas import JobCreate, JobPublic, JobsPublic, Link, ResultPublic
from service.uploads import FILE_FIELD, receive_upload
from worker.celery_app import RUN_JOB
from worker.jobs import OUTPUTS, JobRecord, JobStatus, JobStore, OutputName, ResultsResponse
from worker.scene import SceneInfo, inspect_scene

log = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=error_responses(401))

RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"
#: GDAL's block cache (MB) while an upload is checked.
VALIDATION_CACHE_MB = 64


def job_public(record: JobRecord, request: Request) -> JobPublic:
    """The status document of ``record``, with links relative to this request's base URL."""
    base = str(request.base_url).rstrip("/") + f"/jobs/{record.id}"
    links = [Link(href=base, rel="self", type="application/json", title="this status document")]
    if record.status is JobStatus.successful:
        links.append(Link(href=f"{base}/results", rel=RESULTS_REL, type="application/json", title="results"))
        links += [
            Link(href=f"{base}/results/{name}", rel="enclosure", type=OUTPUTS[name].media_type, title=name)
            for name in record.results
        ]
    return JobPublic(
        jobID=record.id,
        status=record.status,
        message=record.message,
        created=record.created,
        started=record.started,
        finished=record.finished,
        updated=record.updated,
        progress=record.progress,
        links=links,
        filename=record.filename,
        scene=record.scene,
        bbox=record.bbox,
        options=record.options,
        summary=record.summary,
    )


def _scene_summary(info: SceneInfo) -> dict[str, Any]:
    return {
        "width": info.width,
        "height": info.height,
        "bands": info.count,
        "dtype": info.dtype,
        "crs": CRS.from_wkt(info.crs).to_string() if info.crs else None,
    }


def scene_bbox(info: SceneInfo) -> list[float] | None:
    """The scene's bounds in WGS 84 longitude/latitude, ``[west, south, east, north]`` (RFC 7946 bbox),
    for placing it on a map; None when it has no CRS.

    All four corners count, so a rotated geotransform is covered; the edges are densified in the
    transformation, since a straight edge in a projected CRS bulges in lon/lat.
    """
    if info.crs is None:
        return None
    transform = Affine(*info.transform)
    corners = [transform * (col, row) for col in (0, info.width) for row in (0, info.height)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    west, south, east, north = transform_bounds(
        CRS.from_wkt(info.crs), "EPSG:4326", min(xs), min(ys), max(xs), max(ys)
    )
    return [west, south, east, north]


def _inspect(path: Path, max_pixels: int) -> SceneInfo:
    """Check an upload as inference will read it, with GDAL's block cache bounded: by default it may
    grow to 5% of the machine's memory, which a large upload's decimated read would fill (measured: 1 GB
    more resident memory for a 1 GB upload)."""
    with rasterio.Env(GDAL_CACHEMAX=VALIDATION_CACHE_MB):
        return inspect_scene(path, require_georeference=True, max_pixels=max_pixels)


def _options(fields: Mapping[str, object]) -> JobCreate:
    """The form fields (or an execute request's inputs) as options; an empty field counts as not given."""
    try:
        return JobCreate.model_validate({name: value for name, value in fields.items() if value != ""})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'options'}: {error['msg']}"
            + (f" (got {error['input']!r})" if error["type"] != "extra_forbidden" else "")
            for error in exc.errors()
        )
        raise InputError(f"invalid options: {problems}") from None


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "The scene: a georeferenced GeoTIFF with at least three bands (RGB).",
                    },
                    **JobCreate.model_json_schema()["properties"],
                },
            }
        }
    },
}


@router.post(
    "",
    status_code=201,
    response_model=JobPublic,
    summary="Upload a scene and start a job",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses=error_responses(413, 422, 503),
)
async def create_job(
    request: Request, settings: SettingsDep, store: StoreDep, celery: CeleryDep, owner: OwnerDep
) -> JSONResponse:
    """Upload a GeoTIFF (multipart field `file`) with optional options as form fields.

    The file is checked before the job is queued: it must be a raster GDAL reads, georeferenced, with at
    least three bands, within the size limits. The answer is the job's status document, with its URL in
    `Location`. Nothing of a refused upload is kept.
    """
    upload = await receive_upload(request, store.new_upload_path(), max_bytes=settings.max_upload_bytes)
    record = await start_job(
        upload.path,
        upload.filename,
        upload.fields,
        settings=settings,
        store=store,
        celery=celery,
        owner=owner,
    )
    document = job_public(record, request)
    return JSONResponse(
        document.model_dump(mode="json"), status_code=201, headers={"Location": document.links[0].href}
    )


async def start_job(
    scene: Path,
    filename: str,
    fields: Mapping[str, object],
    *,
    settings: Settings,
    store: JobStore,
    celery: Celery,
    owner: str | None,
    outputs: list[OutputName] | None = None,
    response: ResultsResponse = "document",
    source_url: str | None = None,
) -> JobRecord:
    """Check a received scene (in the data directory) and its options, and queue its job: the one way
    every job starts, whether uploaded (``POST /jobs``) or executed (``POST /processes/.../execution``).

    ``scene`` is moved into the job, or removed when it is refused; with ``source_url`` it is GDAL's
    path to that URL (:func:`roadnet.urls.gdal_path`), read in place and neither moved nor removed.
    ``outputs`` and ``response`` are what an execute request asked of the results (all, as a document,
    for an upload).
    """
    try:
        options = _options(fields)
        try:
            info = await run_in_threadpool(_inspect, scene, settings.max_scene_pixels)
        except InputError as exc:
            # The engine names the file it read, a temporary name: say the user's own instead.
            raise type(exc)(str(exc).replace(scene.name, filename)) from None
        record = store.create(
            scene,
            owner=owner,
            filename=filename,
            options=options.model_dump(exclude_defaults=True),
            scene=_scene_summary(info),
            bbox=scene_bbox(info),
            outputs=outputs,
            response=response,
            source_url=source_url,
        )
    except BaseException:
        if source_url is None:
            scene.unlink(missing_ok=True)
        raise
    try:
        await run_in_threadpool(celery.send_task, RUN_JOB, args=[record.id], task_id=record.id)
    except Exception as exc:  # kombu raises its transport's own connection errors
        shutil.rmtree(store.folder(record.id), ignore_errors=True)
        log.error("could not queue job %s: %s", record.id, exc)
        raise QueueUnavailableError(
            "the job queue cannot be reached, so no job was started; try again in a minute"
        ) from exc
    log.info("job %s accepted: %s, %dx%d", record.id, filename, info.width, info.height)
    return record


@router.get(
    "", response_model=JobsPublic, summary="List your jobs, newest first", responses=error_responses(422)
)
def list_jobs(
    request: Request,
    store: StoreDep,
    owner: OwnerDep,
    limit: int = Query(default=20, ge=1, le=100, description="Jobs per page"),
    offset: int = Query(default=0, ge=0, description="Jobs skipped, newest first"),
) -> JobsPublic:
    """The caller's jobs (every job when the service has no API keys), newest first, one page at a time."""
    records, total = store.page(owner, limit=limit, offset=offset)
    url = request.url.remove_query_params(["limit", "offset"])
    links = []
    if offset + limit < total:
        next_url = url.include_query_params(limit=limit, offset=offset + limit)
        links.append(Link(href=str(next_url), rel="next", type="application/json"))
    if offset > 0:
        prev_url = url.include_query_params(limit=limit, offset=max(0, offset - limit))
        links.append(Link(href=str(prev_url), rel="prev", type="application/json"))
    return JobsPublic(jobs=[job_public(r, request) for r in records], numberMatched=total, links=links)


@router.get("/{job_id}", response_model=JobPublic, summary="A job's status", responses=error_responses(404))
async def get_job(record: JobDep, request: Request) -> Response:
    """The job's status document: `status`, `progress` (0-100) and `message`; links to the results once
    the job is `successful`."""
    # Serialised here, once: clients poll this, and the response model would validate it again.
    return Response(job_public(record, request).model_dump_json(), media_type="application/json")


@router.delete(
    "/{job_id}",
    response_model=JobPublic,
    summary="Cancel a job, or delete its results",
    responses=error_responses(404),
)
def dismiss_job(record: JobDep, store: StoreDep, request: Request) -> JobPublic:
    """Cancel a queued or running job, or delete a finished one's results: the job ends `dismissed`
    and its files are deleted. Its status document stays until the results' time to live has passed.

    A running job stops at its next progress report (within a second or so): the worker checks the
    job's status there, which works the same with every broker.
    """
    return job_public(store.dismiss(record.id), request)


def _require_successful(record: JobRecord) -> None:
    """Nothing when ``record`` has results; else the error OGC API - Processes names for its state: not
    ready (404 result-not-ready), the job's own failure, or gone (dismissed)."""
    if record.status is JobStatus.successful:
        return
    if record.status is JobStatus.failed:
        raise JobFailedError(f"job {record.id} has no results: it failed: {record.message}")
    if record.status is JobStatus.dismissed:
        raise NotFoundError(f"job {record.id} has no results: it was dismissed and its files deleted")
    why = "it is waiting for a worker" if record.status is JobStatus.accepted else "it is still running"
    raise ResultNotReadyError(f"job {record.id} has no results: {why}")


def _output_name(record: JobRecord, output: str) -> OutputName:
    try:
        return OutputName(output)
    except ValueError:
        known = ", ".join(OUTPUTS)
        raise NotFoundError(f"job {record.id} has no output {output!r}; its outputs are {known}") from None


def _result_file(record: JobRecord, output: OutputName, store: JobStore) -> FileResponse:
    path = store.result_path(record.id, output)
    if not path.is_file():
        raise NotFoundError(f"job {record.id} has no {output.value} result (it was deleted)")
    return FileResponse(
        path, media_type=OUTPUTS[output].media_type, filename=f"{record.id}-{OUTPUTS[output].filename}"
    )


#: The outputs' media types: GeoJSON is a JSON object, the others are binary files.
_RESULT_CONTENT = {
    o.media_type: {
        "schema": {"type": "object"}
        if o.media_type.endswith("json")
        else {"type": "string", "format": "binary"}
    }
    for o in OUTPUTS.values()
}


@router.get(
    "/{job_id}/results",
    response_model=dict[OutputName, ResultPublic],
    summary="A job's results",
    responses={
        200: {
            "description": "The results document: where each output can be downloaded; or, for a job "
            "executed with `response: raw` and one output, that output itself",
            "content": _RESULT_CONTENT,
        },
        204: {"description": "`response: raw` with several outputs: each output's URL in a Link header"},
        **error_responses(404, 500),
    },
)
def get_results(record: JobDep, request: Request, store: StoreDep) -> Response:
    """The results of a successful job (OGC API - Processes): a document of where each requested output
    can be downloaded; for a job executed with `response: raw`, the output itself when it asked for one,
    else an empty answer with the outputs in `Link` headers.

    404 (`result-not-ready`) while the job has not finished; a failed job answers its failure."""
    _require_successful(record)
    base = str(request.base_url).rstrip("/") + f"/jobs/{record.id}/results"
    wanted = [name for name in record.results if record.outputs is None or name in record.outputs]
    if record.response == "raw" and len(wanted) == 1:
        return _result_file(record, wanted[0], store)
    if record.response == "raw":
        links = [f'<{base}/{name}>; rel="{name}"; type="{OUTPUTS[name].media_type}"' for name in wanted]
        return Response(status_code=204, headers={"Link": ", ".join(links)})
    document = {
        name.value: ResultPublic(
            href=f"{base}/{name}", type=OUTPUTS[name].media_type, title=OUTPUTS[name].title
        ).model_dump()
        for name in wanted
    }
    return JSONResponse(document)


_DOWNLOAD: dict[str, Any] = {
    "response_class": FileResponse,
    "responses": {
        200: {
            "description": "mask and probability: Cloud-Optimised GeoTIFF; roads: GeoJSON; preview and "
            "mask_preview: PNG",
            "content": _RESULT_CONTENT,
        },
        **error_responses(404, 500),
    },
}


@router.get("/{job_id}/results/{output}", summary="Download one result", **_DOWNLOAD)
def get_result(
    record: JobDep,
    store: StoreDep,
    # A string, not the enum, so that another name is a 404 (no such output), not a 422.
    output: str = Path_(description="The output's name", json_schema_extra={"enum": list(OUTPUTS)}),
) -> FileResponse:
    """One output of a successful job: `mask` and `probability` (Cloud-Optimised GeoTIFF, the scene's
    grid and CRS), `roads` (GeoJSON, WGS 84), `preview` (PNG: the scene with the roads) or `mask_preview`
    (PNG: the mask over transparency, the preview's size and extent). Range requests are served."""
    name = _output_name(record, output)
    _require_successful(record)
    return _result_file(record, name, store)


# HEAD: GDAL's /vsicurl/ asks for the size before its range requests. A route of its own, so that its
# operation id is its own.
router.add_api_route(
    "/{job_id}/results/{output}",
    get_result,
    methods=["HEAD"],
    name="head_result",
    summary="One result's size and type, without its content",
    **_DOWNLOAD,
)
