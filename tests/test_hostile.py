"""Hostile input and faults (issue 13): crafted GeoTIFFs made here, a full and a read-only data directory
(a tmpfs mounted by the test, as root), a Redis killed while jobs run.

Each refused upload answers with its reason and leaves no file in the data directory; the service keeps
answering ``/healthz`` in under a second throughout; faults of the broker or the disk do not change how a
running job ends. The refusals hold for every way of starting a job (:class:`Way`): a multipart upload,
and an execute request naming the scene by reference, fetched or (a COG) read in place.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from conftest import GeoTiffWriter, start_redis_server
from fastapi.testclient import TestClient
from range_server import RangeServer, serve_files
from rasterio.transform import Affine, from_origin
from service_harness import ROADNET_CLI, ClientFactory, deployment, free_port, wait_for
from test_service_api import left_behind, sparse_geotiff, upload

from roadnet.errors import StorageFullError
from roadnet.jobs import JobStore, record_heartbeat
from roadnet.queue import create_celery
from roadnet.scene import inspect_scene, open_scene, read_rgb
from roadnet.settings import Settings
from roadnet.speed import record_speed
from service.intake import QUEUE_DOWN
from worker.inference.predict import predict_scene

LOCAL_CS = 'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
#: What /healthz answers within, whatever the uploads; generous, for busy CI machines.
HEALTHZ_BOUND_S = 5.0


def _rgb(side: int = 300) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (3, side, side), dtype=np.uint8)


def bad_georeference(write_geotiff: GeoTiffWriter, case: str) -> Path:
    """A 300 x 300 RGB GeoTIFF whose georeference is broken in the way ``case`` names."""
    crs, transform = {
        # PROJ looped for more than 15 minutes on this one, holding the whole API.
        "mercator_1e30": ("EPSG:3857", from_origin(1e30, 1e30, 1e25, 1e25)),
        "utm_1e12": ("EPSG:32633", from_origin(1e12, 1e12, 0.5, 0.5)),
        "nan_geotransform": ("EPSG:32633", Affine(math.nan, 0, 500_000, 0, -0.5, 5e6)),
        "zero_pixel_size": ("EPSG:32633", from_origin(500_000, 5e6, 0, 0)),
        "off_the_globe": ("EPSG:4326", from_origin(500, 100, 0.001, 0.001)),
        "local_cs": (LOCAL_CS, from_origin(1000, 2000, 1, 1)),
    }[case]
    return write_geotiff(_rgb(), name=f"{case}.tif", crs=crs, transform=transform)


GEOREFERENCE_REFUSALS = {
    "mercator_1e30": "mercator_1e30.tif's coordinates reach 1e+30 map units, farther than 1e+08 m",
    "utm_1e12": "utm_1e12.tif's coordinates reach 1e+12 map units",
    "nan_geotransform": "nan_geotransform.tif has an unusable geotransform",
    "zero_pixel_size": "zero_pixel_size.tif has an unusable geotransform",
    "off_the_globe": "off_the_globe.tif's corners (longitude 500 to 500.3, latitude 99.7 to 100) are off "
    "the globe",
    "local_cs": "local_cs.tif's coordinate reference system cannot be transformed to longitude and latitude",
}


def no_valid_pixels(write_geotiff: GeoTiffWriter, case: str) -> Path:
    """A scene without a single valid pixel: all nodata, or all NaN in float32 without a nodata value."""
    if case == "all_nodata":
        return write_geotiff(np.zeros((3, 300, 300), np.uint8), name="all_nodata.tif", nodata=0)
    return write_geotiff(np.full((3, 300, 300), np.nan, np.float32), name="all_nan.tif")


def one_huge_tile(path: Path) -> Path:
    """16 000 x 16 000 pixels in a single tile, none written (a few hundred bytes): reading any pixel
    means decoding 768 MB."""
    return sparse_geotiff(path, side=16_000, block=16_000)


def hostile_scenes(write_geotiff: GeoTiffWriter, tmp_path: Path) -> list[Path]:
    """Every crafted scene the service must refuse."""
    return [
        *(bad_georeference(write_geotiff, case) for case in GEOREFERENCE_REFUSALS),
        *(no_valid_pixels(write_geotiff, case) for case in ("all_nodata", "all_nan")),
        one_huge_tile(tmp_path / "one_tile.tif"),
    ]


def assert_nothing_kept(data_dir: Path) -> None:
    assert left_behind(data_dir) == []
    assert not list((data_dir / "broker" / "queue").iterdir())


#: Scenes by reference come from a server on loopback here, which the service fetches from only when
#: its operator allows it.
LOOPBACK = ["127.0.0.1"]


@dataclass
class Way:
    """One way of starting a job: ``upload`` (multipart ``POST /jobs``), or an execute request with the
    scene by reference, ``href`` (a plain GeoTIFF, fetched into the data directory) or ``cog`` (a
    Cloud-Optimised GeoTIFF, checked in place through GDAL's /vsicurl/)."""

    name: str
    server: RangeServer

    def submit(
        self, client: TestClient, scene: Path, headers: dict[str, str] | None = None, **fields: object
    ) -> httpx.Response:
        if self.name == "upload":
            return upload(client, scene, headers, **fields)
        served = self.server.root / scene.name
        if self.name == "cog":
            rasterio.shutil.copy(scene, served, driver="COG")
        else:
            shutil.copy(scene, served)
        image = {"href": f"{self.server.url}/{scene.name}"}
        return client.post(
            "/processes/road-extraction/execution",
            json={"inputs": {"image": image, **fields}},
            headers=headers,
        )

    def shown(self, scene: Path) -> str:
        """How messages name ``scene``: its file name, or its URL."""
        return scene.name if self.name == "upload" else f"{self.server.url}/{scene.name}"


@pytest.fixture(params=["upload", "href", "cog"])
def way(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Way]:
    root = tmp_path / "served"
    root.mkdir()
    with serve_files(root) as server:
        yield Way(request.param, server)


# ---- refused at upload, before anything is stored ----


@pytest.mark.parametrize("case", GEOREFERENCE_REFUSALS)
def test_unusable_georeference_is_refused_before_anything_is_stored(
    make_client: ClientFactory, data_dir: Path, write_geotiff: GeoTiffWriter, case: str, way: Way
) -> None:
    scene = bad_georeference(write_geotiff, case)
    response = way.submit(make_client(fetch_allowed_hosts=LOOPBACK), scene)
    assert response.status_code == 422, response.text
    refusal = GEOREFERENCE_REFUSALS[case].replace(scene.name, way.shown(scene), 1)
    assert response.json()["detail"].startswith(refusal)
    assert_nothing_kept(data_dir)


@pytest.mark.parametrize("case", ["all_nodata", "all_nan"])
def test_a_scene_without_valid_pixels_is_refused(
    make_client: ClientFactory, data_dir: Path, write_geotiff: GeoTiffWriter, case: str, way: Way
) -> None:
    scene = no_valid_pixels(write_geotiff, case)
    response = way.submit(make_client(fetch_allowed_hosts=LOOPBACK), scene)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(
        f"{way.shown(scene)} holds data in 0.0% of its pixels (the rest is no data, NaN or infinite), "
        "under the 1.0% needed (ROADNET_MIN_VALID_FRACTION)"
    )
    assert_nothing_kept(data_dir)


def test_a_scene_in_one_huge_tile_is_refused_unread(
    make_client: ClientFactory, data_dir: Path, tmp_path: Path
) -> None:
    response = upload(make_client(), one_huge_tile(tmp_path / "one_tile.tif"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(
        "one_tile.tif is stored in blocks of 16000x16000 pixels (732 MiB each, more than 256 MiB)"
    )
    assert_nothing_kept(data_dir)


def test_a_check_past_its_deadline_is_refused(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path, way: Way
) -> None:
    client = make_client(scene_check_timeout_s=0.001, fetch_allowed_hosts=LOOPBACK)
    response = way.submit(client, spacenet_scene)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        f"{way.shown(spacenet_scene)} took longer than 0.001 s to check (ROADNET_SCENE_CHECK_TIMEOUT_S), "
        "so it was refused; check its georeference and compression, or split it"
    )
    assert_nothing_kept(data_dir)


def test_options_the_worker_would_refuse_are_refused_at_upload(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path, way: Way
) -> None:
    client = make_client(fetch_allowed_hosts=LOOPBACK)
    response = way.submit(client, spacenet_scene, stride=512)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("stride 512 is larger than the window 256")
    assert_nothing_kept(data_dir)
    # Fast mode's window is 1024 px: the same stride is fine there.
    accepted = way.submit(client, spacenet_scene, stride=512, fast="true")
    assert accepted.status_code == 201, accepted.text
    # A COG by reference was checked where it is, and stays there; any other scene is the job's input.
    assert (data_dir / "jobs" / accepted.json()["jobID"] / "input.tif").is_file() == (way.name != "cog")


def test_each_key_has_a_limit_on_queued_and_running_jobs(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path, way: Way
) -> None:
    client = make_client(api_keys=["key-a", "key-b"], max_active_jobs_per_key=2, fetch_allowed_hosts=LOOPBACK)
    a, b = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    first, _ = (way.submit(client, spacenet_scene, headers=a).json()["jobID"] for _ in range(2))
    fetched = len(way.server.requests)
    refused = way.submit(client, spacenet_scene, headers=a)
    assert len(way.server.requests) == fetched  # refused before the scene is fetched
    assert refused.status_code == 429
    assert refused.json() == {
        "type": "about:blank",
        "title": HTTPStatus(429).phrase,
        "status": 429,
        "detail": "you already have 2 jobs queued or running, the most one key may have "
        "(ROADNET_MAX_ACTIVE_JOBS_PER_KEY); wait for one to finish, or cancel one",
    }
    assert way.submit(client, spacenet_scene, headers=b).status_code == 201  # another key's share
    client.delete(f"/jobs/{first}", headers=a)
    assert way.submit(client, spacenet_scene, headers=a).status_code == 201
    assert len(list((data_dir / "uploads").iterdir())) == 0


def test_a_scene_that_would_outlast_the_time_limit_is_refused(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path, way: Way
) -> None:
    """The estimate at the slowest live worker's recorded speed (here a made-up slow one; the slow test
    below measures a real one) refuses the scene before anything is stored, whichever way it came."""
    record_heartbeat(data_dir, "slow@test")
    record_speed(data_dir, "slow@test", pixels=1, seconds=1000)
    response = way.submit(make_client(job_time_limit_s=60, fetch_allowed_hosts=LOOPBACK), spacenet_scene)
    assert response.status_code == 422, response.text
    assert re.fullmatch(
        re.escape(way.shown(spacenet_scene)) + r" would take about \d+\.\d h at the workers' measured speed; "
        r"the limit is 1 min \(ROADNET_JOB_TIME_LIMIT_S\); upload a smaller part, or set a larger stride "
        r"or fast mode",
        response.json()["detail"],
    ), response.text
    assert_nothing_kept(data_dir)


def test_a_job_is_refused_before_its_scene_while_the_broker_is_down(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path, way: Way
) -> None:
    """The bounded broker check refuses an upload before its body is read and an execute request before
    its scene is fetched (the slow tests below freeze and kill a real Redis)."""
    client = make_client(broker_url=f"redis://127.0.0.1:{free_port()}/0", fetch_allowed_hosts=LOOPBACK)
    response = way.submit(client, spacenet_scene)
    assert response.status_code == 503, response.text
    assert response.json() == {
        "type": "about:blank",
        "title": HTTPStatus(503).phrase,
        "status": 503,
        "detail": QUEUE_DOWN,
    }
    assert way.server.requests == []  # nothing fetched
    assert left_behind(data_dir) == []


# ---- NaN and inf are no data ----


def test_nan_and_inf_pixels_are_no_data_and_do_not_blank_the_scene(
    write_geotiff: GeoTiffWriter, tmp_path: Path, tiny_onnx_model: Path
) -> None:
    values = np.random.default_rng(1).uniform(100, 3000, (3, 300, 300)).astype(np.float32)
    bad = np.zeros((300, 300), bool)
    bad.flat[np.random.default_rng(2).choice(bad.size, 100, replace=False)] = True
    values[0][bad] = np.nan
    values[2][np.eye(300, dtype=bool)] = np.inf
    bad |= np.eye(300, dtype=bool)
    path = write_geotiff(values, name="float_nan.tif")  # no nodata value declared

    info = inspect_scene(path, require_georeference=True)
    assert info.stretch is not None and all(math.isfinite(v) for band in info.stretch for v in band)
    assert info.valid_fraction == pytest.approx(1 - bad.mean(), abs=0.01)
    with open_scene(info) as src:
        rgb, valid = read_rgb(src, info, 0, info.height)
    assert np.array_equal(~valid, bad)
    assert rgb[:, valid].std() > 20  # the stretch still spreads the valid pixels over 8 bits

    prediction = predict_scene(path, tmp_path / "out", model_path=tiny_onnx_model)
    with rasterio.open(prediction.mask) as mask:
        assert np.array_equal(mask.read(1) == 255, bad)
    assert math.isfinite(prediction.road_fraction)


# ---- listing through the index ----


def test_listing_reads_only_the_callers_records_through_an_index_in_step_with_them(
    data_dir: Path, spacenet_scene: Path
) -> None:
    store = JobStore(data_dir)

    def create(owner: str) -> str:
        scene = store.new_upload_path()
        scene.write_bytes(b"scene")
        return store.create(scene, owner=owner, filename="s.tif", options={}, scene={}).id

    ids = {owner: [create(owner) for _ in range(3)] for owner in ("a", "b")}
    # A record that cannot be read at all: listing or counting a's jobs never touches b's records.
    record = store.folder(ids["b"][0]) / "job.json"
    saved = record.read_bytes()
    record.unlink()
    record.mkdir()
    records, total = store.page("a", limit=2, offset=1)
    assert [r.id for r in records] == ids["a"][::-1][1:3] and total == 3
    assert store.count_active("a") == 3
    record.rmdir()
    record.write_bytes(saved)

    store.dismiss(ids["a"][0])
    assert store.count_active("a") == 2
    store.remove_expired(timedelta(0))
    assert store.page("a", limit=10)[1] == 2
    # A data directory without an index (older roadnet, or the index lost) gets one from the records.
    (data_dir / "index.sqlite").unlink()
    rebuilt = JobStore(data_dir)
    assert [r.id for r in rebuilt.page(None, limit=10)[0]] == [*ids["b"][::-1], *ids["a"][:0:-1]]


# ---- nothing leaks: paths, addresses, keys ----


def test_refusals_and_health_name_no_server_path(
    make_client: ClientFactory, data_dir: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.tif"
    notes.write_text("not an image\n" * 50)
    client = make_client(api_keys=["key-a"])
    key = {"X-API-Key": "key-a"}
    refused = upload(client, notes, headers=key)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail.startswith("notes.tif is not a raster that can be read")
    assert "/" not in detail.replace("gdal_translate", "")

    anonymous = client.get("/healthz")
    assert anonymous.json() == {
        "status": "degraded",
        "checks": {"broker": {"ok": True}, "worker": {"ok": False}, "model": {"ok": True}},
    }
    detailed = client.get("/healthz", headers=key).json()
    assert detailed["checks"]["model"]["detail"] == "model tiny-risnet.onnx"
    assert detailed["checks"]["broker"]["detail"] == "embedded queue writable"
    assert str(data_dir) not in json.dumps(detailed) and str(tmp_path) not in json.dumps(detailed)


def test_failure_messages_name_no_server_path(data_dir: Path, spacenet_scene: Path, tmp_path: Path) -> None:
    store = JobStore(data_dir)
    scene = tmp_path / "upload.tif"
    scene.write_bytes(spacenet_scene.read_bytes())
    record = store.create(scene, owner=None, filename="a.tif", options={}, scene={})
    store.fail(
        record.id, f"the worker failed (OSError: [Errno 5] cannot read '{store.input_path(record.id)}')"
    )
    assert store.get(record.id).message == "the worker failed (OSError: [Errno 5] cannot read 'input.tif')"


def test_settings_command_masks_keys_and_the_broker_password(tmp_path: Path) -> None:
    env = {**os.environ, "ROADNET_DATA_DIR": str(tmp_path), "ROADNET_API_KEYS": "s3cret-a,s3cret-b",
           "ROADNET_BROKER_URL": "redis://:hunter2@redis-host:6379/0"}  # fmt: skip
    result = subprocess.run([ROADNET_CLI, "settings"], env=env, capture_output=True, text=True, check=True)
    settings = json.loads(result.stdout)
    assert settings["api_keys"] == ["****", "****"]
    assert "s3cret" not in result.stdout and "hunter2" not in result.stdout


# ---- a full or read-only data directory ----


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted for this test (mounting needs root), unmounted after it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the disk tests run as root): {mounted.stderr!r}", pytrace=False)
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the file that fills it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (b"\0" * 2**20, b"\0" * 4096, b"\0"):
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def test_a_full_or_read_only_data_directory_refuses_uploads_and_keeps_nothing(
    small_disk: Path, tiny_onnx_model: Path, spacenet_scene: Path, way: Way
) -> None:
    from roadnet.settings import Settings
    from service.main import create_app

    data_dir = small_disk / "data"
    settings = Settings(data_dir=data_dir, model_path=tiny_onnx_model, fetch_allowed_hosts=LOOPBACK)
    with TestClient(create_app(settings)) as client:
        filler = fill(small_disk)
        full = way.submit(client, spacenet_scene)
        assert full.status_code == 507
        assert full.json() == {
            "type": "about:blank",
            "title": HTTPStatus(507).phrase,
            "status": 507,
            "detail": "the service's storage is full, so nothing was stored; try again later, and tell the "
            "service's operator if it lasts",
        }
        assert_nothing_kept(data_dir)

        filler.unlink()
        remount(small_disk, "ro")
        try:
            read_only = way.submit(client, spacenet_scene)
        finally:
            remount(small_disk, "rw")
        assert read_only.status_code == 503
        assert read_only.json()["detail"].startswith("the service's storage is read-only")
        assert_nothing_kept(data_dir)

        assert way.submit(client, spacenet_scene).status_code == 201


def test_a_record_that_cannot_be_written_leaves_no_job_behind(small_disk: Path, spacenet_scene: Path) -> None:
    store = JobStore(small_disk / "data")
    scene = store.new_upload_path()
    scene.write_bytes(spacenet_scene.read_bytes())
    fill(small_disk)
    with pytest.raises(StorageFullError):
        store.create(scene, owner=None, filename="a.tif", options={}, scene={})
    assert list(store.root.iterdir()) == []
    assert scene.is_file()  # still the caller's, who removes it


# ---- real processes: healthz throughout, a full disk freed, a Redis outage ----


class HealthProbe:
    """Calls ``/healthz`` every 0.2 s in a thread and keeps the slowest answer's time."""

    def __init__(self, url: str) -> None:
        self.url, self.slowest, self.failures = url, 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            started = time.monotonic()
            try:
                httpx.get(f"{self.url}/healthz", timeout=10)
            except httpx.TransportError:
                self.failures += 1
            self.slowest = max(self.slowest, time.monotonic() - started)

    def __enter__(self) -> HealthProbe:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def _post(url: str, scene: Path, **fields: object) -> httpx.Response:
    with scene.open("rb") as f:
        return httpx.post(f"{url}/jobs", files={"file": (scene.name, f)}, data=fields, timeout=60)


@pytest.mark.slow
def test_hostile_uploads_and_a_full_disk_keep_healthz_fast_and_the_next_job_succeeds(
    small_disk: Path,
    tiny_onnx_model: Path,
    spacenet_scene: Path,
    write_geotiff: GeoTiffWriter,
    tmp_path: Path,
) -> None:
    env = {"ROADNET_MODEL_PATH": str(tiny_onnx_model), "ROADNET_ORT_INTRA_OP_THREADS": "1"}
    scenes = hostile_scenes(write_geotiff, tmp_path)
    with deployment(small_disk / "data", env) as embedded:
        embedded.serve()
        embedded.wait_healthy()
        with HealthProbe(embedded.url) as probe:
            for scene in scenes:
                response = _post(embedded.url, scene)
                assert response.status_code == 422, (scene.name, response.text)
            assert_nothing_kept(embedded.data_dir)

            filler = fill(small_disk)
            refused = _post(embedded.url, spacenet_scene)
            assert refused.status_code == 507, refused.text
            assert_nothing_kept(embedded.data_dir)
            # Longer than a heartbeat interval: the worker's heartbeat fails at least once meanwhile.
            time.sleep(12)
            filler.unlink()
            embedded.wait_healthy(timeout=30)
            job_id = embedded.submit(spacenet_scene)
            assert embedded.wait_status(job_id, {"successful", "failed"}, 120)["status"] == "successful"
        assert probe.failures == 0 and probe.slowest < HEALTHZ_BOUND_S, vars(probe)


def assert_upload_refused_while_the_broker_is_down(url: str, scene: Path) -> None:
    """An upload answers 503 with its reason, promptly (checked before the body is read)."""
    started = time.monotonic()
    response = _post(url, scene)
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == (
        "the job queue cannot be reached, so no job was started; try again in a minute"
    )
    assert time.monotonic() - started < HEALTHZ_BOUND_S


@pytest.mark.slow
def test_a_frozen_broker_answers_degraded_promptly_and_refuses_uploads(
    tmp_path: Path, tiny_onnx_model: Path, spacenet_scene: Path
) -> None:
    """A Redis that stops answering without closing its connections (SIGSTOP: as a partition or a
    failover would) once held ``/healthz`` and uploads until it came back."""
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = start_redis_server(port, redis_dir)
    env = {"ROADNET_BROKER_URL": f"redis://127.0.0.1:{port}/0", "ROADNET_MODEL_PATH": str(tiny_onnx_model)}

    def broker_check() -> dict:
        return dict(httpx.get(f"{scaled.url}/healthz", timeout=10).json()["checks"]["broker"])

    try:
        with deployment(tmp_path / "data", env) as scaled:
            scaled.serve("--no-worker")
            assert broker_check() == {"ok": True, "detail": "redis broker reachable"}
            redis.send_signal(signal.SIGSTOP)
            with HealthProbe(scaled.url) as probe:
                time.sleep(3)
                assert broker_check()["ok"] is False
                assert_upload_refused_while_the_broker_is_down(scaled.url, spacenet_scene)
                assert left_behind(scaled.data_dir) == []
                redis.send_signal(signal.SIGCONT)
                wait_for(lambda: broker_check()["ok"], 30, "the broker to be reachable again")
            assert probe.failures == 0 and probe.slowest < HEALTHZ_BOUND_S, vars(probe)
    finally:
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait()


@pytest.mark.slow
def test_a_redis_outage_while_two_jobs_run_changes_nothing(
    tmp_path: Path, tiny_onnx_model: Path, spacenet_scene: Path
) -> None:
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = start_redis_server(port, redis_dir)
    env = {
        "ROADNET_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "ROADNET_VISIBILITY_TIMEOUT_S": "20",
        "ROADNET_MODEL_PATH": str(tiny_onnx_model),
        "ROADNET_ORT_INTRA_OP_THREADS": "1",
    }
    try:
        with deployment(tmp_path / "data", env) as scaled:
            scaled.serve("--no-worker")
            for name in ("w1", "w2"):
                scaled.worker(name)
            scaled.wait_healthy(workers=2)
            jobs = [scaled.submit(spacenet_scene, stride=16) for _ in range(2)]

            def both_running() -> bool:
                return all(
                    (r := scaled.record(job))["status"] == "running" and r["progress"] > 0 for job in jobs
                )

            wait_for(both_running, 90, "both jobs to run")
            redis.kill()
            redis.wait()
            with HealthProbe(scaled.url) as probe:
                time.sleep(5)
                health = httpx.get(f"{scaled.url}/healthz", timeout=10)
                assert health.status_code == 503, health.text
                assert health.json()["checks"]["broker"] == {
                    "ok": False,
                    "detail": "redis broker unreachable (OperationalError)",
                }
                assert_upload_refused_while_the_broker_is_down(scaled.url, spacenet_scene)
                assert sorted(p.name for p in (scaled.data_dir / "jobs").iterdir()) == sorted(jobs)
                time.sleep(5)
                redis = start_redis_server(port, redis_dir)
                for job_id in jobs:
                    status = scaled.wait_status(job_id, {"successful", "failed"}, 300)
                    assert status["status"] == "successful", status
            assert probe.failures == 0 and probe.slowest < HEALTHZ_BOUND_S, vars(probe)
            assert all(scaled.record(job)["attempts"] == 1 for job in jobs)
    finally:
        redis.kill()
        redis.wait()


@pytest.mark.slow
def test_a_scene_that_would_outlast_the_time_limit_at_the_measured_speed_is_refused(
    tmp_path: Path, tiny_onnx_model: Path, spacenet_scene: Path
) -> None:
    """40 000 x 40 000 pixels in 75 kB once held the only embedded worker for hours; once a worker has
    measured its speed on a job, such a scene is refused at upload."""
    env = {
        "ROADNET_MODEL_PATH": str(tiny_onnx_model),
        "ROADNET_ORT_INTRA_OP_THREADS": "1",
        "ROADNET_JOB_TIME_LIMIT_S": "300",
    }
    with deployment(tmp_path / "data", env) as embedded:
        embedded.serve()
        embedded.wait_healthy()
        job_id = embedded.submit(spacenet_scene)
        assert embedded.wait_status(job_id, {"successful", "failed"}, 180)["status"] == "successful"
        response = _post(embedded.url, sparse_geotiff(tmp_path / "sparse.tif", side=40_000))
        assert response.status_code == 422, response.text
        assert re.fullmatch(
            r"sparse\.tif would take about (\d+\.\d h|\d+ min) at the workers' measured speed; the limit is "
            r"5 min \(ROADNET_JOB_TIME_LIMIT_S\); upload a smaller part, or set a larger stride or fast mode",
            response.json()["detail"],
        ), response.text
        assert [p.name for p in (embedded.data_dir / "jobs").iterdir()] == [job_id]
        assert list((embedded.data_dir / "uploads").iterdir()) == []


@pytest.mark.slow
def test_embedded_a_job_whose_pool_process_died_runs_again_without_a_restart(
    tmp_path: Path, tiny_onnx_model: Path, spacenet_scene: Path
) -> None:
    env = {"ROADNET_MODEL_PATH": str(tiny_onnx_model), "ROADNET_ORT_INTRA_OP_THREADS": "1"}
    with deployment(tmp_path / "data", env) as embedded:
        embedded.serve()
        embedded.wait_healthy()
        job_id = embedded.submit(spacenet_scene, stride=16)
        wait_for(lambda: embedded.record(job_id)["progress"] > 0, 90, "the job to run")
        (beat,) = (embedded.data_dir / "workers").glob("*.json")
        worker_pid = json.loads(beat.read_text())["pid"]  # the worker's main process; its pool are children
        pool = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
        for pid in pool:
            os.kill(int(pid), 9)
        # Two attempts of a stride-16 job, on a busy machine.
        status = embedded.wait_status(job_id, {"successful", "failed"}, 300)
        assert status["status"] == "successful", status
        assert embedded.record(job_id)["attempts"] == 2
        assert json.loads(beat.read_text())["pid"] == worker_pid  # the same worker: no restart needed


def test_embedded_queue_messages_are_never_taken_half_written(tmp_path: Path) -> None:
    """The consumer polls the queue folder while large messages are written into it: each arrives whole
    (kombu's own filesystem transport handed some over half written, and they were lost)."""
    app = create_celery(Settings(data_dir=tmp_path / "data"))
    sent = 200
    with app.connection_for_write() as producer, app.connection_for_read() as consumer:
        outbox, inbox = producer.SimpleQueue("stress"), consumer.SimpleQueue("stress")

        def produce() -> None:
            for number in range(sent):
                outbox.put({"number": number, "padding": "x" * 500_000})

        writer = threading.Thread(target=produce)
        writer.start()
        received = []
        deadline = time.monotonic() + 120
        while len(received) < sent and time.monotonic() < deadline:
            try:
                message = inbox.get(timeout=0.01)
            except inbox.Empty:
                continue
            received.append(message.payload["number"])  # a half-written message fails to parse here
            message.ack()
        writer.join()
    assert sorted(received) == list(range(sent))
