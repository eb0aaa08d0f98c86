"""The web page's files: ``index.html`` (served at ``/`` by the landing route) and its script, styles and
vendored Leaflet under ``/static``; and the API's documentation at ``/docs`` (Swagger UI, vendored too).

The page talks to the service only through the HTTP API, so this router serves files and nothing else.
Everything is served from the package (no CDN): the page and the docs work on a machine with no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


#: Swagger UI from the npm package swagger-ui-dist (service/static/vendor/README.md).
SWAGGER_UI = "static/vendor/swagger-ui"


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """The OpenAPI page, FastAPI's own but with Swagger UI served from here instead of a CDN."""
    # Relative URLs, as the web page's: a service behind a path prefix works.
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url.lstrip("/"),
        title=f"{request.app.title} - API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        # No badge asking validator.swagger.io about the spec.
        swagger_ui_parameters={"validatorUrl": None},
    )
