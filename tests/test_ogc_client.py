"""Generic clients against the real service (``roadnet serve`` on loopback): OWSLib, a real OGC API -
Processes client, runs a job on a scene given by reference from a real HTTP server; schemathesis checks
that the API answers as its OpenAPI document says, on generated requests (a bounded number)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import rasterio.shutil
from owslib.ogcapi.processes import Processes
from range_server import RangeServer, serve_files
from service_harness import deployment, wait_for

pytestmark = pytest.mark.slow

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
#: Generated requests per operation: enough to reach each declared status, bounded for CI.
MAX_EXAMPLES = 25
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@pytest.fixture
def scenes(tmp_path: Path, spacenet_scene: Path) -> Iterator[RangeServer]:
    """The SpaceNet scene as a Cloud-Optimised GeoTIFF on a real HTTP server on loopback."""
    root = tmp_path / "served"
    root.mkdir()
    rasterio.shutil.copy(spacenet_scene, root / "scene.tif", driver="COG")
    with serve_files(root) as server:
        yield server


def test_owslib_runs_a_job_on_a_scene_given_by_reference(
    tmp_path: Path, tiny_onnx_model: Path, scenes: RangeServer
) -> None:
    env = {
        "ROADNET_MODEL_PATH": str(tiny_onnx_model),
        "ROADNET_ORT_INTRA_OP_THREADS": "1",
        "ROADNET_FETCH_ALLOWED_HOSTS": "127.0.0.1",  # the scene server, trusted by this operator
    }
    with deployment(tmp_path / "data", env) as service:
        service.serve()
        service.wait_healthy()
        api = Processes(service.url)  # reads the landing page

        rels = {link["rel"] for link in api.links}
        assert {"service-desc", "service-doc", f"{OGC_REL}conformance", f"{OGC_REL}processes"} <= rels
        assert api.api()["info"]["title"] == "roadnet"
        core = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"
        assert core in api.conformance()["conformsTo"]
        assert [process["id"] for process in api.processes()] == ["road-extraction"]
        process = api.process("road-extraction")
        assert process["jobControlOptions"] == ["async-execute"] and "image" in process["inputs"]

        status = api.execute(
            "road-extraction",
            inputs={"image": {"href": f"{scenes.url}/scene.tif"}, "threshold": 0.5},
            outputs={name: {"transmissionMode": "reference"} for name in ("roads", "mask")},
            response="document",
            async_=True,
        )
        assert status["status"] == "accepted"
        assert api.response_headers["Preference-Applied"] == "respond-async"
        job_id = status["jobID"]
        assert api.response_headers["Location"].endswith(f"/jobs/{job_id}")

        # OWSLib 0.35 has no call for a job's status or results: its request helper reads them.
        def finished() -> dict | None:
            status = api._request(path=f"jobs/{job_id}")
            return status if status["status"] in ("successful", "failed") else None

        status = wait_for(finished, 180, "the job to finish", interval=0.5)
        assert status["status"] == "successful", status
        results = api._request(path=f"jobs/{job_id}/results")
        assert set(results) == {"roads", "mask"}
        assert results["roads"]["type"] == "application/geo+json"
        # The worker read the COG in place, with range requests: no copy in the job's folder.
        assert not (service.data_dir / "jobs" / job_id / "input.tif").exists()
        assert sum(1 for _, path, range_, _ in scenes.requests if path == "/scene.tif" and range_) >= 4
        roads = httpx.get(results["roads"]["href"], timeout=30)
        assert roads.status_code == 200
        collection = roads.json()
        assert collection["type"] == "FeatureCollection"
        assert len(collection["features"]) == status["summary"]["segments"]

        # Outside the allow-list (and private): refused at submit, with the reason.
        with pytest.raises(RuntimeError, match=r"169\.254\.169\.254 is not one this service fetches from"):
            api.execute("road-extraction", inputs={"image": {"href": "http://169.254.169.254/x.tif"}})


# ---- schemathesis: every operation, generated requests, against the real service ----

#: What every answer must satisfy: no server error; status, media type, headers and body as declared.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")  # fmt: skip


def test_api_answers_as_its_openapi_document_says(
    tmp_path: Path, tiny_onnx_model: Path, spacenet_scene: Path
) -> None:
    """schemathesis's own command (its pytest plugin does not run on pytest 9) on every operation, a
    bounded number of generated requests each, with a fixed seed; the job ids it uses are two real jobs,
    one finished (for its status and results) and one to dismiss. A short fetch deadline: generated host
    names resolve nowhere on a machine without internet, and each would wait the whole deadline."""
    env = {"ROADNET_MODEL_PATH": str(tiny_onnx_model), "ROADNET_ORT_INTRA_OP_THREADS": "1",
           "ROADNET_FETCH_TIMEOUT_S": "2"}  # fmt: skip
    with deployment(tmp_path / "data", env) as service:
        service.serve()
        service.wait_healthy()
        finished, to_dismiss = service.submit(spacenet_scene), service.submit(spacenet_scene)
        for job_id in (finished, to_dismiss):
            service.wait_status(job_id, {"successful"}, timeout=180)
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'[parameters]\njob_id = "{finished}"\n\n'
            f'[[operations]]\ninclude-method = "DELETE"\nparameters = {{ job_id = "{to_dismiss}" }}\n'
        )
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "--no-color", "run", f"{service.url}/openapi.json",
             "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1",
             "--phases", "examples,coverage,fuzzing", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path,  # its cache lands in cwd
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
