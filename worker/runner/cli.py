"""``roadnet worker``: takes jobs from the queue and runs them (:mod:`worker.runner.tasks`)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import click

from roadnet.cli_options import concurrency_option, data_dir_option, settings_with_data_dir


def _exit_with_parent(parent: int) -> None:
    """Kill this worker's process group (it and its pool) as soon as ``parent`` is gone.

    ``roadnet serve`` starts its worker in a session of its own (so that Ctrl-C reaches only serve,
    which then stops the worker); if serve itself is killed, this takes the worker down with it.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="roadnet-parent-watch", daemon=True).start()


@click.command("worker")
@data_dir_option
@concurrency_option
@click.option("--hostname", "-n", default="roadnet@%h", show_default=True, help="Celery node name.")
@click.option("--exit-with-parent", "parent", type=int, default=None, hidden=True, help="PID of serve.")
def worker_command(data_dir: Path | None, concurrency: int, hostname: str, parent: int | None) -> None:
    """Run a worker: takes jobs from the broker (ROADNET_BROKER_URL; unset: the embedded one of the data
    directory, which takes one worker only) and runs them."""
    import worker.runner.tasks  # noqa: F401  (registers the task with the app)
    from roadnet.queue import QUEUE, create_celery

    settings = settings_with_data_dir(data_dir)
    if parent is not None:
        _exit_with_parent(parent)
    app = create_celery(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--hostname={hostname}",
            f"--queues={QUEUE}",
            f"--loglevel={settings.log_level}",
            # Workers need not talk to each other: the job store is the shared state, and the
            # heartbeat files say who is alive. This also spares the broker their traffic.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
