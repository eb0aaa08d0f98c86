"""The web page: ``index.html`` at ``/`` and its script, styles and vendored Leaflet under ``/static``.

The page talks to the service only through the HTTP API, so this router serves files and nothing else.
Everything is served from the package (no CDN): the page works on a machine with no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/")
def index() -> FileResponse:
    """The single-page web client."""
    # no-cache: the page revalidates on each visit, so a restarted service with a new page is seen at once.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
