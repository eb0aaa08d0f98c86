"""Shared fixtures: the real data in ../shared/data, a real Redis, small GeoTIFFs with a CRS, and the
service in process (FastAPI's TestClient) on a temporary data directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import from_origin
from service_harness import ClientFactory

from roadnet.settings import Settings
from service.main import create_app

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROADNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real labelled road imagery; fails (never skips) when it is missing."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        pytest.fail(
            f"real data folder {SHARED_DATA} is missing (expected ../shared/data beside the repository, "
            "or set ROADNET_SHARED_DATA)",
            pytrace=False,
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def spacenet_scene(shared_data: Path) -> Path:
    """A 3-band uint8 SpaceNet GeoTIFF (Paris, EPSG:4326, 650x650)."""
    return shared_data / "spacenet" / "pairs" / "RGB-PanSharpen_img1447.tif"


@pytest.fixture(scope="session")
def spacenet_utm_scene(spacenet_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`spacenet_scene` reprojected to its UTM zone (a projected scene, the usual case; 513x773
    pixels of 0.25 m), black (no data, declared) where the rotated grid has no pixels."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    out = tmp_path_factory.mktemp("utm") / "RGB-PanSharpen_img1447-utm.tif"
    with rasterio.open(spacenet_scene) as src:
        lon = (src.bounds.left + src.bounds.right) / 2
        crs = f"EPSG:{32601 + int((lon + 180) // 6)}"
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height}
        with rasterio.open(out, "w", **profile | {"nodata": 0}) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=Resampling.bilinear)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """A private ``redis-server`` on loopback ``port`` without persistence, once it accepts connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server", pytrace=False)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"private redis-server did not start on port {port}", pytrace=False)
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``REDIS_URL`` when set, else a private ``redis-server`` on a free loopback port for this session."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    port = _free_port()
    proc = start_redis_server(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


GeoTiffWriter = Callable[..., Path]


@pytest.fixture
def write_geotiff(tmp_path: Path) -> GeoTiffWriter:
    """A factory writing ``array`` (bands, rows, cols) as a GeoTIFF in a metric CRS (UTM 33N by default)."""

    def write(
        array: np.ndarray,
        name: str = "scene.tif",
        crs: str | None = "EPSG:32633",
        transform: rasterio.Affine | None = None,
        nodata: float | None = None,
        **profile: object,
    ) -> Path:
        if array.ndim == 2:
            array = array[np.newaxis]
        path = tmp_path / name
        meta = {
            "driver": "GTiff",
            "count": array.shape[0],
            "height": array.shape[1],
            "width": array.shape[2],
            "dtype": array.dtype.name,
            "crs": crs,
            "transform": transform if transform is not None else from_origin(500_000, 5_000_000, 0.5, 0.5),
            "nodata": nodata,
            **profile,
        }
        if crs is None:
            meta.pop("crs")
            meta.pop("transform")
        with rasterio.open(path, "w", **meta) as dst:
            dst.write(array)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny RISNet exported with ``training.export.export_onnx``, for tests where quality
    does not matter (shapes, metadata, plumbing)."""
    import torch

    from models import create_model
    from roadnet.model_metadata import ModelMetadata
    from training.export import export_onnx

    torch.manual_seed(0)
    model = create_model("risnet", width=0.0625).eval()
    metadata = ModelMetadata(
        arch="risnet",
        mean=[100.0, 100.0, 100.0],
        std=[50.0, 50.0, 50.0],
        model_kwargs={"width": 0.0625},
        provenance={"note": "untrained, for tests"},
    )
    return export_onnx(model, metadata, tmp_path_factory.mktemp("tiny_model") / "tiny-risnet.onnx")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_client(data_dir: Path, tiny_onnx_model: Path) -> Iterator[ClientFactory]:
    """A factory of in-process clients of the service with the given settings (the tiny model, the
    temporary data directory); jobs are queued on its embedded broker and never run."""
    clients: list[TestClient] = []

    def make(**settings: object) -> TestClient:
        app = create_app(Settings(data_dir=data_dir, model_path=tiny_onnx_model, **settings))  # type: ignore[arg-type]
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
