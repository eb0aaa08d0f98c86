"""What the routes depend on, as ``Annotated`` types: settings, the job store, the Celery app, the caller.

They are ``async`` although none awaits: FastAPI runs a plain ``def`` dependency in a worker thread, and
those hops were three quarters of the time of a status request. None blocks: ``get_job`` reads one
small record file.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from roadnet.errors import AuthenticationError, NoSuchJobError
from roadnet.jobs import JobRecord, JobStore
from roadnet.settings import Settings
from service.broker_check import BrokerCheck


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> JobStore:
    """The job store in the settings' data directory."""
    store: JobStore = request.app.state.store
    return store


async def get_celery(request: Request) -> Celery:
    """The Celery app jobs are sent with."""
    celery: Celery = request.app.state.celery
    return celery


async def get_broker_check(request: Request) -> BrokerCheck:
    """The app's one broker check (shared, so that concurrent health requests share its answer)."""
    check: BrokerCheck = request.app.state.broker_check
    return check


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
BrokerCheckDep = Annotated[BrokerCheck, Depends(get_broker_check)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from ROADNET_API_KEYS (when set)."
)
_bearer = HTTPBearer(auto_error=False, description="The same API key as `Authorization: Bearer <key>`.")


def key_hash(key: str) -> str:
    """What a job records as its owner: the SHA-256 of the creator's API key, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


APIKeyDep = Annotated[str | None, Security(_api_key_header)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _known_key(settings: Settings, api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str:
    """The hash of the request's API key; :class:`AuthenticationError` when it has no known one."""
    key = api_key or (bearer.credentials if bearer is not None else None)
    if not key:
        raise AuthenticationError(
            "this service needs an API key: send it in the X-API-Key header (or as Authorization: Bearer)"
        )
    digest = key_hash(key)
    # Compare every configured key, in constant time each, so timing says nothing about which is close.
    if not sum(hmac.compare_digest(digest, key_hash(known)) for known in settings.api_keys):
        raise AuthenticationError("the API key is not valid; ask the service's operator for one")
    return digest


async def get_owner(settings: SettingsDep, api_key: APIKeyDep, bearer: BearerDep) -> str | None:
    """The caller, as the hash of its API key; None when the service has no API keys (everyone sees all).

    Raises :class:`AuthenticationError` (401) when API keys are set and the request has no known one.
    """
    return _known_key(settings, api_key, bearer) if settings.api_keys else None


async def is_trusted(settings: SettingsDep, api_key: APIKeyDep, bearer: BearerDep) -> bool:
    """Whether the caller may see details of the service: it has a known key, or the service has none."""
    try:
        return await get_owner(settings, api_key, bearer) is not None or not settings.api_keys
    except AuthenticationError:
        return False


OwnerDep = Annotated[str | None, Depends(get_owner)]
TrustedDep = Annotated[bool, Depends(is_trusted)]


async def get_job(job_id: str, store: StoreDep, owner: OwnerDep) -> JobRecord:
    """The job ``job_id`` when the caller may see it; 404 alike for an unknown job and another's."""
    record = store.get(job_id)
    if owner is not None and not hmac.compare_digest(record.owner or "", owner):
        raise NoSuchJobError(f"no job {job_id!r}")
    return record


JobDep = Annotated[JobRecord, Depends(get_job)]
