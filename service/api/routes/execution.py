"""``POST /processes/{id}/execution``: start a job the OGC API - Processes way (Part 1: Core 1.0).

The execute request names the scene by reference (``{"href": ...}``, fetched by :mod:`service.fetch`)
or inline (a base64 qualified value), the options as plain values, and which outputs are wanted and
how; from there the job is checked and starts exactly as an upload's (:func:`service.intake.accept_job`). The
process offers asynchronous execution only, so the answer is always 201 with the job's status document
and ``Location``, with or without ``Prefer: respond-async``.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from roadnet.errors import InputError, TooLargeError
from roadnet.jobs import storage_errors
from roadnet.outputs import OUTPUTS, OutputName
from roadnet.settings import Settings
from roadnet.urls import gdal_path, redact
from service.api.deps import BrokerCheckDep, CeleryDep, OwnerDep, SettingsDep, StoreDep
from service.api.routes.jobs import job_public
from service.api.routes.processes import IMAGE_INPUT, require_process
from service.errors import describe_errors, error_responses
from service.fetch import fetch
from service.intake import accept_job, check_before_scene
from service.schemas import ExecuteRequest, JobPublic

router = APIRouter(prefix="/processes", tags=["processes"], responses=error_responses(401))

#: The largest execute request read: inline scenes are for small ones; larger go by reference.
MAX_BODY_BYTES = 64 * 1024 * 1024
IMAGE_FORMS = (
    f'the input {IMAGE_INPUT!r} must be {{"href": "https://.../scene.tif"}} or {{"value": "<base64>", '
    '"mediaType": "image/tiff", "encoding": "base64"}'
)


async def _read_body(request: Request) -> bytes:
    too_large = TooLargeError(
        f"the execute request is larger than {MAX_BODY_BYTES:,} bytes; give a scene that large by "
        'reference ({"href": ...}) or upload it to POST /jobs'
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


async def _receive_image(image: object, dest: Path, settings: Settings) -> tuple[str, str | None]:
    """Write the ``image`` input's scene to ``dest``, unless it is a COG read in place: the name to show
    for the scene, and the URL read in place (None when the scene is in ``dest``)."""
    if not isinstance(image, dict):
        raise InputError(IMAGE_FORMS)
    if isinstance(image.get("href"), str):
        return redact(image["href"]), await fetch(image["href"], dest, settings)
    if not isinstance(image.get("value"), str) or image.get("encoding", "base64") != "base64":
        raise InputError(IMAGE_FORMS)
    try:
        data = base64.b64decode(image["value"], validate=True)
    except binascii.Error:
        raise InputError(f"the input {IMAGE_INPUT!r} is not valid base64") from None
    if len(data) > settings.max_upload_bytes:
        raise TooLargeError(
            f"the input {IMAGE_INPUT!r} is larger than the limit of {settings.max_upload_bytes:,} bytes "
            "(ROADNET_MAX_UPLOAD_BYTES)"
        )
    await run_in_threadpool(dest.write_bytes, data)
    return "scene.tif", None


def _options(inputs: dict[str, Any]) -> dict[str, object]:
    """The inputs other than the scene, as options; a qualified value ``{"value": x}`` counts as x."""
    return {
        name: value["value"] if isinstance(value, dict) and "value" in value else value
        for name, value in inputs.items()
        if name != IMAGE_INPUT
    }


def _outputs(requested: dict[str, dict[str, Any]] | None) -> list[OutputName] | None:
    """The outputs asked for; None (all) when the request names none."""
    if not requested:
        return None
    names = []
    for name, wanted in requested.items():
        if name not in OUTPUTS:
            raise InputError(f"no output {name!r}; this process gives {', '.join(OUTPUTS)}")
        if wanted.get("transmissionMode", "reference") != "reference":
            raise InputError(
                f"output {name!r}: only transmissionMode 'reference' is offered (the outputs are files)"
            )
        names.append(OutputName(name))
    return names


@router.post(
    "/{process_id}/execution",
    status_code=201,
    response_model=JobPublic,
    summary="Execute the process: start a job",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ExecuteRequest.model_json_schema()}},
        }
    },
    responses={
        201: {
            "description": "The job was accepted: its status document",
            "headers": {
                "Location": {"description": "The job's URL", "schema": {"type": "string"}},
                "Preference-Applied": {
                    "description": "respond-async, when the request asked for it",
                    "schema": {"type": "string"},
                },
            },
        },
        **error_responses(404, 413, 422, 429, 503, 507),
    },
)
async def execute(
    process_id: str,
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    celery: CeleryDep,
    broker: BrokerCheckDep,
    owner: OwnerDep,
    prefer: str | None = Header(default=None, description="respond-async (jobs always run asynchronously)"),
) -> JSONResponse:
    """Start a job from an OGC API - Processes execute request (JSON): the scene as the input `image`,
    by reference or inline base64, the options as plain values, and `outputs` and `response` for what
    `/jobs/{id}/results` gives. The scene is fetched and checked like an upload before the job is
    accepted (a refused one answers 4xx with the reason); the answer is the job's status document with
    its URL in `Location`."""
    require_process(process_id)
    await check_before_scene(store, broker, owner, settings)  # before the fetch: a refusal costs no transfer
    try:
        execute_request = ExecuteRequest.model_validate_json(await _read_body(request))
    except ValidationError as exc:
        raise InputError(f"invalid execute request: {describe_errors(exc.errors())}") from None
    outputs = _outputs(execute_request.outputs)
    if IMAGE_INPUT not in execute_request.inputs:
        raise InputError(f"the input {IMAGE_INPUT!r} (the scene) is missing; {IMAGE_FORMS}")
    scene = store.new_upload_path()
    with storage_errors():  # a full or read-only disk: 507 or 503, as for an upload
        try:
            filename, source_url = await _receive_image(execute_request.inputs[IMAGE_INPUT], scene, settings)
        except BaseException:
            scene.unlink(missing_ok=True)
            raise
    record = await accept_job(
        gdal_path(source_url) if source_url else scene,
        filename=filename,
        fields=_options(execute_request.inputs),
        owner=owner,
        settings=settings,
        store=store,
        celery=celery,
        outputs=outputs,
        response=execute_request.response,
        source_url=source_url,
    )
    document = job_public(record, request)
    headers = {"Location": document.links[0].href}
    if prefer is not None and "respond-async" in prefer.lower():
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(document.model_dump(mode="json"), status_code=201, headers=headers)
