"""``/processes``: OGC API - Processes discovery of the one process this service runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from roadnet import __version__
from roadnet.errors import NotFoundError
from service.api.deps import get_owner
from service.schemas import PROCESS_ID, JobCreate, Link, ProcessesPublic, ProcessPublic, ProcessSummaryPublic
from service.uploads import FILE_FIELD
from worker.jobs import OUTPUTS

router = APIRouter(prefix="/processes", tags=["processes"], dependencies=[Depends(get_owner)])

TITLE = "Road extraction"
DESCRIPTION = (
    "Finds the roads in a satellite or aerial scene (RGB GeoTIFF) with the paper's RISNet and stride-64 "
    "sliding window, and returns the road mask and probability (Cloud-Optimised GeoTIFF), the road "
    "centrelines (GeoJSON) and previews (PNG). Start a job with POST /jobs (multipart upload)."
)


def _binary(media_type: str) -> dict[str, str]:
    return {"type": "string", "contentMediaType": media_type, "contentEncoding": "binary"}


def _inputs() -> dict[str, Any]:
    inputs: dict[str, Any] = {
        FILE_FIELD: {
            "title": "Scene",
            "description": "A georeferenced GeoTIFF with at least three bands (red, green, blue first, "
            "or by colour interpretation), uploaded as the multipart field `file`.",
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
        links=[Link(href=href, rel="self", type="application/json", title="process description")],
    )


@router.get("", response_model=ProcessesPublic, summary="The processes this service runs")
def list_processes(request: Request) -> ProcessesPublic:
    """OGC API - Processes process list: road extraction."""
    href = str(request.base_url).rstrip("/") + "/processes"
    return ProcessesPublic(
        processes=[_summary(request)], links=[Link(href=href, rel="self", type="application/json")]
    )


@router.get("/{process_id}", response_model=ProcessPublic, summary="A process's inputs and outputs")
def describe_process(process_id: str, request: Request) -> ProcessPublic:
    """The process description: the upload and options it takes, and the results it gives."""
    if process_id != PROCESS_ID:
        raise NotFoundError(f"no process {process_id!r}; this service runs {PROCESS_ID!r}")
    outputs = {
        name.value: {"title": output.title, "schema": _binary(output.media_type)}
        for name, output in OUTPUTS.items()
    }
    return ProcessPublic(**_summary(request).model_dump(), inputs=_inputs(), outputs=outputs)
