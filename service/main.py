"""The FastAPI application: :func:`create_app` builds it from the settings.

``roadnet serve`` runs it with uvicorn; elsewhere ``uvicorn --factory service.main:create_app``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from roadnet import __version__
from roadnet.jobs import JobStore
from roadnet.queue import create_celery
from roadnet.settings import Settings, get_settings
from service.api.routes import execution, health, jobs, landing, processes, tiles, web
from service.broker_check import BrokerCheck
from service.errors import install_error_handlers
from service.openapi import openapi_document

log = logging.getLogger(__name__)

#: Seconds between two sweeps for expired jobs (their results' time to live is hours).
CLEANUP_INTERVAL_S = 600.0

DESCRIPTION = """
Road extraction from satellite imagery, as OGC API - Processes - Part 1: Core 1.0. Start a job with
`POST /processes/road-extraction/execution` (the georeferenced RGB GeoTIFF by reference, `href`, or
inline base64) or by uploading it to `POST /jobs` (multipart); follow it at `GET /jobs/{id}` (status
document, `progress` 0-100), then download the road mask and probability (Cloud-Optimised GeoTIFF),
the road centrelines (GeoJSON) and previews (PNG) from `/jobs/{id}/results`. Errors are OGC API
exception documents (`type`, `title`, `status`, `detail`).
"""

#: Added to the description when the service has API keys (and only then is security declared).
KEYS_DESCRIPTION = """
Every `/jobs` and `/processes` request needs an API key, in `X-API-Key` or `Authorization: Bearer`,
and each key sees only its own jobs.
"""

TAGS = [
    {"name": "discovery", "description": "The landing page and the conformance classes (OGC API)."},
    {"name": "jobs", "description": "Upload a scene, follow its job, download the results."},
    {"name": "processes", "description": "OGC API - Processes: what the service computes, and running it."},
    {"name": "health", "description": "Whether the broker, a worker and the model are available."},
]


async def remove_expired_jobs(store: JobStore, ttl: timedelta, interval_s: float) -> None:
    """Forever: remove jobs that ended more than ``ttl`` ago, then sleep ``interval_s``."""
    while True:
        try:
            removed = await run_in_threadpool(store.remove_expired, ttl)
        except OSError as exc:  # a failing disk: sweep again next time rather than never
            log.warning("could not remove expired jobs: %s", exc)
        else:
            if removed:
                log.info("removed %d expired job(s)", len(removed))
        await asyncio.sleep(interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    store = JobStore(settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ttl = timedelta(hours=settings.result_ttl_hours)
        cleanup = asyncio.create_task(remove_expired_jobs(store, ttl, CLEANUP_INTERVAL_S))
        yield
        cleanup.cancel()
        app.state.broker_check.close()

    app = FastAPI(
        title="roadnet",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # /docs is the web router's, with Swagger UI served from here (no CDN)
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings
    app.state.store = store
    app.state.celery = create_celery(settings)
    app.state.broker_check = BrokerCheck(settings, app.state.celery)
    install_error_handlers(app)
    app.include_router(landing.router)  # / (the web page, or the landing page as JSON), /conformance
    app.include_router(jobs.router)
    app.include_router(tiles.router)
    app.include_router(processes.router)
    app.include_router(execution.router)
    app.include_router(health.router)
    app.include_router(web.router)  # the web page's files (issue 8) under /static; and /docs
    description = DESCRIPTION + (KEYS_DESCRIPTION if settings.api_keys else "")
    document = functools.cache(lambda: openapi_document(app, description, TAGS, settings))
    app.openapi = document  # type: ignore[method-assign]
    return app
