"""The deployment at scale: a real Redis broker, ``roadnet serve --no-worker`` in front and two
``roadnet worker`` processes. Several jobs run concurrently; one worker is killed with SIGKILL mid-job
and every job still ends successful: Redis redelivers the unacknowledged job after the visibility
timeout, here shortened to 20 s (jobs take about 10 s on this machine, so none is delivered twice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from service_harness import Deployment, deployment, wait_for

pytestmark = pytest.mark.slow

VISIBILITY_TIMEOUT_S = 20


@pytest.fixture
def scaled(tmp_path: Path, tiny_onnx_model: Path, redis_url: str) -> Iterator[Deployment]:
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        "ROADNET_BROKER_URL": redis_url,
        "ROADNET_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "ROADNET_MODEL_PATH": str(tiny_onnx_model),
        "ROADNET_ORT_INTRA_OP_THREADS": "1",
    }
    with deployment(tmp_path / "data", env) as started:
        yield started


def test_two_workers_one_killed_mid_job_every_job_succeeds(scaled: Deployment, spacenet_scene: Path) -> None:
    scaled.serve("--no-worker")
    workers = {name: scaled.worker(name) for name in ("w1", "w2")}
    health = scaled.wait_healthy(workers=2)
    assert health["checks"]["broker"]["detail"] == "redis broker reachable"

    jobs = [scaled.submit(spacenet_scene) for _ in range(4)]

    def both_running() -> dict[str, str] | None:
        """Worker name -> the job it runs, once both workers run one at the same time."""
        running = {}
        for job_id in jobs:
            record = scaled.record(job_id)
            if record["status"] == "running" and record["progress"] > 0:
                running[record["worker"].split("@")[0]] = job_id
        return running if len(running) == 2 else None

    running = wait_for(both_running, 90, "both workers to run a job")
    victim, survivor = "w1", "w2"
    workers[victim].kill()

    for job_id in jobs:
        status = scaled.wait_status(job_id, {"successful", "failed"}, 150)
        assert status["status"] == "successful", status
    record = scaled.record(running[victim])
    assert record["attempts"] == 2 and record["worker"].startswith(f"{survivor}@")
    assert scaled.record(running[survivor])["attempts"] == 1
