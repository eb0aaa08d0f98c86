"""Map tiles: the scene kept as a COG, each road's confidence, and the tile and TileJSON endpoints.

The endpoints are tested in process (TestClient) on one real job: a SpaceNet scene reprojected to UTM,
uploaded with an API key and run through the worker's pipeline with the tiny ONNX model. The tiles are
checked against the results they are rendered from: pixels of the COGs, looked up by their lon/lat.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate
from rio_tiler.colormap import cmap

from roadnet.jobs import JobStore
from roadnet.scene import inspect_scene, open_scene, read_rgb
from roadnet.settings import Settings
from service.main import create_app
from service.tiles import MASK_COLOURMAP
from worker.inference.cog import scene_to_cog
from worker.runner.pipeline import run_job
from worker.vector.vectorize import vectorize_mask

KEY, OTHER_KEY = "tiles-key", "other-key"
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


def test_confidence_is_the_mean_probability_along_each_road(
    write_geotiff: Callable[..., Path], tmp_path: Path
) -> None:
    """Synthetic (known values): two roads over probabilities 0.9 and 0.6 get those confidences, in
    GeoJSON and GeoPackage alike; without the probability raster there is none."""
    mask = np.zeros((200, 300), np.uint8)
    probability = np.full((200, 300), 20, np.uint8)
    mask[48:53, 20:280], probability[48:53, 20:280] = 1, round(0.9 * 254)
    mask[148:153, 20:280], probability[148:153, 20:280] = 1, round(0.6 * 254)
    mask_path = write_geotiff(mask, "mask.tif", nodata=255)
    prob_path = write_geotiff(probability, "probability.tif", nodata=255)

    out = vectorize_mask(mask_path, tmp_path / "roads.geojson", probability=prob_path).out
    features = json.loads(out.read_text())["features"]
    # Stored as probability x 254 in 8 bits: 0.6 and 0.9 come back within 1/254.
    assert sorted(f["properties"]["confidence"] for f in features) == pytest.approx([0.6, 0.9], abs=0.004)
    assert all(set(f["properties"]) == {"start_node", "end_node", "length_m", "confidence"} for f in features)

    gpkg = vectorize_mask(mask_path, tmp_path / "roads.gpkg", probability=prob_path).out
    with closing(sqlite3.connect(gpkg)) as db:
        stored = sorted(value for (value,) in db.execute("SELECT confidence FROM roads"))
    assert stored == sorted(f["properties"]["confidence"] for f in features)

    plain = vectorize_mask(mask_path, tmp_path / "plain.geojson").out
    assert all("confidence" not in f["properties"] for f in json.loads(plain.read_text())["features"])


def test_scene_cog_is_the_scene_as_the_model_sees_it(spacenet_utm_scene: Path, tmp_path: Path) -> None:
    info = inspect_scene(spacenet_utm_scene, require_georeference=True)
    out = scene_to_cog(info, tmp_path / "scene.tif")
    with rasterio.open(out) as cog, open_scene(info) as src:
        assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (cog.crs, cog.transform, cog.shape) == (src.crs, src.transform, src.shape)
        assert cog.overviews(1), "no overviews"
        rgb, valid = read_rgb(src, info, 0, info.height)
        assert np.array_equal(cog.dataset_mask() > 0, valid)  # no data (the rotated corners) is masked
        error = np.abs(cog.read().astype(int) - rgb)[:, valid]
        assert error.mean() < 3  # JPEG at quality 90
    is_cog, errors, warnings = cog_validate(out, strict=True)  # rio-cogeo's independent check
    assert is_cog and not errors and not warnings, (errors, warnings)


@pytest.fixture(scope="module")
def job(
    tmp_path_factory: pytest.TempPathFactory, tiny_onnx_model: Path, spacenet_utm_scene: Path
) -> Iterator[tuple[TestClient, str, Path]]:
    """A successful job of the UTM scene, run by the worker's pipeline; the client, its id and results."""
    data_dir = tmp_path_factory.mktemp("tiles") / "data"
    app = create_app(Settings(data_dir=data_dir, model_path=tiny_onnx_model, api_keys=[KEY, OTHER_KEY]))
    with TestClient(app) as client, spacenet_utm_scene.open("rb") as f:
        answer = client.post(
            "/jobs",
            files={"file": (spacenet_utm_scene.name, f, "image/tiff")},
            data={"stride": "128"},
            headers={"X-API-Key": KEY},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["jobID"]
        # Tiles of a job without results answer as its results do: not ready yet.
        not_ready = client.get(f"/jobs/{job_id}/tiles/mask/tilejson.json", headers={"X-API-Key": KEY})
        assert not_ready.status_code == 404
        assert not_ready.json()["type"].endswith("/result-not-ready")
        assert not_ready.json()["detail"] == f"job {job_id} has no results: it is waiting for a worker"
        store = JobStore(data_dir)
        run_job(job_id, store=store, model_path=tiny_onnx_model, worker="test")
        assert store.get(job_id).status == "successful", store.get(job_id).message
        yield client, job_id, store.folder(job_id) / "results"


def _tile_pixels(client: TestClient, job_id: str, layer: str, lonlats: np.ndarray, z: int) -> np.ndarray:
    """The RGBA of the tile pixels (zoom ``z``) under each lon/lat, from the service's tiles."""
    tiles: dict[tuple[int, int], np.ndarray] = {}
    pixels = []
    for lon, lat in lonlats:
        tile = WEB_MERCATOR.tile(lon, lat, z)
        if (tile.x, tile.y) not in tiles:
            answer = client.get(
                f"/jobs/{job_id}/tiles/{layer}/{z}/{tile.x}/{tile.y}.png", headers={"X-API-Key": KEY}
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "image/png"
            tiles[tile.x, tile.y] = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))
        west, south, east, north = WEB_MERCATOR.xy_bounds(tile)
        x, y = WEB_MERCATOR.xy(lon, lat)
        col, row = int((x - west) / (east - west) * 256), int((north - y) / (north - south) * 256)
        pixels.append(tiles[tile.x, tile.y][row, col])
    return np.array(pixels)


