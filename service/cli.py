"""``roadnet serve`` (the API, with an embedded worker unless told otherwise) and ``roadnet worker``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from roadnet.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Seconds a stopping worker gets to finish its job before it is killed (the job is requeued then).
STOP_GRACE_S = 10.0
#: Restart delays of a worker that keeps dying: from the first to the last, doubling.
RESTART_DELAY_S = (1.0, 30.0)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Job records, uploads and results (default: ROADNET_DATA_DIR).",
)
concurrency_option = click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs one worker runs at once; each job's ONNX Runtime uses ROADNET_ORT_INTRA_OP_THREADS threads.",
)


def _settings(data_dir: Path | None) -> Settings:
    """The settings, with ``--data-dir`` put in the environment so a worker process started here shares it."""
    if data_dir is not None:
        os.environ["ROADNET_DATA_DIR"] = str(data_dir.resolve())
        get_settings.cache_clear()
    return get_settings()


class WorkerSupervisor:
    """Runs ``roadnet worker`` as a child process group and starts it again whenever it dies.

    The worker requeues unfinished jobs when it starts (the embedded broker never redelivers), so a
    killed worker's job runs again in the new one. The whole process group is killed before a restart:
    a pool process orphaned by its dead parent would otherwise run its job on alongside the new worker.
    """

    def __init__(self, concurrency: int) -> None:
        self.command = [
            sys.executable, "-m", "roadnet", "worker", "--concurrency", str(concurrency),
            "--exit-with-parent", str(os.getpid()),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="roadnet-worker-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        delay = RESTART_DELAY_S[0]
        while not self.stopping.is_set():
            started = time.monotonic()
            self.process = subprocess.Popen(self.command, start_new_session=True)
            log.info("started the embedded worker (pid %d)", self.process.pid)
            code = self.process.wait()
            self._kill_group(self.process.pid)
            if self.stopping.is_set():
                return
            ran_long = time.monotonic() - started > 60
            delay = RESTART_DELAY_S[0] if ran_long else min(delay * 2, RESTART_DELAY_S[1])
            log.warning("the embedded worker exited (status %s); starting it again in %.0f s", code, delay)
            self.stopping.wait(delay)

    @staticmethod
    def _kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def stop(self) -> None:
        """Ask the worker to finish its job, and kill it after :data:`STOP_GRACE_S`."""
        self.stopping.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        self._kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("the embedded worker did not stop within %.0f s; killing it", STOP_GRACE_S)
        self._kill_group(process.pid)
        self.thread.join(timeout=5)


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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@data_dir_option
@click.option(
    "--no-worker",
    is_flag=True,
    help="Run the API alone, for workers started elsewhere with `roadnet worker` on a shared broker "
    "(ROADNET_BROKER_URL) and data directory.",
)
@concurrency_option
def serve_command(host: str, port: int, data_dir: Path | None, no_worker: bool, concurrency: int) -> None:
    """Serve the API and the web page, with a worker on this machine (no server to install)."""
    import uvicorn

    from service.main import create_app

    settings = _settings(data_dir)
    supervisor = None if no_worker else WorkerSupervisor(concurrency)
    if supervisor is not None:
        supervisor.start()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    finally:
        if supervisor is not None:
            supervisor.stop()


@click.command("worker")
@data_dir_option
@concurrency_option
@click.option("--hostname", "-n", default="roadnet@%h", show_default=True, help="Celery node name.")
@click.option("--exit-with-parent", "parent", type=int, default=None, hidden=True, help="PID of serve.")
def worker_command(data_dir: Path | None, concurrency: int, hostname: str, parent: int | None) -> None:
    """Run a worker: takes jobs from the broker (ROADNET_BROKER_URL; unset: the embedded one of the data
    directory, which takes one worker only) and runs them."""
    import worker.tasks  # noqa: F401  (registers the task with the app)
    from worker.celery_app import QUEUE, create_celery

    settings = _settings(data_dir)
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
