"""``/healthz``: can the service run jobs now? The broker, a live worker and the model.

Anyone may ask (load balancers and probes have no key): they learn ``ok`` or ``degraded`` and which part
is down. The details (worker names, the error seen) are for callers with an API key, or everyone when
the service has none; they never name a path on the server or the broker's address.
"""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from roadnet.jobs import live_workers
from roadnet.model_files import DEFAULT_MODEL_NAME, weights_dir
from roadnet.settings import Settings
from service.api.deps import BrokerCheckDep, SettingsDep, TrustedDep
from service.schemas import CheckPublic, HealthPublic

router = APIRouter(tags=["health"])


def _workers(settings: Settings) -> CheckPublic:
    alive = live_workers(settings.data_dir)
    if not alive:
        return CheckPublic(ok=False, detail="no live worker: start one with `roadnet worker`")
    return CheckPublic(ok=True, detail=f"{len(alive)} live: {', '.join(alive)}")


def _model(settings: Settings) -> CheckPublic:
    path = settings.model_path or weights_dir() / DEFAULT_MODEL_NAME
    if not path.is_file() or not os.access(path, os.R_OK):
        return CheckPublic(
            ok=False, detail=f"model {path.name} is missing or unreadable (ROADNET_MODEL_PATH)"
        )
    return CheckPublic(ok=True, detail=f"model {path.name}")


@router.get(
    "/healthz",
    response_model=HealthPublic,
    summary="Whether the service can run jobs",
    responses={503: {"model": HealthPublic, "description": "Some part is down; `checks` says which"}},
)
async def health(settings: SettingsDep, broker: BrokerCheckDep, trusted: TrustedDep) -> JSONResponse:
    """200 when the broker is reachable, at least one worker is alive and the model file is there;
    503 otherwise. Needs no API key, so that load balancers and probes can call it; without one (on a
    service with keys) it says only which part is down, with a key also why. Answers within about half
    a second whatever the broker does (:mod:`service.broker_check`)."""
    checks = {
        "broker": await broker(),
        "worker": await run_in_threadpool(_workers, settings),
        "model": _model(settings),
    }
    healthy = all(check.ok for check in checks.values())
    body = HealthPublic(status="ok" if healthy else "degraded", checks=checks)
    exclude = None if trusted else {"checks": {"__all__": {"detail"}}}
    return JSONResponse(body.model_dump(mode="json", exclude=exclude), status_code=200 if healthy else 503)
