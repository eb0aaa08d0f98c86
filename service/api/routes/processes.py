"""``/processes``: OGC API - Processes discovery of the one process this service runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from roadnet import __version__
from roadnet.errors import NoSuchProcessError
from roadnet.outputs import OUTPUTS
from service.api.deps import get_owner
from service.errors import error_responses
from service.schemas import PROCESS_ID, JobCreate, Link, ProcessesPublic, ProcessPublic, ProcessSummaryPublic
from service.uploads import FILE_FIELD

router = APIRouter(
    prefix="/processes", tags=["processes"], dependencies=[Depends(get_owner)], responses=error_responses(401)
)
#: The process's input that is the scene; the multipart upload of POST /jobs names it FILE_FIELD.
IMAGE_INPUT = "image"
EXECUTE_REL = "http://www.opengis.net/def/rel/ogc/1.0/execute"

TITLE = "Road extraction"
DESCRIPTION = (
    "Finds the roads in a satellite or aerial scene (RGB GeoTIFF) with the paper's RISNet and stride-64 "
    "sliding window, and returns the road mask and probability (Cloud-Optimised GeoTIFF), the road "
    "centrelines (GeoJSON) and previews (PNG). Start a job with POST /processes/road-extraction/execution "
    "(the scene by reference or inline) or POST /jobs (a multipart upload)."
)


def _binary(media_type: str) -> dict[str, str]:
    return {"type": "string", "contentMediaType": media_type, "contentEncoding": "binary"}


def _inputs() -> dict[str, Any]:
    inputs: dict[str, Any] = {
        IMAGE_INPUT: {
            "title": "Scene",
            "description": "A georeferenced GeoTIFF with at least three bands (red, green, blue first, "
            'or by colour interpretation): by reference, {"href": "https://.../scene.tif"}, or inline, '
            '{"value": "<base64>", "mediaType": "image/tiff", "encoding": "base64"}; in a multipart '
            f"POST /jobs, the file field `{FILE_FIELD}`.",
            "schema": _binary("image/tiff; application=geotiff"),
            "minOccurs": 1,
            "maxOccurs": 1,
        }
    }
    for name, schema in JobCreate.model_json_schema()["properties"].items():
        inputs[name] = {
            "title": schema.pop("title", name),
            "description": schema.pop("description", ""),
            "schema": schema,
            "minOccurs": 0,
            "maxOccurs": 1,
        }
    return inputs


def _summary(request: Request) -> ProcessSummaryPublic:
    href = str(request.base_url).rstrip("/") + f"/processes/{PROCESS_ID}"
    return ProcessSummaryPublic(
        id=PROCESS_ID,
        title=TITLE,
        description=DESCRIPTION,
        version=__version__,
        jobControlOptions=["async-execute"],
        outputTransmission=["reference"],
        links=[
            Link(href=href, rel="self", type="application/json", title="process description"),
            Link(href=f"{href}/execution", rel=EXECUTE_REL, title="execute: start a job"),
        ],
    )


@router.get("", response_model=ProcessesPublic, summary="The processes this service runs")
def list_processes(request: Request) -> ProcessesPublic:
    """OGC API - Processes process list: road extraction."""
    href = str(request.base_url).rstrip("/") + "/processes"
    return ProcessesPublic(
        processes=[_summary(request)], links=[Link(href=href, rel="self", type="application/json")]
    )


def require_process(process_id: str) -> None:
    """Nothing for the process this service runs; :class:`NoSuchProcessError` for any other id."""
    if process_id != PROCESS_ID:
        raise NoSuchProcessError(f"no process {process_id!r}; this service runs {PROCESS_ID!r}")


@router.get(
    "/{process_id}",
    response_model=ProcessPublic,
    summary="A process's inputs and outputs",
    responses=error_responses(404),
)
def describe_process(process_id: str, request: Request) -> ProcessPublic:
    """The process description: the scene and options it takes, and the results it gives."""
    require_process(process_id)
    outputs = {
        name.value: {"title": output.title, "schema": _binary(output.media_type)}
        for name, output in OUTPUTS.items()
    }
    return ProcessPublic(**_summary(request).model_dump(), inputs=_inputs(), outputs=outputs)
