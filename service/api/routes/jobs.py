"""``/jobs``: upload a scene to start a job, follow it, list, cancel, and download its results."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from roadnet.errors import ConflictError, NotFoundError
from service.api.deps import BrokerCheckDep, CeleryDep, JobDep, OwnerDep, SettingsDep, StoreDep
from service.intake import accept_job, check_queue, check_quota
from service.schemas import JobCreate, JobPublic, JobsPublic, Link, ResultPublic
from service.uploads import FILE_FIELD, receive_upload
from worker.jobs import OUTPUTS, JobRecord, JobStatus, OutputName

router = APIRouter(prefix="/jobs", tags=["jobs"])

RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


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
    responses={
        413: {"description": "The upload is larger than ROADNET_MAX_UPLOAD_BYTES"},
        422: {"description": "The file is not a usable scene, or an option is invalid; `detail` says why"},
        429: {"description": "The key already has ROADNET_MAX_ACTIVE_JOBS_PER_KEY jobs queued or running"},
        503: {"description": "The job queue cannot be reached, or the data directory is read-only"},
        507: {"description": "The data directory is full; nothing was stored"},
    },
)
async def create_job(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    celery: CeleryDep,
    broker: BrokerCheckDep,
    owner: OwnerDep,
) -> JSONResponse:
    """Upload a GeoTIFF (multipart field `file`) with optional options as form fields.

    The file is checked before the job is queued: it must be a raster GDAL reads, georeferenced on the
    globe, with at least three bands, enough valid pixels, within the size limits, and the options must
    suit the model. The answer is the job's status document, with its URL in
    `Location`. Nothing of a refused upload is kept.
    """
    # Before the body, so that a refused upload costs no transfer.
    await check_quota(store, owner, settings)
    await check_queue(broker, settings)
    upload = await receive_upload(request, store.new_upload_path(), max_bytes=settings.max_upload_bytes)
    record = await accept_job(
        upload.path,
        filename=upload.filename,
        fields=upload.fields,
        owner=owner,
        settings=settings,
        store=store,
        celery=celery,
    )
    document = job_public(record, request)
    return JSONResponse(
        document.model_dump(mode="json"), status_code=201, headers={"Location": document.links[0].href}
    )


@router.get("", response_model=JobsPublic, summary="List your jobs, newest first")
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


@router.get("/{job_id}", response_model=JobPublic, summary="A job's status")
async def get_job(record: JobDep, request: Request) -> Response:
    """The job's status document: `status`, `progress` (0-100) and `message`; links to the results once
    the job is `successful`."""
    # Serialised here, once: clients poll this, and the response model would validate it again.
    return Response(job_public(record, request).model_dump_json(), media_type="application/json")


@router.delete("/{job_id}", response_model=JobPublic, summary="Cancel a job, or delete its results")
def dismiss_job(record: JobDep, store: StoreDep, request: Request) -> JobPublic:
    """Cancel a queued or running job, or delete a finished one's results: the job ends `dismissed`
    and its files are deleted. Its status document stays until the results' time to live has passed.

    A running job stops at its next progress report (within a second or so): the worker checks the
    job's status there, which works the same with every broker.
    """
    return job_public(store.dismiss(record.id), request)


def require_successful(record: JobRecord) -> None:
    """:class:`ConflictError` (409), saying why, unless ``record`` is ``successful``."""
    if record.status is not JobStatus.successful:
        why = {
            JobStatus.accepted: "it is waiting for a worker",
            JobStatus.running: "it is still running",
            JobStatus.failed: f"it failed: {record.message}",
            JobStatus.dismissed: "it was dismissed and its files deleted",
        }[record.status]
        raise ConflictError(f"job {record.id} has no results: {why}")


@router.get("/{job_id}/results", response_model=dict[OutputName, ResultPublic], summary="A job's results")
def get_results(record: JobDep, request: Request) -> dict[OutputName, ResultPublic]:
    """Where each output of a successful job can be downloaded (409 before it is successful)."""
    require_successful(record)
    base = str(request.base_url).rstrip("/") + f"/jobs/{record.id}/results"
    return {
        name: ResultPublic(href=f"{base}/{name}", type=OUTPUTS[name].media_type, title=OUTPUTS[name].title)
        for name in record.results
    }


@router.api_route(
    "/{job_id}/results/{output}",
    methods=["GET", "HEAD"],  # HEAD: GDAL's /vsicurl/ asks for the size before its range requests
    response_class=FileResponse,
    summary="Download one result",
    responses={
        200: {
            "description": "mask and probability: Cloud-Optimised GeoTIFF; roads: GeoJSON; preview and "
            "mask_preview: PNG",
            "content": {o.media_type: {} for o in OUTPUTS.values()},
        },
        409: {"description": "The job is not successful (yet)"},
    },
)
def get_result(record: JobDep, output: OutputName, store: StoreDep) -> FileResponse:
    """One output of a successful job: `mask` and `probability` (Cloud-Optimised GeoTIFF, the scene's
    grid and CRS), `roads` (GeoJSON, WGS 84), `preview` (PNG: the scene with the roads) or `mask_preview`
    (PNG: the mask over transparency, the preview's size and extent). Range requests are served."""
    require_successful(record)
    path = store.result_path(record.id, output)
    if not path.is_file():
        raise NotFoundError(f"job {record.id} has no {output.value} result (it was deleted)")
    return FileResponse(
        path, media_type=OUTPUTS[output].media_type, filename=f"{record.id}-{OUTPUTS[output].filename}"
    )
