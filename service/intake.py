"""Accepting a job: everything checked before anything is stored or queued, in one function that every
entry point calls once it has the scene (:func:`accept_job`): an upload (``POST /jobs``) and an execute
request (``POST /processes/.../execution``), whose scene is inline, fetched into the data directory, or a
Cloud-Optimised GeoTIFF read in place by URL.

A job is refused here, with a message, whenever the worker would refuse or fail it: options the model
cannot run, a scene that cannot be read, placed on the globe, that holds too few valid pixels or that
would outlast the job time limit at the workers' measured speed, a caller over their share of the queue,
or a broker found down (the last two before the scene is received or fetched). What is accepted is
recorded and queued, or (disk full, broker down) nothing of it is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from celery import Celery
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from roadnet.errors import (
    InputError,
    NoValidPixelsError,
    QueueUnavailableError,
    SceneTooSlowError,
    TooManyJobsError,
)
from roadnet.jobs import JobRecord, JobStore, ResultsResponse, live_workers
from roadnet.model_files import read_metadata
from roadnet.options import InferenceOptions, resolve_options
from roadnet.outputs import OutputName
from roadnet.queue import RUN_JOB, is_embedded
from roadnet.settings import Settings
from roadnet.speed import network_pixels, slowest_speed
from service.broker_check import BrokerCheck
from service.scene_check import check_scene_isolated
from service.schemas import JobCreate

log = logging.getLogger(__name__)

QUEUE_DOWN = "the job queue cannot be reached, so no job was started; try again in a minute"


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


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(1, round(seconds / 60))} min"


async def check_duration(
    filename: str, height: int, width: int, options: InferenceOptions, settings: Settings
) -> None:
    """:class:`SceneTooSlowError` when the scene would take longer than the job time limit at the
    slowest live worker's measured speed (:mod:`roadnet.speed`); nothing to check before one has a
    speed."""
    workers = await run_in_threadpool(live_workers, settings.data_dir)
    speed = await run_in_threadpool(slowest_speed, settings.data_dir, workers)
    if speed is None:
        return
    assert options.window is not None and options.stride is not None  # resolve_options filled them
    estimate_s = network_pixels(height, width, options.window, options.stride) / speed
    if estimate_s > settings.job_time_limit_s:
        raise SceneTooSlowError(
            f"{filename} would take about {_duration(estimate_s)} at the workers' measured speed; the limit "
            f"is {_duration(settings.job_time_limit_s)} (ROADNET_JOB_TIME_LIMIT_S); upload a smaller part, "
            "or set a larger stride or fast mode"
        )


async def check_queue(broker: BrokerCheck, settings: Settings) -> None:
    """:class:`QueueUnavailableError` when the broker was found down (a second ago at most).

    An upload then stops before its body is read, and an execute request before its scene is fetched
    (:func:`check_before_scene`), in half a second at most, rather than after the scene's check, on a
    publish that waits out its socket timeouts (:data:`roadnet.queue.BROKER_SOCKET_TIMEOUT_S`) when
    the broker is frozen. Not in embedded mode: its queue is the data directory, whose faults have their
    own answers (507, 503).
    """
    if not is_embedded(settings) and not (await broker()).ok:
        raise QueueUnavailableError(QUEUE_DOWN)


async def check_before_scene(
    store: JobStore, broker: BrokerCheck, owner: str | None, settings: Settings
) -> None:
    """What every way of starting a job checks before it receives or fetches the scene, so that a job
    refused for its caller's quota (429) or for a broker found down (503) costs no transfer: an upload's
    body is not read, a scene by reference is not fetched."""
    await check_quota(store, owner, settings)
    await check_queue(broker, settings)


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
        resolved = resolve_options(InferenceOptions(stride=options.stride, fast=options.fast), metadata)
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
        await check_duration(filename, checked.height, checked.width, resolved, settings)
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
        raise QueueUnavailableError(QUEUE_DOWN) from exc
    log.info("job %s accepted: %s, %dx%d", record.id, filename, checked.width, checked.height)
    return record
