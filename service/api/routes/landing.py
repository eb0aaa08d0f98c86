"""``/`` and ``/conformance``: the OGC API entry points.

``/`` is both the web page (for browsers, which ask for HTML) and the OGC API landing page (JSON, for
clients such as OWSLib or QGIS), chosen by ``?f=json|html`` or else by ``Accept``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from service.api.routes.web import STATIC_DIR
from service.errors import error_responses
from service.schemas import ConformancePublic, LandingPublic, Link

router = APIRouter(tags=["discovery"])

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CONFORMANCE_CLASSES = [
    f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
    for name in ("core", "json", "oas30", "ogc-process-description", "job-list", "dismiss")
]
JSON, HTML = "application/json", "text/html"
OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """How much ``accept`` wants ``media_type``: its q-value, and how specific the range that gave it
    (an exact type beats ``type/*``, which beats ``*/*``)."""
    major = media_type.split("/")[0]
    best = (0.0, -1)
    for item in accept.split(","):
        range_, *params = (part.strip() for part in item.split(";"))
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(range_.lower())
        if specificity is None:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if specificity > best[1]:
            best = (q, specificity)
    return best


def wants_json(request: Request, f: str | None) -> bool:
    """Whether to answer JSON: ``f=json``, or ``Accept`` wants JSON at least as much as HTML.

    A tie is JSON's: API clients send ``*/*`` or nothing (OWSLib, curl), browsers ask for ``text/html``.
    """
    if f is not None:
        return f == "json"
    accept = request.headers.get("accept", "") or "*/*"
    return _quality(accept, JSON) >= _quality(accept, HTML)


@router.get(
    "/",
    summary="The landing page: the web page, or the API's links as JSON",
    response_model=LandingPublic,
    responses={200: {"content": {HTML: {"schema": {"type": "string"}}}}, **error_responses(422)},
)
def landing(
    request: Request,
    f: Literal["json", "html"] | None = Query(
        default=None, description="json or html; without it, the Accept header decides"
    ),
) -> Response:
    """Browsers get the web page; `Accept: application/json` or `?f=json` gets the OGC API landing page
    (links to the API definition, its documentation, the conformance classes, processes and jobs)."""
    if not wants_json(request, f):
        # no-cache: the page revalidates on each visit, so a restarted service's new page is seen at once.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
    base = str(request.base_url).rstrip("/")
    links = [
        Link(href=f"{base}/?f=json", rel="self", type=JSON, title="this document"),
        Link(href=f"{base}/?f=html", rel="alternate", type=HTML, title="the web page"),
        Link(href=f"{base}/openapi.json", rel="service-desc", type=OPENAPI_TYPE, title="the API definition"),
        Link(href=f"{base}/docs", rel="service-doc", type=HTML, title="the API documentation"),
        Link(href=f"{base}/conformance", rel=OGC_REL + "conformance", type=JSON, title="conformance classes"),
        Link(href=f"{base}/processes", rel=OGC_REL + "processes", type=JSON, title="the processes"),
        Link(href=f"{base}/jobs", rel=OGC_REL + "job-list", type=JSON, title="your jobs"),
    ]
    document = LandingPublic(
        title=request.app.title, description="Road extraction from satellite imagery", links=links
    )
    return JSONResponse(document.model_dump(mode="json", exclude_none=True))


@router.get("/conformance", response_model=ConformancePublic, summary="The OGC API conformance classes")
def conformance() -> ConformancePublic:
    """The parts of OGC API - Processes - Part 1: Core 1.0 this service implements (and tests)."""
    return ConformancePublic(conformsTo=CONFORMANCE_CLASSES)
