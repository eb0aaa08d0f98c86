"""The Celery application, configured from roadnet's settings.

Two deployments, one configuration function:

- Embedded (``ROADNET_BROKER_URL`` unset, what ``roadnet serve`` runs): kombu's filesystem transport
  (each message written whole, :mod:`roadnet.embedded_queue`)
  with its queue in ``<data_dir>/broker``, so no server is needed. That
  transport deletes a message when it delivers it and never redelivers it, even with late
  acknowledgement, so the one embedded worker requeues unfinished jobs itself when it starts (see
  :func:`worker.runner.tasks.requeue_unfinished`).
- At scale (``ROADNET_BROKER_URL=redis://...``): Redis redelivers a message that was delivered but not
  acknowledged (its worker died) once ``ROADNET_VISIBILITY_TIMEOUT_S`` has passed since delivery.
  A message still running after that long would be delivered a second time, so the timeout must be
  longer than the longest job: by default 7 h against the 6 h job time limit
  (``ROADNET_JOB_TIME_LIMIT_S``). The cost of a long timeout is the wait before a killed worker's job
  starts again elsewhere. Redis checks for such messages every tenth of the timeout (at most every 10 s).

Every task is acknowledged late and requeued when its worker process is lost (the job pipeline is
idempotent), and only JSON crosses the broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from roadnet.settings import Settings

#: The queue every job goes through; named so that the embedded worker can purge it before requeueing.
QUEUE = "roadnet"
#: The name the service sends jobs by (it does not import the task's code).
RUN_JOB = "roadnet.run_job"
#: Redis: the longest one connect or one command may take. kombu and redis-py wait forever by default,
#: so a broker that stops answering without closing the connection (frozen, partitioned, failing over)
#: would hang an upload, or a worker's acknowledgement, until it came back.
BROKER_SOCKET_TIMEOUT_S = 5.0


def is_embedded(settings: Settings) -> bool:
    """Whether ``settings`` select the embedded, server-less broker."""
    return not settings.broker_url


def broker_folder(settings: Settings) -> Path:
    """The embedded broker's folder in the data directory."""
    return settings.data_dir / "broker"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for ``settings``' deployment."""
    config: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        # No result backend: the job store is the one record of a job, so a broker outage while a job
        # runs changes nothing about how it ends.
        "task_ignore_result": True,
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One job at a time per pool process: a prefetched job would wait behind a long one while
        # another worker idles, and would only come back after the visibility timeout if this one died.
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # Sending a job: one more try at once after a failure, not Celery's four over a second and a
        # half, so that an upload while the broker is down answers 503 within two socket timeouts.
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0},
        "worker_hijack_root_logger": False,
        # The soft limit raises inside the job, which then ends `failed` with a message; the hard limit
        # a minute later kills a job that does not stop (the task's on_failure marks it failed).
        "task_soft_time_limit": settings.job_time_limit_s,
        "task_time_limit": settings.job_time_limit_s + 60,
    }
    if is_embedded(settings):
        folder = broker_folder(settings)
        config["broker_url"] = "filesystem://"
        # kombu's filesystem transport, but each message appears in the queue whole (a half-written one
        # was dropped by the consumer, its job left `accepted`).
        config["broker_transport"] = "roadnet.embedded_queue:Transport"
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
        }
    else:
        timeout = settings.visibility_timeout_s
        transport = {
            "visibility_timeout": timeout,
            "unacked_restore_interval": max(1, min(10, timeout // 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT_S,
            "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
        }
        config["broker_url"] = settings.broker_url
        config["broker_transport_options"] = transport
    return config


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (the service uses one to send jobs, workers to run them)."""
    if is_embedded(settings):
        for sub in ("queue", "control"):
            (broker_folder(settings) / sub).mkdir(parents=True, exist_ok=True)
    app = Celery("roadnet")
    app.conf.update(celery_config(settings))
    return app