def _inner_pixels(src: rasterio.io.DatasetReader, where: np.ndarray, count: int) -> np.ndarray:
    """Lon/lat of up to ``count`` pixel centres of ``src`` where ``where`` holds for the pixel and its
    8 neighbours (away from edges, where resampling mixes values)."""
    inner = where.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= np.roll(np.roll(where, dy, axis=0), dx, axis=1)
    rows, cols = np.nonzero(inner[1:-1, 1:-1])
    pick = np.random.default_rng(0).choice(len(rows), size=min(count, len(rows)), replace=False)
    xs, ys = src.xy(rows[pick] + 1, cols[pick] + 1)
    lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return np.column_stack([lon, lat])


@pytest.mark.slow
def test_tilejson_gives_the_layers_bounds_and_zooms(job: tuple[TestClient, str, Path]) -> None:
    client, job_id, _ = job
    status = client.get(f"/jobs/{job_id}", headers={"X-API-Key": KEY}).json()
    for layer in ("scene", "mask", "probability"):
        answer = client.get(f"/jobs/{job_id}/tiles/{layer}/tilejson.json", headers={"X-API-Key": KEY})
        assert answer.status_code == 200, answer.text
        document = answer.json()
        assert document["tilejson"] == "3.0.0"
        assert document["tiles"] == [f"http://testserver/jobs/{job_id}/tiles/{layer}/{{z}}/{{x}}/{{y}}.png"]
        assert document["bounds"] == pytest.approx(status["bbox"], abs=1e-6)
        # 0.25 m pixels: full resolution is zoom 19; the COG's one overview (half) is zoom 18 or 17.
        assert document["maxzoom"] == 19
        assert 16 <= document["minzoom"] < document["maxzoom"]


