"""Accepting a job: everything checked before anything is stored or queued, in one function that every
entry point calls once it has the scene (:func:`accept_job`): an upload (``POST /jobs``) and an execute
request (``POST /processes/.../execution``), whose scene is inline, fetched into the data directory, or a
Cloud-Optimised GeoTIFF read in place by URL.

A job is refused here, with a message, whenever the worker would refuse or fail it: options the model
cannot run, a scene that cannot be read, placed on the globe or that holds too few valid pixels, or a
caller over their share of the queue. What is accepted is recorded and queued, or (disk full, broker
down) nothing of it is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from celery import Celery
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from roadnet.errors import InputError, NoValidPixelsError, QueueUnavailableError, TooManyJobsError
from roadnet.settings import Settings
from service.scene_check import check_scene_isolated
from service.schemas import JobCreate
from worker.celery_app import RUN_JOB
from worker.inference import InferenceOptions, resolve_options
from worker.jobs import JobRecord, JobStore, OutputName, ResultsResponse
from worker.model import read_metadata

log = logging.getLogger(__name__)


def parse_options(fields: Mapping[str, object]) -> JobCreate:
    """A job's options from form fields or JSON; an empty string counts as not given."""
    try:
        return JobCreate.model_validate({name: value for name, value in fields.items() if value != ""})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'options'}: {error['msg']}"
            + (f" (got {error['input']!r})" if error["type"] != "extra_forbidden" else "")
            for error in exc.errors()
        )
        raise InputError(f"invalid options: {problems}") from None


async def check_quota(store: JobStore, owner: str | None, settings: Settings) -> None:
    """:class:`TooManyJobsError` when ``owner`` already has the most queued and running jobs allowed."""
    active = await run_in_threadpool(store.count_active, owner)
    if active >= settings.max_active_jobs_per_key:
        raise TooManyJobsError(
            f"you already have {active} jobs queued or running, the most one key may have "
            f"(ROADNET_MAX_ACTIVE_JOBS_PER_KEY); wait for one to finish, or cancel one"
        )


async def accept_job(
    scene: Path,
    *,
    filename: str,
    fields: Mapping[str, object],
    owner: str | None,
    settings: Settings,
    store: JobStore,
    celery: Celery,
    outputs: list[OutputName] | None = None,
    response: ResultsResponse = "document",
    source_url: str | None = None,
) -> JobRecord:
    """Check a new job and, when it passes, record and queue it; its ``accepted`` record.

    ``scene`` is the received file in the data directory: it becomes the job's input, or is removed when
    the job is refused (every error), so nothing of a refused job is left. With ``source_url``, ``scene``
    is GDAL's path to that URL (:func:`roadnet.urls.gdal_path`), checked and later read in place, and
    neither moved nor removed. ``filename`` is the user's own name of the scene (a URL without its
    credentials), used in messages instead of the server's. ``outputs`` and ``response`` are what an
    execute request asked of the results (all, as a document, for an upload). Raises
    :class:`InputError` (422), :class:`TooManyJobsError` (429), :class:`QueueUnavailableError` (503) and
    the store's storage errors.
    """
    try:
        options = parse_options(fields)
        await check_quota(store, owner, settings)
        metadata = await run_in_threadpool(read_metadata, settings.model_path)
        resolve_options(InferenceOptions(stride=options.stride, fast=options.fast), metadata)
        try:
            checked = await run_in_threadpool(
                check_scene_isolated,
                scene,
                max_pixels=settings.max_scene_pixels,
                timeout_s=settings.scene_check_timeout_s,
                memory_mb=settings.scene_check_memory_mb,
            )
        except InputError as exc:
            # The engine names the file it read, a temporary name: say the user's own instead.
            raise type(exc)(str(exc).replace(scene.name, filename)) from None
        if checked.valid_fraction < settings.min_valid_fraction:
            raise NoValidPixelsError(
                f"{filename} holds data in {checked.valid_fraction:.1%} of its pixels (the rest is no data, "
                f"NaN or infinite), under the {settings.min_valid_fraction:.1%} needed "
                "(ROADNET_MIN_VALID_FRACTION); check its nodata value, or upload the part with data"
            )
        record = await run_in_threadpool(
            store.create,
            scene,
            owner=owner,
            filename=filename,
            options=options.model_dump(exclude_defaults=True),
            scene=checked.summary,
            bbox=checked.bbox,
            outputs=outputs,
            response=response,
            source_url=source_url,
        )
    except BaseException:
        if source_url is None:
            scene.unlink(missing_ok=True)
        raise
    try:
        await run_in_threadpool(celery.send_task, RUN_JOB, args=[record.id], task_id=record.id)
    except Exception as exc:  # kombu raises its transport's own connection errors
        await run_in_threadpool(store.remove, record.id)
        log.error("could not queue job %s: %s", record.id, exc)
        raise QueueUnavailableError(
            "the job queue cannot be reached, so no job was started; try again in a minute"
        ) from exc
    log.info("job %s accepted: %s, %dx%d", record.id, filename, checked.width, checked.height)
    return record
