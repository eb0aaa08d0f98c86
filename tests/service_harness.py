"""Real processes for the service tests: ``roadnet serve`` and ``roadnet worker`` on free loopback ports,
each in its own process group so a test can kill one (and its pool) the way an operator's ``kill -9``
would; plus small waiting and upload helpers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

#: Makes an in-process client of the service from settings (the ``make_client`` fixture).
ClientFactory = Callable[..., TestClient]

ROADNET_CLI = str(Path(sys.executable).with_name("roadnet"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; after ``timeout`` fail, saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(interval)


class Process:
    """A ``roadnet`` command running in its own session, its output in ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.log = args, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [ROADNET_CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the whole process group (the process and its pool), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as an operator's stop; SIGKILL the group if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill()


class Deployment:
    """Service and worker processes sharing one data directory and environment."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "ROADNET_DATA_DIR": str(data_dir), **env}
        self.processes: list[Process] = []
        self.url = ""

    def serve(self, *extra: str) -> Process:
        """Start ``roadnet serve`` on a free port and wait until it answers ``/healthz`` (which needs no
        API key), healthy or not: a worker may come later (:meth:`wait_healthy`)."""
        port = free_port()
        process = Process(
            ["serve", "--port", str(port), *extra], self.env, self.data_dir.parent / "serve.log"
        )
        self.processes.append(process)
        self.url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if process.proc.poll() is not None:
                pytest.fail(f"roadnet serve exited:\n{process.tail()}", pytrace=False)
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503)
            except httpx.TransportError:
                return False

        wait_for(answers, 60, f"roadnet serve on {self.url}", interval=0.2)
        return process

    def worker(self, name: str) -> Process:
        """Start ``roadnet worker`` named ``name``."""
        process = Process(
            ["worker", "--hostname", f"{name}@%h"], self.env, self.data_dir.parent / f"{name}.log"
        )
        self.processes.append(process)
        return process

    def wait_healthy(self, workers: int = 1, timeout: float = 60) -> dict:
        # With API keys on, /healthz gives its details (worker count) only to a caller with a key.
        keys = self.env.get("ROADNET_API_KEYS", "")
        headers = {"X-API-Key": keys.split(",")[0]} if keys else {}

        def healthy() -> dict | None:
            response = httpx.get(f"{self.url}/healthz", headers=headers, timeout=5)
            body = response.json()
            live = body["checks"]["worker"]["detail"]
            if response.status_code == 200 and live.startswith(f"{workers} live"):
                return body
            return None

        return wait_for(healthy, timeout, f"{workers} live worker(s) in /healthz", interval=0.3)

    def submit(self, scene: Path, **fields: object) -> str:
        with scene.open("rb") as f:
            response = httpx.post(
                f"{self.url}/jobs",
                files={"file": (scene.name, f, "image/tiff")},
                data={k: str(v) for k, v in fields.items()},
                timeout=60,
            )
        assert response.status_code == 201, response.text
        return str(response.json()["jobID"])

    def status(self, job_id: str) -> dict:
        return dict(httpx.get(f"{self.url}/jobs/{job_id}", timeout=10).json())

    def wait_status(self, job_id: str, statuses: set[str], timeout: float) -> dict:
        def reached() -> dict | None:
            status = self.status(job_id)
            return status if status["status"] in statuses else None

        return wait_for(reached, timeout, f"job {job_id} to be {'/'.join(sorted(statuses))}")

    def record(self, job_id: str) -> dict:
        """The job's record as the workers see it (for which worker runs it)."""
        return dict(json.loads((self.data_dir / "jobs" / job_id / "job.json").read_text()))

    def logs(self) -> str:
        return "\n".join(f"==== {p.args}\n{p.tail()}" for p in self.processes)

    def stop_all(self) -> None:
        for process in self.processes:
            process.kill()


@contextmanager
def deployment(data_dir: Path, env: dict[str, str]) -> Iterator[Deployment]:
    """A :class:`Deployment` whose processes are killed at the end; their logs are printed on failure."""
    started = Deployment(data_dir, env)
    try:
        yield started
    except BaseException:
        print(started.logs())
        raise
    finally:
        started.stop_all()