@pytest.mark.slow
def test_tiles_lie_on_their_results_pixels(job: tuple[TestClient, str, Path]) -> None:
    """Tiles at a zoom finer than the results, looked up by lon/lat: the mask's road pixels are drawn in
    the mask colour and its background and no data are transparent; the probability follows viridis;
    the scene's colours are the scene's."""
    client, job_id, results = job
    z = 20
    with rasterio.open(results / "mask.tif") as src:
        mask = src.read(1)
        road = _inner_pixels(src, mask == 1, 30)
        background = _inner_pixels(src, mask == 0, 30)
        nodata = _inner_pixels(src, mask == 255, 10)
    assert len(road) == 30 and len(background) == 30 and len(nodata) == 10
    assert (_tile_pixels(client, job_id, "mask", road, z) == MASK_COLOURMAP[1]).all()
    assert (_tile_pixels(client, job_id, "mask", background, z)[:, 3] == 0).all()
    assert (_tile_pixels(client, job_id, "mask", nodata, z)[:, 3] == 0).all()

    with rasterio.open(results / "probability.tif") as src:
        probability = src.read(1)
        for value in np.unique(probability[probability < 255])[::20]:
            places = _inner_pixels(src, probability == value, 3)
            if len(places):
                expected = cmap.get("viridis")[int(value)]
                assert (_tile_pixels(client, job_id, "probability", places, z) == expected).all(), value

    with rasterio.open(results / "scene.tif") as src:
        valid = src.dataset_mask() > 0
        places = _inner_pixels(src, valid, 50)
        xs, ys = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(*places.T)
        rows, cols = rasterio.transform.rowcol(src.transform, xs, ys)
        expected = src.read()[:, rows, cols].T
    tiled = _tile_pixels(client, job_id, "scene", places, z)
    assert (tiled[:, 3] == 255).all()
    assert np.abs(tiled[:, :3].astype(int) - expected).mean() < 12  # bilinear between pixels


@pytest.mark.slow
def test_tiles_are_cached_by_etag_and_isolated_by_key(job: tuple[TestClient, str, Path]) -> None:
    client, job_id, _ = job
    tile = WEB_MERCATOR.tile(
        *client.get(f"/jobs/{job_id}/tiles/scene/tilejson.json", headers={"X-API-Key": KEY}).json()["center"][
            :2
        ],
        19,
    )
    url = f"/jobs/{job_id}/tiles/scene/19/{tile.x}/{tile.y}.png"
    first = client.get(url, headers={"X-API-Key": KEY})
    assert first.status_code == 200
    assert first.headers["etag"] and first.headers["last-modified"]
    assert first.headers["cache-control"] == "private, max-age=3600"
    again = client.get(url, headers={"X-API-Key": KEY, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/jobs/{job_id}/tiles/scene/19/{tile.x + 1}/{tile.y}.png", headers={"X-API-Key": KEY})
    assert other.headers["etag"] != first.headers["etag"]

    assert client.get(url).status_code == 401
    refused = client.get(url, headers={"X-API-Key": OTHER_KEY})
    assert refused.status_code == 404 and refused.json() == {
        "type": "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job",
        "title": "no such job",
        "status": 404,
        "detail": f"no job {job_id!r}",
    }
    outside = client.get(f"/jobs/{job_id}/tiles/scene/19/0/0.png", headers={"X-API-Key": KEY})
    assert outside.status_code == 404 and "outside" in outside.json()["detail"]
    # Off the grid (PROJ looped on such a tile's bounds, holding the service): refused before any read.
    beyond = client.get(f"/jobs/{job_id}/tiles/scene/14/{2**70}/1.png", headers={"X-API-Key": KEY})
    assert beyond.status_code == 404
    assert (
        beyond.json()["detail"] == f"there is no tile 14/{2**70}/1: at zoom 14, x and y run from 0 to 16383"
    )
    assert client.get(f"/jobs/{job_id}/tiles/roads/19/0/0.png", headers={"X-API-Key": KEY}).status_code == 422
