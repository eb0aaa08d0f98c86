"""The FastAPI application: :func:`create_app` builds it from the settings.

``roadnet serve`` runs it with uvicorn; elsewhere ``uvicorn --factory service.main:create_app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from roadnet import __version__
from roadnet.settings import Settings, get_settings
from service.api.routes import health, jobs, processes, tiles, web
from service.broker_check import BrokerCheck
from service.errors import install_error_handlers
from worker.celery_app import create_celery
from worker.jobs import JobStore

log = logging.getLogger(__name__)

#: Seconds between two sweeps for expired jobs (their results' time to live is hours).
CLEANUP_INTERVAL_S = 600.0

DESCRIPTION = """
Road extraction from satellite imagery. Upload a georeferenced RGB GeoTIFF to `POST /jobs`, follow
the job at `GET /jobs/{id}` (OGC API - Processes status document, `progress` 0-100), then download
the road mask and probability (Cloud-Optimised GeoTIFF), the road centrelines (GeoJSON) and previews
(PNG) from `/jobs/{id}/results/...`.

When the service has API keys (`ROADNET_API_KEYS`), every `/jobs` and `/processes` request needs one,
in `X-API-Key` or `Authorization: Bearer`, and each key sees only its own jobs.
"""

TAGS = [
    {"name": "jobs", "description": "Upload a scene, follow its job, download the results."},
    {"name": "processes", "description": "OGC API - Processes discovery: what the service computes."},
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
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # /docs is the web router's, with Swagger UI served from here (no CDN)
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings
    app.state.store = store
    app.state.celery = create_celery(settings)
    app.state.broker_check = BrokerCheck(settings, app.state.celery)
    install_error_handlers(app)
    app.include_router(jobs.router)
    app.include_router(tiles.router)
    app.include_router(processes.router)
    app.include_router(health.router)
    app.include_router(web.router)  # the web page (issue 8): / and /static; and /docs
    return app
