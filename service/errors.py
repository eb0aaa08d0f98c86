"""roadnet's exception tree mapped to HTTP status codes, in this one place.

Every error answers an OGC API exception document (RFC 7807 problem details): ``type`` (a URI; the OGC
API - Processes one where the standard names it, else ``about:blank``), ``title``, ``status`` and
``detail`` (what is wrong and what to do). ``detail`` is the field clients (and the web page) read, the
one FastAPI's own errors have, so clients written before the other fields came keep working. No detail
names a path on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from roadnet.errors import (
    AuthenticationError,
    InputError,
    JobFailedError,
    ModelError,
    NoSuchJobError,
    NoSuchProcessError,
    NotFoundError,
    QueueUnavailableError,
    ResultNotReadyError,
    RoadnetError,
    StorageFullError,
    StorageReadOnlyError,
    TooLargeError,
    TooManyJobsError,
    redact_paths,
)
from service.schemas import ExceptionPublic

log = logging.getLogger(__name__)

#: The most specific class first: a subclass not named here takes its nearest listed base's code.
STATUS_CODES: dict[type[RoadnetError], int] = {
    TooLargeError: 413,
    InputError: 422,
    AuthenticationError: 401,
    NotFoundError: 404,
    TooManyJobsError: 429,
    ModelError: 503,
    QueueUnavailableError: 503,
    StorageReadOnlyError: 503,
    StorageFullError: 507,
    JobFailedError: 500,
    RoadnetError: 500,
}

OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
#: The exception types OGC API - Processes - Part 1 names; every other error is ``about:blank``.
OGC_TYPES: dict[type[RoadnetError], str] = {
    NoSuchProcessError: OGC_EXCEPTIONS + "no-such-process",
    NoSuchJobError: OGC_EXCEPTIONS + "no-such-job",
    ResultNotReadyError: OGC_EXCEPTIONS + "result-not-ready",
}


def status_code_for(exc: RoadnetError) -> int:
    """The HTTP status code of ``exc``: its nearest class in :data:`STATUS_CODES`."""
    return next(STATUS_CODES[cls] for cls in type(exc).__mro__ if cls in STATUS_CODES)


def problem(
    status: int, detail: str, type_: str = "about:blank", headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The exception document answering an error."""
    # An OGC type's title is its last word ("result not ready"), else the status's phrase.
    title = (
        HTTPStatus(status).phrase if type_ == "about:blank" else type_.rsplit("/", 1)[-1].replace("-", " ")
    )
    body = ExceptionPublic(type=type_, title=title, status=status, detail=detail)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of a route's error statuses, each an exception document."""
    return {code: {"model": ExceptionPublic, "description": HTTPStatus(code).phrase} for code in codes}


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """pydantic's validation errors in one line: ``where: what`` for each, ``;``-separated."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in errors
    )


async def _roadnet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RoadnetError)
    status = status_code_for(exc)
    if status >= 500 and not isinstance(exc, JobFailedError):
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    type_ = next((OGC_TYPES[cls] for cls in type(exc).__mro__ if cls in OGC_TYPES), "about:blank")
    # Messages may quote GDAL, PROJ or the OS, which name files by their server path.
    return problem(status, redact_paths(str(exc)), type_, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own: an unknown path (404), a method a path does not take (405, with Allow).
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem(422, f"invalid request: {describe_errors(exc.errors())}")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with its status code and an exception document."""
    app.add_exception_handler(RoadnetError, _roadnet_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
