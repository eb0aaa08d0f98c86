"""The Celery task (a job id in) and the worker's start-up and heartbeat.

The work itself is :func:`worker.runner.pipeline.run_job`; this module only connects it to Celery: the job's
end when the pool process is killed past the hard time limit, and, for the embedded broker (which never
redelivers), requeueing unfinished jobs before the worker consumes. The task returns nothing and Celery
keeps no result: the job store is the one record of a job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_init, worker_ready, worker_shutdown

from roadnet.jobs import HEARTBEAT_INTERVAL_S, JobStore, forget_worker, record_heartbeat
from roadnet.queue import QUEUE, RUN_JOB, broker_folder, is_embedded
from roadnet.settings import get_settings
from worker.runner import pipeline

log = logging.getLogger(__name__)


class JobTask(Task):
    """Ends the job ``failed`` when the task fails outside the pipeline's own handling.

    Celery calls ``on_failure`` in the worker's main process when the hard time limit killed the pool
    process, where the pipeline had no chance to say why.
    """

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
            message = pipeline.time_limit_message(get_settings().job_time_limit_s)
        else:
            message = pipeline.internal_error_message(exc)
        JobStore(get_settings().data_dir).fail(args[0], message)


@shared_task(name=RUN_JOB, bind=True, base=JobTask, ignore_result=True)
def run_job(self: Task, job_id: str) -> None:
    """Run job ``job_id`` (see :func:`worker.runner.pipeline.run_job`).

    Progress and outcome go to the job store alone, never to the broker: a broker outage while the job
    runs cannot change how it ends.
    """
    settings = get_settings()
    pipeline.run_job(
        job_id,
        store=JobStore(settings.data_dir),
        model_path=settings.model_path,
        worker=self.request.hostname or f"pid {os.getpid()}",
    )


# ---- worker process start-up (the main process, before it consumes) ----

_embedded_lock: int | None = None
_stop_heartbeat = threading.Event()


def _hold_embedded_lock() -> None:
    """Make this worker the only one on the embedded broker's queue, or exit saying why.

    POSIX record locks (lockf), unlike flock, are not inherited by the pool's forked processes, so the
    lock dies with this process even when an orphaned pool process lives on.
    """
    global _embedded_lock
    path = broker_folder(get_settings()) / "worker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SystemExit(
            f"another embedded worker already serves {get_settings().data_dir}; run one `roadnet serve` "
            "(or `roadnet worker`) per data directory, or set ROADNET_BROKER_URL to share a Redis broker"
        ) from None
    _embedded_lock = fd


def requeue_unfinished(app: Any) -> list[str]:
    """Empty the embedded queue and send every ``accepted`` or ``running`` job again, oldest first.

    The filesystem transport deletes a message when it delivers it, so a job whose worker was killed
    has no message left; a job still waiting has one, dropped by the purge and sent again here, so each
    unfinished job ends up with exactly one message. Safe only while no other worker consumes the
    queue, which :func:`_hold_embedded_lock` guarantees.
    """
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    ids = JobStore(get_settings().data_dir).requeue_unfinished()
    for job_id in ids:
        app.send_task(RUN_JOB, args=[job_id], task_id=job_id)
    if ids:
        log.info("requeued %d unfinished job(s): %s", len(ids), ", ".join(ids))
    return ids


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    if is_embedded(get_settings()):
        _hold_embedded_lock()
        requeue_unfinished(sender.app)


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = sender.hostname
    data_dir = get_settings().data_dir

    def beat() -> None:
        while True:
            try:
                record_heartbeat(data_dir, hostname)
            except OSError as exc:  # a full or failing disk: beat again next time, when it may be back
                log.warning("could not record the worker's heartbeat: %s", exc)
            if _stop_heartbeat.wait(HEARTBEAT_INTERVAL_S):
                return

    threading.Thread(target=beat, name="roadnet-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _stop_heartbeat.set()
    if sender is not None:
        forget_worker(get_settings().data_dir, sender.hostname)
