"""``roadnet serve``: the API, with an embedded worker (``roadnet worker``, :mod:`worker.runner.cli`) unless
told otherwise."""

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

from roadnet.cli_options import concurrency_option, data_dir_option, settings_with_data_dir

log = logging.getLogger(__name__)

#: Seconds a stopping worker gets to finish its job before it is killed (the job is requeued then).
STOP_GRACE_S = 10.0
#: Restart delays of a worker that keeps dying: from the first to the last, doubling.
RESTART_DELAY_S = (1.0, 30.0)


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

    settings = settings_with_data_dir(data_dir)
    supervisor = None if no_worker else WorkerSupervisor(concurrency)
    if supervisor is not None:
        supervisor.start()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    finally:
        if supervisor is not None:
            supervisor.stop()
