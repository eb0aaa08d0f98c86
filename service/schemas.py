"""What the API reads and answers: ``*Create`` for input, ``*Public`` for output.

Status documents follow OGC API - Processes - Part 1 (``statusInfo``, job list, process description),
with a few roadnet fields of their own (``filename``, ``scene``, ``bbox``, ``options``, ``summary``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from roadnet.jobs import JobOptions, JobStatus

PROCESS_ID = "road-extraction"


class JobCreate(JobOptions):
    """The optional form fields of ``POST /jobs``, beside the GeoTIFF in the field ``file``."""


class ExceptionPublic(BaseModel):
    """An error (OGC API exception, RFC 7807 problem details)."""

    type: str = Field(description="A URI naming the kind of error; about:blank when it has no name")
    title: str = Field(description="The kind of error, in a few words")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What is wrong and what to do")


class ExecuteRequest(BaseModel):
    """An execute request (OGC API - Processes - Part 1: Core 1.0, ``execute.yaml``)."""

    inputs: dict[str, Any] = Field(
        description='The scene as `image`: by reference, {"href": "https://.../scene.tif"}, or inline, '
        '{"value": "<base64>", "mediaType": "image/tiff", "encoding": "base64"}; the options '
        f"({', '.join(JobOptions.model_fields)}) as plain values"
    )
    outputs: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description='The outputs wanted, e.g. {"roads": {"transmissionMode": "reference"}}; all when '
        "left out. Outputs are files, offered by reference only",
    )
    response: Literal["raw", "document"] = Field(
        default="raw",
        description="How /jobs/{id}/results answers: `document` (where each output is), or `raw` (the "
        "output itself when one is wanted, else its URLs in Link headers)",
    )


class Link(BaseModel):
    """A web link (OGC API ``link``)."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class JobPublic(BaseModel):
    """A job's status document (OGC API - Processes ``statusInfo``)."""

    processID: str = PROCESS_ID
    type: Literal["process"] = "process"
    jobID: str = Field(description="The job's id, unguessable")
    status: JobStatus
    message: str = Field(description="What the job is doing, or why it failed")
    created: datetime
    started: datetime | None
    finished: datetime | None
    updated: datetime
    progress: int = Field(ge=0, le=100, description="Percent done")
    links: list[Link] = Field(description="This document, and the results once the job is successful")
    filename: str = Field(description="The uploaded file's name")
    scene: dict[str, Any] = Field(description="The scene's size, bands and coordinate reference system")
    bbox: list[float] | None = Field(
        description="The scene's bounds in WGS 84 longitude/latitude, [west, south, east, north] as an "
        "RFC 7946 bbox (west > east across the antimeridian); null for a scene without a CRS"
    )
    options: dict[str, Any] = Field(description="The options the job was created with")
    summary: dict[str, Any] = Field(description="When successful: road segments, length, model used")


class JobsPublic(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[JobPublic]
    numberMatched: int = Field(description="How many jobs the caller has in all")
    links: list[Link] = Field(description="The next and previous pages")


class ResultPublic(BaseModel):
    """Where one output of a job can be downloaded."""

    href: str
    type: str
    title: str


class ProcessSummaryPublic(BaseModel):
    """A process as listed by ``GET /processes``."""

    id: str
    title: str
    description: str
    version: str
    jobControlOptions: list[str]
    outputTransmission: list[str]
    links: list[Link]


class ProcessPublic(ProcessSummaryPublic):
    """A process with its inputs and outputs (OGC API - Processes ``process``)."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]


class ProcessesPublic(BaseModel):
    """The processes this service runs."""

    processes: list[ProcessSummaryPublic]
    links: list[Link]


class LandingPublic(BaseModel):
    """The OGC API landing page: where the API's parts are."""

    title: str
    description: str
    links: list[Link]


class ConformancePublic(BaseModel):
    """The conformance classes the service implements."""

    conformsTo: list[str]


class CheckPublic(BaseModel):
    """One part of the service and whether it works; the detail only for a caller with a key."""

    ok: bool
    detail: str | None = None


class HealthPublic(BaseModel):
    """Whether the service can run jobs: ``ok`` when the broker, a worker and the model all are."""

    status: Literal["ok", "degraded"]
    checks: dict[str, CheckPublic]
