"""The HTTP API in process (FastAPI's TestClient, no worker): uploads checked and refused with a reason,
status documents, listing, cancel, API keys and discovery; and the job store's rules.

Jobs created here are queued on the embedded broker of a temporary data directory and never run; the
tests that run jobs with real workers are test_service_embedded.py and test_service_redis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from pyproj import Transformer
from rasterio.transform import from_origin
from service_harness import ClientFactory

from roadnet.jobs import JobEnded, JobStatus, JobStore
from roadnet.outputs import OutputName
from roadnet.scene import inspect_scene
from service.scene_check import scene_bbox


def upload(
    client: TestClient, path: Path, headers: dict[str, str] | None = None, **fields: object
) -> httpx.Response:
    with path.open("rb") as f:
        return client.post(
            "/jobs",
            files={"file": (path.name, f, "image/tiff")},
            data={k: str(v) for k, v in fields.items()},
            headers=headers or {},
        )


def ogc_exception(name: str, detail: str) -> dict[str, object]:
    """The exception document of the OGC API - Processes 404 ``name`` (e.g. ``no-such-job``)."""
    return {
        "type": f"http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/{name}",
        "title": name.replace("-", " "),
        "status": 404,
        "detail": detail,
    }


def left_behind(data_dir: Path) -> list[Path]:
    """Every file of jobs and uploads in the data directory."""
    return [p for sub in ("jobs", "uploads") for p in (data_dir / sub).rglob("*") if p.is_file()]


def test_upload_accepted_answers_201_with_location_and_status(
    client: TestClient, spacenet_scene: Path, data_dir: Path
) -> None:
    response = upload(client, spacenet_scene, threshold=0.4, stride=128)
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"http://testserver/jobs/{job['jobID']}"
    assert job["status"] == "accepted"
    assert job["progress"] == 0
    assert job["filename"] == spacenet_scene.name
    assert job["scene"] == {"width": 650, "height": 650, "bands": 3, "dtype": "uint8", "crs": "EPSG:4326"}
    assert job["options"] == {"threshold": 0.4, "stride": 128}
    with rasterio.open(spacenet_scene) as src:  # EPSG:4326 already: the bbox is the scene's bounds
        assert job["bbox"] == pytest.approx(list(src.bounds), abs=1e-12)
    assert job["links"] == [
        {"href": response.headers["location"], "rel": "self", "type": "application/json",
         "title": "this status document"}
    ]  # fmt: skip
    assert len(job["jobID"]) == 22
    # The scene was moved into the job's folder and one message was queued for it.
    assert (data_dir / "jobs" / job["jobID"] / "input.tif").stat().st_size == spacenet_scene.stat().st_size
    assert not list((data_dir / "uploads").iterdir())
    assert len(list((data_dir / "broker" / "queue").iterdir())) == 1

    status = client.get(f"/jobs/{job['jobID']}")
    assert status.status_code == 200
    assert status.json() == job

    results = client.get(f"/jobs/{job['jobID']}/results/mask")
    assert results.status_code == 404
    assert results.json() == ogc_exception(
        "result-not-ready", f"job {job['jobID']} has no results: it is waiting for a worker"
    )


def test_bbox_of_a_projected_scene_is_in_lon_lat(
    client: TestClient, write_geotiff: Callable[..., Path], data_dir: Path
) -> None:
    # 300 x 300 pixels of 0.5 m from (500 000 E, 5 000 000 N) in UTM 33N, whose central meridian is 15 E.
    rgb = np.random.default_rng(0).integers(0, 255, (3, 300, 300), dtype=np.uint8)
    response = upload(client, write_geotiff(rgb, name="utm.tif", crs="EPSG:32633"))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["scene"]["crs"] == "EPSG:32633"
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lons, lats = to_lonlat.transform([500_000, 500_150, 500_000, 500_150], [5e6, 5e6, 4_999_850, 4_999_850])
    assert job["bbox"] == pytest.approx([min(lons), min(lats), max(lons), max(lats)], abs=1e-9)
    assert job["bbox"][0] == pytest.approx(15.0, abs=1e-12)
    # The record carries it too, and the status document says the same.
    record = JobStore(data_dir).get(job["jobID"])
    assert record.bbox == job["bbox"]
    assert client.get(f"/jobs/{job['jobID']}").json()["bbox"] == job["bbox"]


def test_bbox_of_a_scene_without_crs_is_none(write_geotiff: Callable[..., Path]) -> None:
    rgb = np.zeros((3, 300, 300), dtype=np.uint8)
    info = inspect_scene(write_geotiff(rgb, name="plain.tif", crs=None), require_georeference=False)
    assert scene_bbox(info) is None


def sparse_geotiff(path: Path, side: int = 100_000, block: int = 4096) -> Path:
    """A valid GeoTIFF header declaring ``side`` x ``side`` pixels in ``block``-pixel tiles with no pixel
    written (a few kB)."""
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5_000_000, 0.5, 0.5), "tiled": True,
               "blockxsize": block, "blockysize": block, "SPARSE_OK": True}  # fmt: skip
    with rasterio.open(path, "w", **profile):
        pass
    return path


@pytest.mark.parametrize(
    ("case", "status", "detail"),
    [
        ("not_a_tiff", 422, "notes.tif is not a raster that can be read"),
        ("truncated", 422, "truncated.tif is not a raster that can be read, or it is truncated or corrupt"),
        ("zero_bytes", 422, "empty.tif is not a raster that can be read, or it is truncated or corrupt: the "
                            "file is empty (0 bytes)"),
        ("no_georeference", 422, "plain.tif has no coordinate reference system or geotransform"),
        ("one_band", 422, "gray.tif is a single-band (grayscale or panchromatic) raster; road extraction "
                          "needs three bands"),
        ("too_small", 422, "small.tif is 100x100 pixels, smaller than the model's 256x256 window"),
        ("huge_declared_size", 422, "huge.tif is 100000x100000 = 10,000,000,000 pixels, more than the limit "
                                    "of 1,600,000,000 (ROADNET_MAX_SCENE_PIXELS)"),
    ],
)  # fmt: skip
def test_bad_scene_is_refused_with_its_reason_and_leaves_nothing(
    client: TestClient,
    data_dir: Path,
    tmp_path: Path,
    spacenet_scene: Path,
    write_geotiff: Callable[..., Path],
    case: str,
    status: int,
    detail: str,
) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (3, 300, 300), dtype=np.uint8)
    if case == "not_a_tiff":
        path = tmp_path / "notes.tif"
        path.write_text("these are my notes, not an image\n" * 50)
    elif case == "truncated":
        path = tmp_path / "truncated.tif"
        path.write_bytes(spacenet_scene.read_bytes()[: spacenet_scene.stat().st_size // 3])
    elif case == "zero_bytes":
        path = tmp_path / "empty.tif"
        path.write_bytes(b"")
    elif case == "no_georeference":
        path = write_geotiff(rgb, name="plain.tif", crs=None)
    elif case == "one_band":
        path = write_geotiff(rgb[0], name="gray.tif")
    elif case == "too_small":
        path = write_geotiff(rgb[:, :100, :100], name="small.tif")
    else:
        path = sparse_geotiff(tmp_path / "huge.tif")
    response = upload(client, path)
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(detail), response.json()
    assert left_behind(data_dir) == []
    assert not list((data_dir / "broker" / "queue").iterdir())


def test_upload_over_the_size_limit_is_413_and_leaves_nothing(
    make_client: ClientFactory, data_dir: Path, spacenet_scene: Path
) -> None:
    client = make_client(max_upload_bytes=500_000)  # the scene is 1.27 MB
    response = upload(client, spacenet_scene)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the upload is larger than the limit of 500,000 bytes (ROADNET_MAX_UPLOAD_BYTES); "
        "split the scene into smaller ones"
    )
    assert left_behind(data_dir) == []


def test_declared_content_length_over_the_limit_is_413_before_the_body_is_read(
    make_client: ClientFactory, data_dir: Path
) -> None:
    client = make_client(max_upload_bytes=1000)
    body = (
        b"--b\r\nContent-Disposition: form-data; name=file; filename=x.tif\r\n\r\n"
        + b"x" * 10
        + b"\r\n--b--\r\n"
    )
    response = client.post(
        "/jobs",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b", "content-length": str(10**12)},
    )
    assert response.status_code == 413
    assert response.json()["detail"].startswith("the upload is larger than the limit of 1,000 bytes")
    assert left_behind(data_dir) == []


@pytest.mark.parametrize(
    ("request_kwargs", "detail"),
    [
        ({"json": {"file": "scene.tif"}}, "the request body is application/json, not multipart/form-data; "
                                          "send the scene as multipart/form-data with the file in the field "
                                          "'file'"),
        ({"data": {"threshold": "0.5"}}, "the request body is application/x-www-form-urlencoded, not "
                                         "multipart/form-data"),
        ({"files": {"scene": ("a.tif", b"abc")}}, "the request has no file in the field 'file'"),
    ],
)  # fmt: skip
def test_request_without_a_file_is_refused(
    client: TestClient, data_dir: Path, request_kwargs: dict, detail: str
) -> None:
    response = client.post("/jobs", **request_kwargs)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    assert left_behind(data_dir) == []


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"threshold": "1.5"}, "invalid options: threshold: Input should be less than 1 (got '1.5')"),
        ({"stride": "fast"}, "invalid options: stride: Input should be a valid integer, unable to parse "
                             "string as an integer (got 'fast')"),
        ({"stride": "8"}, "invalid options: stride: Input should be greater than or equal to 16 (got '8')"),
        ({"colour": "red"}, "invalid options: colour: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_option_is_refused_with_its_reason(
    client: TestClient, data_dir: Path, spacenet_scene: Path, fields: dict[str, str], detail: str
) -> None:
    response = upload(client, spacenet_scene, **fields)
    assert response.status_code == 422
    assert response.json() == {"type": "about:blank", "title": HTTPStatus(422).phrase, "status": 422,
                               "detail": detail}  # fmt: skip
    assert left_behind(data_dir) == []


def test_empty_option_fields_take_the_defaults(client: TestClient, spacenet_scene: Path) -> None:
    response = upload(client, spacenet_scene, threshold="", stride="")
    assert response.status_code == 201
    assert response.json()["options"] == {}


def test_jobs_are_listed_newest_first_in_pages(client: TestClient, spacenet_scene: Path) -> None:
    ids = [upload(client, spacenet_scene).json()["jobID"] for _ in range(3)]
    page = client.get("/jobs", params={"limit": 2})
    assert page.status_code == 200
    body = page.json()
    assert [job["jobID"] for job in body["jobs"]] == ids[::-1][:2]
    assert body["numberMatched"] == 3
    assert [link["rel"] for link in body["links"]] == ["next"]
    second = client.get(body["links"][0]["href"]).json()
    assert [job["jobID"] for job in second["jobs"]] == [ids[0]]
    assert [link["rel"] for link in second["links"]] == ["prev"]


def test_delete_dismisses_the_job_and_deletes_its_files(
    client: TestClient, spacenet_scene: Path, data_dir: Path
) -> None:
    job_id = upload(client, spacenet_scene).json()["jobID"]
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "dismissed"
    assert response.json()["message"] == "dismissed by its owner; its files were deleted"
    assert sorted(p.name for p in (data_dir / "jobs" / job_id).iterdir()) == [".lock", "job.json"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
    results = client.get(f"/jobs/{job_id}/results/roads")
    assert results.status_code == 404
    assert results.json()["detail"] == f"job {job_id} has no results: it was dismissed and its files deleted"


@pytest.mark.parametrize("job_id", ["nope", "job.json", "A" * 22])
def test_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json() == ogc_exception("no-such-job", f"no job {job_id!r}")


def test_unknown_output_is_404(client: TestClient, spacenet_scene: Path) -> None:
    job_id = upload(client, spacenet_scene).json()["jobID"]
    response = client.get(f"/jobs/{job_id}/results/secrets")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"job {job_id} has no output 'secrets'; its outputs are mask, probability, roads, preview, "
        "mask_preview, scene"
    )


def test_api_keys_isolate_callers(make_client: ClientFactory, spacenet_scene: Path) -> None:
    client = make_client(api_keys=["key-a", "key-b"])
    a, b = {"X-API-Key": "key-a"}, {"Authorization": "Bearer key-b"}

    for path in ("/jobs", "/processes", "/processes/road-extraction"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == (
            "this service needs an API key: send it in the X-API-Key header (or as Authorization: Bearer)"
        )
    wrong = client.get("/jobs", headers={"X-API-Key": "key-c"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "the API key is not valid; ask the service's operator for one"
    refused = upload(client, spacenet_scene)
    assert refused.status_code == 401

    job_id = upload(client, spacenet_scene, headers=a).json()["jobID"]
    assert client.get(f"/jobs/{job_id}", headers=a).status_code == 200
    for method, path in [("GET", ""), ("GET", "/results"), ("GET", "/results/mask"), ("DELETE", "")]:
        response = client.request(method, f"/jobs/{job_id}{path}", headers=b)
        assert response.status_code == 404, (method, path)
        assert response.json()["detail"] == f"no job {job_id!r}"
    assert client.get("/jobs", headers=b).json()["jobs"] == []
    assert [j["jobID"] for j in client.get("/jobs", headers=a).json()["jobs"]] == [job_id]
    assert client.get(f"/jobs/{job_id}", headers=a).json()["status"] == "accepted"
    # The page and the health check need no key.
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/docs").status_code == 200


def test_processes_describe_the_inputs_and_outputs(client: TestClient) -> None:
    listing = client.get("/processes").json()
    assert [p["id"] for p in listing["processes"]] == ["road-extraction"]
    process = client.get("/processes/road-extraction").json()
    assert set(process["inputs"]) == {
        "image", "stride", "threshold", "fast", "min_spur_m", "min_fragment_m", "max_gap_m", "simplify_m"
    }  # fmt: skip
    assert process["inputs"]["image"]["minOccurs"] == 1
    assert process["inputs"]["threshold"]["schema"]["anyOf"][0]["exclusiveMaximum"] == 1
    assert set(process["outputs"]) == {"mask", "probability", "roads", "preview", "mask_preview", "scene"}
    assert process["outputs"]["mask_preview"]["schema"]["contentMediaType"] == "image/png"
    assert process["outputs"]["roads"]["schema"]["contentMediaType"] == "application/geo+json"
    missing = client.get("/processes/other")
    assert missing.status_code == 404
    assert missing.json() == ogc_exception(
        "no-such-process", "no process 'other'; this service runs 'road-extraction'"
    )


def test_health_without_a_worker_is_503_and_says_so(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] and checks["model"]["ok"]
    assert checks["worker"] == {"ok": False, "detail": "no live worker: start one with `roadnet worker`"}


def test_openapi_documents_the_upload(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"]
    assert {"file", "stride", "threshold"} <= set(body["properties"])
    assert {"/jobs/{job_id}", "/jobs/{job_id}/results/{output}", "/healthz", "/processes"} <= set(
        spec["paths"]
    )


# ---- the job store's rules ----


def _job(store: JobStore, tmp_path: Path) -> str:
    upload_path = store.new_upload_path()
    upload_path.write_bytes(b"scene")
    return store.create(upload_path, owner=None, filename="s.tif", options={}, scene={}).id


def test_final_states_are_final(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job_id = _job(store, tmp_path)
    assert store.start(job_id, "w1") is not None
    store.fail(job_id, "broken")
    assert store.start(job_id, "w2") is None  # a redelivered message does nothing
    store.fail(job_id, "again")
    assert store.get(job_id).message == "broken"
    store.dismiss(job_id)
    with pytest.raises(JobEnded):
        store.report(job_id, 50, "late progress from a worker")
    assert store.get(job_id).status is JobStatus.dismissed


def test_publish_moves_complete_files_and_removes_stale_attempts(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job_id = _job(store, tmp_path)
    store.start(job_id, "w1")
    stale = store.new_workdir(job_id)  # a killed attempt's leftovers
    (stale / "mask.tif").write_bytes(b"half")
    store.start(job_id, "w2")
    workdir = store.new_workdir(job_id)
    for output, filename in [("mask", "mask.tif"), ("probability", "probability.tif"),
                             ("roads", "roads.geojson"), ("preview", "preview.png"),
                             ("mask_preview", "mask_preview.png"), ("scene", "scene.tif")]:  # fmt: skip
        (workdir / filename).write_bytes(output.encode())
    record = store.publish(job_id, workdir, {"segments": 3})
    assert record.status is JobStatus.successful and record.progress == 100 and record.attempts == 2
    assert store.result_path(job_id, OutputName.roads).read_bytes() == b"roads"
    assert not stale.exists()


def test_expired_jobs_and_abandoned_uploads_are_removed(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    done, running = _job(store, tmp_path), _job(store, tmp_path)
    store.start(done, "w")
    store.fail(done, "x")
    store.start(running, "w")
    abandoned = store.new_upload_path()
    abandoned.write_bytes(b"partial")
    ttl = timedelta(hours=1)
    assert store.remove_expired(ttl) == []
    later = store.get(done).finished + timedelta(hours=2)  # type: ignore[operator]
    assert store.remove_expired(ttl, now=later) == [done]
    assert store.get(running).status is JobStatus.running  # never removed while unfinished
    assert not abandoned.exists()


def test_a_job_the_worker_cannot_run_ends_failed_with_a_reason(tmp_path: Path, spacenet_scene: Path) -> None:
    from worker.runner.pipeline import run_job

    store = JobStore(tmp_path)
    upload_path = store.new_upload_path()
    upload_path.write_bytes(spacenet_scene.read_bytes())
    job_id = store.create(upload_path, owner=None, filename="s.tif", options={}, scene={}).id
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    run_job(job_id, store=store, model_path=broken, worker="test")
    record = store.get(job_id)
    assert record.status is JobStatus.failed
    # The message names the file, never its server path.
    assert record.message.startswith("the worker cannot use its model: broken.onnx is not a loadable ONNX")
    assert record.message.endswith("; tell the service's operator")
    assert not list(store.folder(job_id).glob("work-*"))


def test_every_job_option_reaches_exactly_one_engine() -> None:
    from dataclasses import fields

    from roadnet.jobs import JobOptions
    from roadnet.options import InferenceOptions
    from worker.runner.pipeline import engine_options
    from worker.vector.options import VectorizeOptions

    inference, vectorize = (
        {f.name for f in fields(InferenceOptions)},
        {f.name for f in fields(VectorizeOptions)},
    )
    for name in JobOptions.model_fields:
        assert (name in inference) != (name in vectorize), name
    given = JobOptions(stride=128, threshold=0.4, fast=True, min_spur_m=1, max_gap_m=2, simplify_m=0.5)
    inference_options, vectorize_options = engine_options(given)
    assert inference_options == InferenceOptions(stride=128, threshold=0.4, fast=True)
    # Options left None keep the engine's defaults.
    assert vectorize_options == VectorizeOptions(min_spur_m=1, max_gap_m=2, simplify_m=0.5)
