"""``/healthz``: can the service run jobs now? The broker, a live worker and the model."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from roadnet.settings import Settings
from service.api.deps import CeleryDep, SettingsDep
from service.schemas import CheckPublic, HealthPublic
from worker.celery_app import broker_folder, is_embedded
from worker.jobs import live_workers
from worker.model import DEFAULT_MODEL_NAME, weights_dir

router = APIRouter(tags=["health"])


def _broker(settings: Settings, celery: CeleryDep) -> CheckPublic:
    if is_embedded(settings):
        folder = broker_folder(settings) / "queue"
        ok = os.access(folder, os.W_OK)
        return CheckPublic(ok=ok, detail=f"embedded queue in {folder}" + ("" if ok else " is not writable"))
    with celery.connection_for_write() as conn:
        where = conn.as_uri()  # the password masked
        try:
            conn.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:  # kombu raises its transport's own connection errors
            return CheckPublic(ok=False, detail=f"broker {where} unreachable: {exc}")
    return CheckPublic(ok=True, detail=f"broker {where} reachable")


def _workers(settings: Settings) -> CheckPublic:
    alive = live_workers(settings.data_dir)
    if not alive:
        return CheckPublic(ok=False, detail="no live worker: start one with `roadnet worker`")
    return CheckPublic(ok=True, detail=f"{len(alive)} live: {', '.join(alive)}")


def _model(settings: Settings) -> CheckPublic:
    path = settings.model_path or weights_dir() / DEFAULT_MODEL_NAME
    if not path.is_file() or not os.access(path, os.R_OK):
        return CheckPublic(ok=False, detail=f"model {path} is missing or unreadable (ROADNET_MODEL_PATH)")
    return CheckPublic(ok=True, detail=f"model {path}")


@router.get(
    "/healthz",
    response_model=HealthPublic,
    summary="Whether the service can run jobs",
    responses={503: {"model": HealthPublic, "description": "Some part is down; `checks` says which"}},
)
async def health(settings: SettingsDep, celery: CeleryDep) -> JSONResponse:
    """200 when the broker is reachable, at least one worker is alive and the model file is there;
    503 otherwise. Needs no API key, so that load balancers and probes can call it."""
    checks = {
        "broker": await run_in_threadpool(_broker, settings, celery),
        "worker": _workers(settings),
        "model": _model(settings),
    }
    healthy = all(check.ok for check in checks.values())
    body = HealthPublic(status="ok" if healthy else "degraded", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if healthy else 503)
