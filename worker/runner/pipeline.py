"""One job from its uploaded scene to its published results: inference, vectorisation, previews.

Idempotent, so a redelivered message may run it again: each attempt writes into a fresh folder of its
own and publishes with one rename per file (:meth:`roadnet.jobs.JobStore.publish`), a job already final
is left alone, and a job dismissed meanwhile stops at the next progress report.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from roadnet.errors import ModelError, RoadnetError
from roadnet.jobs import JobEnded, JobOptions, JobRecord, JobStore
from roadnet.options import InferenceOptions
from roadnet.outputs import OUTPUTS, OutputName
from roadnet.settings import get_settings
from roadnet.speed import record_speed
from worker.inference.cog import scene_to_cog
from worker.inference.predict import predict_scene
from worker.runner.preview import render_mask_preview, render_preview
from worker.vector.vectorize import VectorizeOptions, vectorize_mask

log = logging.getLogger(__name__)

#: Seconds between two writes of a job's progress (each also checks whether it was dismissed).
REPORT_INTERVAL_S = 0.5
#: The share of the progress bar (percent) each stage ends at.
INFERENCE_END, VECTORIZE_END = 80, 97


def time_limit_message(limit_s: int) -> str:
    """Why a job that ran out of time failed, and what to do."""
    return (
        f"the job ran longer than the limit of {limit_s} s (ROADNET_JOB_TIME_LIMIT_S); upload a smaller "
        "scene, or set a larger stride or fast mode"
    )


def internal_error_message(exc: BaseException) -> str:
    """Why a job failed on an error that is not the user's, and what to do."""
    return (
        f"the worker failed ({type(exc).__name__}: {exc}); try again, and tell the service's operator if "
        "it happens again"
    )


class _Progress:
    """Maps each stage's fraction done onto the job's percent, written at most every REPORT_INTERVAL_S."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store, self.job_id = store, job_id
        self.last = 0.0

    def stage(self, start: int, end: int, message: str) -> Callable[[float], None]:
        self.report(start, message, force=True)
        return lambda fraction: self.report(start + (end - start) * fraction, message)

    def report(self, percent: float, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < REPORT_INTERVAL_S:
            return
        self.last = now
        self.store.report(self.job_id, int(percent), message)  # JobEnded when dismissed


def _as_the_user_knows_it(message: str, record: JobRecord, scene: Path) -> str:
    """``message`` naming the scene as its user does: the uploaded file's name, or its URL without
    credentials (``record.filename``); never the job's own file, nor GDAL's path with the URL in it."""
    message = message.replace(scene.name, record.filename)
    return message.replace(record.source_url, record.filename) if record.source_url else message


#: Which engine takes each job option: the one with a field of its name.
_INFERENCE_FIELDS = frozenset(field.name for field in fields(InferenceOptions))
_VECTORIZE_FIELDS = frozenset(field.name for field in fields(VectorizeOptions))


def engine_options(options: JobOptions) -> tuple[InferenceOptions, VectorizeOptions]:
    """The inference and vectorisation options a job's options stand for; an option left None keeps the
    engine's default."""
    given = options.model_dump(exclude_none=True)
    return (
        InferenceOptions(**{name: value for name, value in given.items() if name in _INFERENCE_FIELDS}),
        VectorizeOptions(**{name: value for name, value in given.items() if name in _VECTORIZE_FIELDS}),
    )


def run_job(
    job_id: str,
    *,
    store: JobStore,
    model_path: Path | None,
    worker: str,
) -> None:
    """Run job ``job_id`` to its end: ``successful`` with its results, ``failed`` with a reason, or
    stopped quietly when it was dismissed.

    Errors that are not the user's (a bug, a full disk) end the job ``failed`` and are raised again,
    so Celery records the failure too.
    """
    record = store.start(job_id, worker)
    if record is None:
        log.info("job %s is already final; nothing to do", job_id)
        return
    workdir = store.new_workdir(job_id)
    progress = _Progress(store, job_id)
    scene = store.scene_path(record)
    started = time.monotonic()
    try:
        inference_options, vectorize_options = engine_options(JobOptions.model_validate(record.options))
        prediction = predict_scene(
            scene,
            workdir,
            model_path=model_path,
            options=inference_options,
            progress=progress.stage(0, INFERENCE_END, "finding roads"),
        )
        vectors = vectorize_mask(
            prediction.mask,
            workdir / OUTPUTS[OutputName.roads].filename,
            options=vectorize_options,
            probability=prediction.probability,
            progress=progress.stage(INFERENCE_END, VECTORIZE_END, "tracing the road network"),
        )
        progress.stage(VECTORIZE_END, 100, "drawing the previews and the map's imagery")
        scene_to_cog(prediction.scene, workdir / OUTPUTS[OutputName.scene].filename)
        render_preview(prediction.scene, vectors.lines, workdir / OUTPUTS[OutputName.preview].filename)
        render_mask_preview(prediction.mask, workdir / OUTPUTS[OutputName.mask_preview].filename)
        summary = {
            "segments": vectors.segments,
            "total_length_m": vectors.total_length_m,
            "road_fraction": prediction.road_fraction,
            "model": prediction.model.name,
            "provider": prediction.provider,
            "window": prediction.window,
            "stride": prediction.stride,
            "threshold": prediction.threshold,
            "inference_s": round(prediction.seconds, 2),
            "vectorize_options": asdict(vectorize_options),
        }
        store.publish(job_id, workdir, summary)
        log.info("job %s successful", job_id)
        pixels = prediction.windows * prediction.window**2
        try:
            record_speed(store.root.parent, worker, pixels, time.monotonic() - started)
        except OSError as exc:  # the job is done; the next one measures again
            log.warning("could not record the worker's speed: %s", exc)
    except JobEnded:
        log.info("job %s was dismissed while running; stopped", job_id)
    except SoftTimeLimitExceeded:
        store.fail(job_id, time_limit_message(get_settings().job_time_limit_s))
    except ModelError as exc:
        store.fail(job_id, f"the worker cannot use its model: {exc}; tell the service's operator")
    except RoadnetError as exc:
        store.fail(job_id, _as_the_user_knows_it(str(exc), record, scene))
    except Exception as exc:
        store.fail(job_id, _as_the_user_knows_it(internal_error_message(exc), record, scene))
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
