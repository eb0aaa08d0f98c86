"""roadnet's exception tree mapped to HTTP status codes, in this one place.

Every error answers JSON ``{"detail": "<what is wrong and what to do>"}``, the shape FastAPI gives its own
errors, so clients (and the web page) read one field; no detail names a path on the server.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from roadnet.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    ModelError,
    NotFoundError,
    QueueUnavailableError,
    RoadnetError,
    StorageFullError,
    StorageReadOnlyError,
    TooLargeError,
    TooManyJobsError,
    redact_paths,
)

log = logging.getLogger(__name__)

#: The most specific class first: a subclass not named here takes its nearest listed base's code.
STATUS_CODES: dict[type[RoadnetError], int] = {
    TooLargeError: 413,
    InputError: 422,
    AuthenticationError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    TooManyJobsError: 429,
    ModelError: 503,
    QueueUnavailableError: 503,
    StorageReadOnlyError: 503,
    StorageFullError: 507,
    RoadnetError: 500,
}


def status_code_for(exc: RoadnetError) -> int:
    """The HTTP status code of ``exc``: its nearest class in :data:`STATUS_CODES`."""
    return next(STATUS_CODES[cls] for cls in type(exc).__mro__ if cls in STATUS_CODES)


async def _roadnet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RoadnetError)
    status = status_code_for(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    # Messages may quote GDAL, PROJ or the OS, which name files by their server path.
    return JSONResponse({"detail": redact_paths(str(exc))}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`RoadnetError` with its status code and message."""
    app.add_exception_handler(RoadnetError, _roadnet_error)
