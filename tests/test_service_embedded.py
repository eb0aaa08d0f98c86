"""The embedded deployment end to end: ``roadnet serve`` (uvicorn and a real Celery worker over kombu's
filesystem transport, no server to install) as a real process on a free port, the tiny model, the SpaceNet
scene. A job runs to its results; a cancelled job stops and its files go; a worker killed mid-job is
restarted and the job requeued; jobs survive a restart of ``roadnet serve`` itself."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from service_harness import Deployment, deployment, wait_for

pytestmark = pytest.mark.slow

#: A stride of 32 puts 196 windows on the 650 x 650 scene instead of 64: a job long enough to act on
#: while it runs.
SLOW = {"stride": 32}


@pytest.fixture
def embedded(tmp_path: Path, tiny_onnx_model: Path) -> Iterator[Deployment]:
    env = {"ROADNET_MODEL_PATH": str(tiny_onnx_model), "ROADNET_ORT_INTRA_OP_THREADS": "1"}
    with deployment(tmp_path / "data", env) as started:
        yield started


def test_whole_flow_upload_run_download(embedded: Deployment, spacenet_scene: Path) -> None:
    embedded.serve()
    health = embedded.wait_healthy()
    assert health["checks"]["broker"]["detail"] == "embedded queue writable"

    job_id = embedded.submit(spacenet_scene, threshold=0.5)
    seen = set()

    def finished() -> dict | None:
        status = embedded.status(job_id)
        seen.add((status["status"], status["progress"]))
        return status if status["status"] in {"successful", "failed"} else None

    status = wait_for(finished, 120, "the job to finish", interval=0.05)
    assert status["status"] == "successful", status
    assert status["progress"] == 100 and status["message"] == "finished"
    assert status["started"] <= status["finished"]
    # Progress moved through the run, not just from 0 to 100.
    assert any(state == "running" and 0 < progress < 100 for state, progress in seen), seen
    assert status["summary"]["segments"] > 0 and status["summary"]["threshold"] == 0.5
    hrefs = {link["title"]: link["href"] for link in status["links"] if link["rel"] == "enclosure"}
    assert set(hrefs) == {"mask", "probability", "roads", "preview", "mask_preview", "scene"}

    mask = httpx.get(hrefs["mask"], timeout=30)
    assert mask.status_code == 200
    assert mask.headers["content-type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    with rasterio.open(io.BytesIO(mask.content)) as src, rasterio.open(spacenet_scene) as scene:
        assert (src.width, src.height, src.crs, src.transform) == (650, 650, scene.crs, scene.transform)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    roads = httpx.get(hrefs["roads"], timeout=30)
    assert roads.headers["content-type"] == "application/geo+json"
    collection = roads.json()
    assert (
        collection["type"] == "FeatureCollection"
        and len(collection["features"]) == status["summary"]["segments"]
    )
    preview = httpx.get(hrefs["preview"], timeout=30)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    mask_preview = httpx.get(hrefs["mask_preview"], timeout=30)
    assert mask_preview.status_code == 200 and mask_preview.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(mask_preview.content))
    assert (image.format, image.mode) == ("PNG", "RGBA")
    assert image.size == Image.open(io.BytesIO(preview.content)).size == (650, 650)
    assert 0 < status["summary"]["road_fraction"] < 1
    # Opaque where the mask says road, transparent elsewhere: as many road pixels as the mask has.
    with rasterio.open(io.BytesIO(mask.content)) as src:
        assert (np.asarray(image)[..., 3] == 255).sum() == (src.read(1) == 1).sum()
    ranged = httpx.get(hrefs["probability"], headers={"Range": "bytes=0-15"}, timeout=30)
    assert ranged.status_code == 206 and len(ranged.content) == 16
    assert httpx.head(hrefs["mask"], timeout=30).headers["content-length"] == str(len(mask.content))

    listing = httpx.get(f"{embedded.url}/jobs", timeout=10).json()
    assert [job["jobID"] for job in listing["jobs"]] == [job_id]


def test_cancel_a_running_job(embedded: Deployment, spacenet_scene: Path) -> None:
    embedded.serve()
    embedded.wait_healthy()
    job_id = embedded.submit(spacenet_scene, **SLOW)
    embedded.wait_status(job_id, {"running"}, 60)
    response = httpx.delete(f"{embedded.url}/jobs/{job_id}", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "dismissed"
    folder = embedded.data_dir / "jobs" / job_id
    # The worker stops at its next progress report and removes its attempt's folder.
    wait_for(lambda: sorted(p.name for p in folder.iterdir()) == [".lock", "job.json"], 30, "the files to go")
    follow = httpx.get(f"{embedded.url}/jobs/{job_id}", timeout=10).json()
    assert follow["status"] == "dismissed" and follow["links"][1:] == []
    # The worker is free for the next job.
    next_job = embedded.submit(spacenet_scene)
    assert embedded.wait_status(next_job, {"successful", "failed"}, 120)["status"] == "successful"


def test_killed_worker_is_restarted_and_its_job_requeued(embedded: Deployment, spacenet_scene: Path) -> None:
    embedded.serve()
    embedded.wait_healthy()
    job_id = embedded.submit(spacenet_scene, **SLOW)
    embedded.wait_status(job_id, {"running"}, 60)
    beats = list((embedded.data_dir / "workers").glob("*.json"))
    worker_pid = json.loads(beats[0].read_text())["pid"]
    os.killpg(worker_pid, signal.SIGKILL)  # the worker and its pool process, mid-job

    status = embedded.wait_status(job_id, {"successful", "failed"}, 180)
    assert status["status"] == "successful", status
    assert embedded.record(job_id)["attempts"] == 2
    assert len(list((embedded.data_dir / "jobs" / job_id).glob("work-*"))) == 0


def test_jobs_survive_a_restart_of_serve(embedded: Deployment, spacenet_scene: Path) -> None:
    first = embedded.serve()
    embedded.wait_healthy()
    done = embedded.submit(spacenet_scene)
    assert embedded.wait_status(done, {"successful", "failed"}, 120)["status"] == "successful"
    unfinished = embedded.submit(spacenet_scene, **SLOW)
    embedded.wait_status(unfinished, {"running"}, 60)
    waiting = embedded.submit(spacenet_scene)  # queued behind it

    first.kill()  # serve dies without a word; its worker follows it within a second
    wait_for(lambda: not _worker_alive(embedded), 15, "the orphaned worker to exit")

    embedded.serve()
    for job_id in (unfinished, waiting):
        assert embedded.wait_status(job_id, {"successful", "failed"}, 180)["status"] == "successful"
    assert httpx.get(f"{embedded.url}/jobs/{done}/results/roads", timeout=10).status_code == 200
    listing = httpx.get(f"{embedded.url}/jobs", timeout=10).json()
    assert [job["jobID"] for job in listing["jobs"]] == [waiting, unfinished, done]


def _worker_alive(deployment: Deployment) -> bool:
    for beat in (deployment.data_dir / "workers").glob("*.json"):
        try:
            os.kill(json.loads(beat.read_text())["pid"], 0)
            return True
        except ProcessLookupError:
            continue
    return False


def test_a_job_over_the_time_limit_ends_failed_saying_so(embedded: Deployment, spacenet_scene: Path) -> None:
    embedded.env["ROADNET_JOB_TIME_LIMIT_S"] = "2"
    embedded.serve()
    embedded.wait_healthy()
    job_id = embedded.submit(spacenet_scene, stride=16)
    status = embedded.wait_status(job_id, {"successful", "failed"}, 60)
    assert status["status"] == "failed"
    assert status["message"] == (
        "the job ran longer than the limit of 2 s (ROADNET_JOB_TIME_LIMIT_S); upload a smaller scene, or "
        "set a larger stride or fast mode"
    )
    assert not list((embedded.data_dir / "jobs" / job_id).glob("work-*"))
