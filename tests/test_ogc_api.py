"""OGC API - Processes in process (FastAPI's TestClient, no worker): the landing page and conformance,
execute requests with the scene by reference (from a real HTTP server on loopback) or inline, the guard
on the addresses a scene is fetched from, results per the standard, exception documents, and an OpenAPI
document that says what the service does. The real client (OWSLib) and schemathesis drive the real
service in test_ogc_client.py."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
import rasterio.shutil
from fastapi.testclient import TestClient
from range_server import RangeServer, serve_files
from service_harness import ClientFactory
from test_service_api import left_behind

from roadnet.jobs import JobStatus, JobStore
from roadnet.outputs import OUTPUTS
from worker.runner.pipeline import run_job

EXECUTE = "/processes/road-extraction/execution"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def scenes(tmp_path: Path, spacenet_scene: Path) -> Iterator[RangeServer]:
    """The SpaceNet scene, as it is and as a Cloud-Optimised GeoTIFF, and a file that is no raster, on a
    real HTTP server on loopback."""
    root = tmp_path / "served"
    root.mkdir()
    shutil.copy(spacenet_scene, root / "scene.tif")
    rasterio.shutil.copy(spacenet_scene, root / "cog.tif", driver="COG")
    (root / "notes.tif").write_text("these are my notes, not an image\n" * 50)
    with serve_files(root) as server:
        yield server


@pytest.fixture
def trusting(make_client: ClientFactory) -> TestClient:
    """A service that fetches scenes from loopback (as from a trusted host of the operator's)."""
    return make_client(fetch_allowed_hosts=["127.0.0.1/32"])


def execute(client: TestClient, inputs: dict, headers: dict[str, str] | None = None, **body: object
            ) -> httpx.Response:  # fmt: skip
    return client.post(EXECUTE, json={"inputs": inputs, **body}, headers=headers or {})


def finish(data_dir: Path, job_id: str) -> None:
    """End a queued job successfully, as a worker would, with a small file for each output."""
    store = JobStore(data_dir)
    store.start(job_id, "test")
    workdir = store.new_workdir(job_id)
    for name, output in OUTPUTS.items():
        (workdir / output.filename).write_text(f"the {name} output")
    store.publish(job_id, workdir, {})


# ---- landing page and conformance ----


@pytest.mark.parametrize(
    ("params", "accept", "json_expected"),
    [
        ({}, "application/json", True),
        ({"f": "json"}, BROWSER_ACCEPT, True),
        ({}, "*/*", True),  # curl, OWSLib: API clients
        ({}, BROWSER_ACCEPT, False),
        ({"f": "html"}, "application/json", False),
    ],
)
def test_landing_page_negotiates_json_or_the_web_page(
    client: TestClient, params: dict, accept: str, json_expected: bool
) -> None:
    response = client.get("/", params=params, headers={"Accept": accept})
    assert response.status_code == 200
    if not json_expected:
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text.lower()
        return
    assert response.headers["content-type"] == "application/json"
    links = {link["rel"]: link for link in response.json()["links"]}
    assert set(links) == {"self", "alternate", "service-desc", "service-doc", f"{OGC_REL}conformance",
                          f"{OGC_REL}processes", f"{OGC_REL}job-list"}  # fmt: skip
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    for link in links.values():
        assert client.get(link["href"]).status_code == 200, link


def test_conformance_declares_what_is_implemented(client: TestClient) -> None:
    response = client.get("/conformance")
    assert response.status_code == 200
    assert response.json()["conformsTo"] == [
        f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
        for name in ("core", "json", "oas30", "ogc-process-description", "job-list", "dismiss")
    ]


# ---- execute ----


def test_execute_by_reference_starts_the_same_job_as_an_upload(
    trusting: TestClient, scenes: RangeServer, spacenet_scene: Path, data_dir: Path
) -> None:
    response = execute(
        trusting,
        {"image": {"href": f"{scenes.url}/scene.tif"}, "threshold": 0.4, "stride": 128},
        headers={"Prefer": "respond-async"},
        outputs={"roads": {"transmissionMode": "reference"}},
        response="document",
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"http://testserver/jobs/{job['jobID']}"
    assert response.headers["preference-applied"] == "respond-async"
    assert job["status"] == "accepted" and job["filename"] == f"{scenes.url}/scene.tif"
    assert job["options"] == {"threshold": 0.4, "stride": 128}
    with spacenet_scene.open("rb") as f:
        uploaded = trusting.post(
            "/jobs", files={"file": ("scene.tif", f)}, data={"threshold": "0.4", "stride": "128"}
        ).json()
    for field in ("status", "scene", "bbox", "options", "progress", "message"):
        assert job[field] == uploaded[field], field
    folder = data_dir / "jobs" / job["jobID"]
    assert (folder / "input.tif").read_bytes() == spacenet_scene.read_bytes()
    record = json.loads((folder / "job.json").read_text())
    assert (record["outputs"], record["response"]) == (["roads"], "document")
    assert len(list((data_dir / "broker" / "queue").iterdir())) == 2  # both queued
    assert not list((data_dir / "uploads").iterdir())


def test_a_cog_by_reference_is_read_in_place(
    trusting: TestClient, scenes: RangeServer, data_dir: Path, tiny_onnx_model: Path
) -> None:
    """Checked through GDAL's /vsicurl/ with range requests and never copied; when it is gone by the
    time the worker reads it, the job fails naming the URL (without credentials) and why."""
    href = scenes.url.replace("http://", "http://reader:secret@") + "/cog.tif?token=s3cr3t"
    response = execute(trusting, {"image": {"href": href}})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["filename"] == f"{scenes.url}/cog.tif"
    assert job["scene"] == {"width": 650, "height": 650, "bands": 3, "dtype": "uint8", "crs": "EPSG:4326"}
    store = JobStore(data_dir)
    assert store.get(job["jobID"]).source_url == href
    assert sorted(path.name for path in left_behind(data_dir)) == [".lock", "job.json"]  # no input.tif
    assert any(range_ for _, path, range_, _ in scenes.requests if path == "/cog.tif")

    (scenes.root / "cog.tif").unlink()
    # A worker is another process: nothing of the check's reads may be in GDAL's cache.
    with rasterio.Env(CPL_VSIL_CURL_NON_CACHED="/vsicurl"):
        run_job(job["jobID"], store=store, model_path=tiny_onnx_model, worker="test")
    record = store.get(job["jobID"])
    assert record.status is JobStatus.failed
    assert record.message.startswith(
        f"{scenes.url}/cog.tif is not a raster that can be read, or it is truncated or corrupt: HTTP "
        "response code: 404"
    ), record.message
    assert "secret" not in record.message and "s3cr3t" not in record.message


def test_execute_without_prefer_runs_asynchronously_too(trusting: TestClient, scenes: RangeServer) -> None:
    response = execute(trusting, {"image": {"href": f"{scenes.url}/scene.tif"}})
    assert response.status_code == 201, response.text
    assert "preference-applied" not in response.headers


def test_execute_with_the_scene_inline(client: TestClient, spacenet_scene: Path, data_dir: Path) -> None:
    value = base64.b64encode(spacenet_scene.read_bytes()).decode()
    response = execute(client, {"image": {"value": value, "mediaType": "image/tiff", "encoding": "base64"}})
    assert response.status_code == 201, response.text
    assert response.json()["scene"]["width"] == 650
    job_id = response.json()["jobID"]
    assert (data_dir / "jobs" / job_id / "input.tif").read_bytes() == spacenet_scene.read_bytes()


@pytest.mark.parametrize(
    ("inputs", "extra", "detail"),
    [
        ({"image": "notes.tif"}, {}, 'the input \'image\' must be {"href": "https://.../scene.tif"} or'),
        ({"threshold": 0.5}, {}, "the input 'image' (the scene) is missing"),
        ({"image": {"href": "/notes.tif"}, "threshold": 1.5}, {},
         "invalid options: threshold: Input should be less than 1 (got 1.5)"),
        ({"image": {"href": "/notes.tif"}, "colour": "red"}, {},
         "invalid options: colour: Extra inputs are not permitted"),
        ({"image": {"href": "/notes.tif"}}, {}, "http://127.0.0.1:PORT/notes.tif is not a raster that can be "
                                                "read"),
        ({"image": {"href": "/missing.tif"}}, {}, "http://127.0.0.1:PORT/missing.tif answered HTTP 404"),
        ({"image": {"value": "not base64!"}}, {}, "the input 'image' is not valid base64"),
        ({"image": {"href": "/scene.tif"}}, {"outputs": {"secrets": {}}},
         "no output 'secrets'; this process gives mask, probability, roads, preview, mask_preview, "
         "scene"),
        ({"image": {"href": "/scene.tif"}}, {"outputs": {"roads": {"transmissionMode": "value"}}},
         "output 'roads': only transmissionMode 'reference' is offered"),
        ({"image": {"href": "/scene.tif"}}, {"response": "inline"},
         "invalid execute request: response: Input should be 'raw' or 'document'"),
    ],
)  # fmt: skip
def test_execute_refuses_what_an_upload_refuses_with_the_reason(
    trusting: TestClient, scenes: RangeServer, data_dir: Path, inputs: dict, extra: dict, detail: str
) -> None:
    image = inputs.get("image")
    if isinstance(image, dict) and "href" in image:
        image["href"] = scenes.url + image["href"]
    response = execute(trusting, inputs, **extra)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith(detail.replace("http://127.0.0.1:PORT", scenes.url)), body
    assert (body["type"], body["status"]) == ("about:blank", 422)
    assert left_behind(data_dir) == []


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post(EXECUTE, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid execute request: body: Invalid JSON")


def test_unknown_process_is_404(client: TestClient) -> None:
    response = client.post("/processes/other/execution", json={"inputs": {}})
    assert response.status_code == 404
    assert response.json()["type"].endswith("/no-such-process")


# ---- the address guard ----


@pytest.mark.parametrize(
    ("href", "detail"),
    [
        ("{url}/scene.tif", "{url}/scene.tif: the host 127.0.0.1 has a loopback, private or link-local "
                            "address (127.0.0.1), which this service does not fetch from; its operator "
                            "can allow it in ROADNET_FETCH_ALLOWED_HOSTS"),
        ("http://user:secret@127.0.0.1:{port}/scene.tif?signature=s3cr3t",
         "{url}/scene.tif: the host 127.0.0.1 has a loopback"),
        ("http://localhost:{port}/scene.tif", "http://localhost:{port}/scene.tif: the host localhost has a "
                                              "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/scene.tif", "http://[::ffff:127.0.0.1]:{port}/scene.tif: the "
                                                       "host ::ffff:127.0.0.1 has a loopback"),
        ("http://10.1.2.3/scene.tif", "http://10.1.2.3/scene.tif: the host 10.1.2.3 has a loopback, private"),
        ("http://169.254.169.254/latest/meta-data", "http://169.254.169.254/latest/meta-data: the host "
                                                    "169.254.169.254 has a loopback, private"),
        ("file:///etc/passwd", "file:///etc/passwd: only http and https URLs can be fetched"),
        ("ftp://ftp.example.com/scene.tif", "ftp://ftp.example.com/scene.tif: only http and https URLs"),
    ],
)  # fmt: skip
def test_href_to_a_private_address_is_refused_without_the_allow_list(
    client: TestClient, scenes: RangeServer, data_dir: Path, href: str, detail: str
) -> None:
    port = scenes.url.rsplit(":", 1)[1]
    response = execute(client, {"image": {"href": href.format(url=scenes.url, port=port)}})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail.format(url=scenes.url, port=port))
    assert "secret" not in response.text and "s3cr3t" not in response.text
    assert scenes.requests == []  # refused before any connection
    assert left_behind(data_dir) == []


def test_every_redirect_is_checked_and_counted(trusting: TestClient, scenes: RangeServer) -> None:
    scenes.redirects["/alias.tif"] = f"{scenes.url}/scene.tif"
    scenes.redirects["/escape.tif"] = "http://169.254.169.254/latest/meta-data"
    scenes.redirects["/loop.tif"] = f"{scenes.url}/loop.tif"
    assert execute(trusting, {"image": {"href": f"{scenes.url}/alias.tif"}}).status_code == 201

    escaped = execute(trusting, {"image": {"href": f"{scenes.url}/escape.tif"}})
    assert escaped.status_code == 422
    assert escaped.json()["detail"] == (
        "http://169.254.169.254/latest/meta-data: the host 169.254.169.254 is not one this service "
        "fetches from (ROADNET_FETCH_ALLOWED_HOSTS)"
    )
    looped = execute(trusting, {"image": {"href": f"{scenes.url}/loop.tif"}})
    assert looped.status_code == 422
    assert looped.json()["detail"] == (
        f"{scenes.url}/loop.tif redirects more than 5 times (ROADNET_FETCH_MAX_REDIRECTS)"
    )
    assert [path for _, path, _, _ in scenes.requests].count("/loop.tif") == 6


def test_credentials_go_to_the_host_and_nowhere_else(
    trusting: TestClient, scenes: RangeServer, data_dir: Path
) -> None:
    href = scenes.url.replace("http://", "http://reader:secret@") + "/scene.tif?token=s3cr3t"
    response = execute(trusting, {"image": {"href": href}})
    assert response.status_code == 201, response.text
    (_, path, _, authorization), *_ = scenes.requests
    assert path == "/scene.tif" and authorization == "Basic " + base64.b64encode(b"reader:secret").decode()
    record = (data_dir / "jobs" / response.json()["jobID"] / "job.json").read_text()
    for text in (response.text, record):
        assert "secret" not in text and "s3cr3t" not in text


def test_a_scene_over_the_size_limit_is_413(make_client: ClientFactory, scenes: RangeServer, data_dir: Path
                                            ) -> None:  # fmt: skip
    client = make_client(fetch_allowed_hosts=["127.0.0.1"], max_upload_bytes=500_000)  # the scene: 1.27 MB
    response = execute(client, {"image": {"href": f"{scenes.url}/scene.tif"}})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"{scenes.url}/scene.tif is larger than the limit of 500,000 bytes (ROADNET_MAX_UPLOAD_BYTES); "
        "split the scene into smaller ones"
    )
    assert left_behind(data_dir) == []


def test_an_unreachable_host_is_a_clear_422(make_client: ClientFactory) -> None:
    client = make_client(fetch_allowed_hosts=["127.0.0.1"])
    with serve_files(Path(".")) as stopped:
        url = stopped.url
    response = execute(client, {"image": {"href": f"{url}/scene.tif"}})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{url}/scene.tif could not be fetched: ")


# ---- results ----


def test_results_follow_the_execute_request(
    trusting: TestClient, scenes: RangeServer, data_dir: Path
) -> None:
    href = {"image": {"href": f"{scenes.url}/scene.tif"}}
    roads = {"roads": {"transmissionMode": "reference"}}
    document = execute(trusting, href, outputs=roads, response="document").json()["jobID"]
    raw_one = execute(trusting, href, outputs=roads, response="raw").json()["jobID"]
    raw_all = execute(trusting, href).json()["jobID"]

    running = trusting.get(f"/jobs/{document}/results")
    assert running.status_code == 404
    assert (
        running.json()["type"]
        == "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready"
    )
    for job_id in (document, raw_one, raw_all):
        finish(data_dir, job_id)

    results = trusting.get(f"/jobs/{document}/results")
    assert results.status_code == 200
    assert results.json() == {"roads": {
        "href": f"http://testserver/jobs/{document}/results/roads", "type": "application/geo+json",
        "title": "Road centrelines (RFC 7946 GeoJSON, WGS 84)"}}  # fmt: skip
    one = trusting.get(f"/jobs/{raw_one}/results")
    assert one.status_code == 200 and one.text == "the roads output"
    assert one.headers["content-type"] == "application/geo+json"
    every = trusting.get(f"/jobs/{raw_all}/results")
    assert every.status_code == 204
    assert every.headers["link"].split(", ")[2] == (
        f'<http://testserver/jobs/{raw_all}/results/roads>; rel="roads"; type="application/geo+json"'
    )
    # An upload's job answers the document of every output, as before.
    with (scenes.root / "scene.tif").open("rb") as f:
        uploaded = trusting.post("/jobs", files={"file": ("scene.tif", f)}).json()["jobID"]
    finish(data_dir, uploaded)
    assert set(trusting.get(f"/jobs/{uploaded}/results").json()) == set(OUTPUTS)


def test_results_of_a_failed_job_are_its_failure(trusting: TestClient, scenes: RangeServer, data_dir: Path
                                                 ) -> None:  # fmt: skip
    job_id = execute(trusting, {"image": {"href": f"{scenes.url}/scene.tif"}}).json()["jobID"]
    JobStore(data_dir).fail(job_id, "the scene is all clouds")
    response = trusting.get(f"/jobs/{job_id}/results")
    assert response.status_code == 500
    assert response.json() == {
        "type": "about:blank",
        "title": HTTPStatus(500).phrase,
        "status": 500,
        "detail": f"job {job_id} has no results: it failed: the scene is all clouds",
    }


# ---- errors and the OpenAPI document ----


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("GET", "/nowhere", 404, "Not Found"),
        ("DELETE", "/processes", 405, "Method Not Allowed"),
        ("GET", "/jobs?limit=0", 422, "invalid request: query.limit: Input should be greater than or "
                                      "equal to 1"),
        ("GET", "/?f=xml", 422, "invalid request: query.f: Input should be 'json' or 'html'"),
    ],
)  # fmt: skip
def test_every_error_is_an_exception_document(
    client: TestClient, method: str, path: str, status: int, detail: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json() == {
        "type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail
    }  # fmt: skip


def test_openapi_is_3_0_with_security_only_with_api_keys(make_client: ClientFactory) -> None:
    open_spec = make_client().get("/openapi.json").json()
    assert open_spec["openapi"] == "3.0.3"  # as the oas30 conformance class and the landing page say
    operations = [op for path in open_spec["paths"].values() for op in path.values()]
    assert "securitySchemes" not in open_spec.get("components", {})
    assert not any("security" in op or "401" in op["responses"] for op in operations)
    assert len({op["operationId"] for op in operations}) == len(operations)

    keyed = make_client(api_keys=["k"])
    assert execute(keyed, {"image": {"href": "https://example.com/scene.tif"}}).status_code == 401
    keyed_spec = keyed.get("/openapi.json").json()
    execute_op = keyed_spec["paths"]["/processes/{process_id}/execution"]["post"]
    assert "401" in execute_op["responses"] and execute_op["security"]
    assert set(keyed_spec["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}


def test_openapi_3_0_forms(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["JobPublic"]["properties"]["started"] == {
        "title": "Started", "type": "string", "format": "date-time", "nullable": True
    }  # fmt: skip
    assert "HTTPValidationError" not in schemas  # a 422 is an exception document like every error
