"""``/jobs``: upload a scene to start a job, follow it, list, cancel, and download its results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse, JSONResponse, Response

from roadnet.errors import JobFailedError, NotFoundError, ResultNotReadyError
from roadnet.jobs import JobRecord, JobStatus, JobStore
from roadnet.outputs import OUTPUTS, OutputName
from service.api.deps import BrokerCheckDep, CeleryDep, JobDep, OwnerDep, SettingsDep, StoreDep
from service.errors import error_responses
from service.intake import accept_job, check_before_scene
from service.schemas import JobCreate, JobPublic, JobsPublic, Link, ResultPublic
from service.uploads import FILE_FIELD, receive_upload

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=error_responses(401))

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
    # The record's fields of the same names fill the rest; the store's own (owner, attempts...) are left out.
    return JobPublic.model_validate({**dict(record), "jobID": record.id, "links": links})


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
    responses=error_responses(413, 422, 429, 503, 507),
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
    await check_before_scene(store, broker, owner, settings)  # before the body: a refusal costs no transfer
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
    responses=error_responses(404, 503, 507),  # 503, 507: a read-only or full data directory
)
def dismiss_job(record: JobDep, store: StoreDep, request: Request) -> JobPublic:
    """Cancel a queued or running job, or delete a finished one's results: the job ends `dismissed`
    and its files are deleted. Its status document stays until the results' time to live has passed.

    A running job stops at its next progress report (within a second or so): the worker checks the
    job's status there, which works the same with every broker.
    """
    return job_public(store.dismiss(record.id), request)


def require_successful(record: JobRecord) -> None:
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
    require_successful(record)
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
    require_successful(record)
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
