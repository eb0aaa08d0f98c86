"""The road network from a mask: real SpaceNet masks and labels, block borders, CRSs, the CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import shapely
from click.testing import CliRunner
from osgeo_utils.samples import validate_gpkg
from pyproj import Geod, Transformer
from rasterio.transform import from_origin
from skan import Skeleton, summarize
from skimage.morphology import skeletonize

from roadnet.cli import cli
from roadnet.errors import InputError, MissingDependencyError
from worker.vector.apls import apls_of_lines, read_lines
from worker.vector.graph_trace import trace_skeleton
from worker.vector.vectorize import VectorizeOptions, vectorize_mask

GEOD = Geod(ellps="WGS84")


def geodesic_length(lines: list[shapely.LineString]) -> float:
    return sum(GEOD.geometry_length(line) for line in lines)


def clipped_to(lines: list[shapely.LineString], bounds: tuple[float, ...]) -> list[shapely.LineString]:
    """The parts of ``lines`` inside the scene (labels run a few pixels past the tile edge)."""
    box = shapely.box(*bounds)
    parts = []
    for line in lines:
        clipped = line.intersection(box)
        parts.extend(getattr(clipped, "geoms", [clipped]))
    return [p for p in parts if isinstance(p, shapely.LineString) and not p.is_empty]


def rasterise_lines(lines: list[shapely.LineString], like: Path, out: Path, half_width_m: float) -> Path:
    """A predict-style mask (1 road, 0 background, 255 declared no data) of ``lines`` buffered in metres,
    on the grid of the raster ``like`` (EPSG:4326)."""
    lon = shapely.get_coordinates(lines)[:, 0].mean()
    utm = f"EPSG:{32600 + int((lon + 180) // 6) + 1}"
    to_utm = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform
    to_lonlat = Transformer.from_crs(utm, "EPSG:4326", always_xy=True).transform
    in_utm = shapely.transform(lines, to_utm, interleaved=False)
    shapes = shapely.transform(shapely.buffer(in_utm, half_width_m), to_lonlat, interleaved=False)
    with rasterio.open(like) as src:
        profile = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
    mask = rasterio.features.rasterize(
        shapes, out_shape=(profile["height"], profile["width"]), transform=profile["transform"], dtype="uint8"
    )
    with rasterio.open(out, "w", driver="GTiff", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(mask, 1)
    return out


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_rfc7946(collection: dict) -> None:
    assert collection["type"] == "FeatureCollection"
    assert "crs" not in collection
    for feature in collection["features"]:
        assert feature["geometry"]["type"] == "LineString"
        coords = feature["geometry"]["coordinates"]
        assert len(coords) >= 2
        for x, y in coords:
            assert -180 <= x <= 180 and -90 <= y <= 90
            assert round(x, 7) == x and round(y, 7) == y
        props = feature["properties"]
        assert props["length_m"] > 0
        assert isinstance(props["start_node"], int) and isinstance(props["end_node"], int)


@pytest.fixture(scope="module")
def vegas(shared_data: Path) -> dict:
    pairs = shared_data / "spacenet" / "pairs"
    scene = pairs / "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    with rasterio.open(scene) as src:
        bounds = tuple(src.bounds)
    truth = clipped_to(read_lines(pairs / "AOI_2_Vegas_img0.geojson"), bounds)
    return {"scene": scene, "bounds": bounds, "truth": truth}


@pytest.fixture(scope="module")
def vegas_mask(vegas: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rasterise_lines(vegas["truth"], vegas["scene"], tmp_path_factory.mktemp("vegas") / "mask.tif", 3.0)


def test_solaris_mask_vectorises_back_to_its_lines(shared_data: Path, tmp_path: Path) -> None:
    pairs = shared_data / "spacenet" / "pairs"
    mask = pairs / "sample_road_raster_mask.tif"  # {0, 255}, no nodata declared: 255 is road
    with rasterio.open(mask) as src:
        bounds = tuple(src.bounds)
    truth = clipped_to(read_lines(pairs / "sample_roads_for_masking.geojson"), bounds)

    summary = vectorize_mask(mask, tmp_path / "roads.geojson")

    collection = load(summary.out)
    assert_rfc7946(collection)
    roads = read_lines(summary.out)
    assert len(roads) == summary.segments > 0
    assert shapely.box(*bounds).buffer(1e-6).contains(shapely.MultiLineString(roads))
    assert summary.total_length_m == pytest.approx(geodesic_length(truth), rel=0.05)
    assert apls_of_lines(roads, truth).apls > 0.95


def test_rasterised_truth_round_trips_with_its_nodes(vegas: dict, vegas_mask: Path, tmp_path: Path) -> None:
    summary = vectorize_mask(vegas_mask, tmp_path / "roads.geojson")

    collection = load(summary.out)
    assert_rfc7946(collection)
    roads = read_lines(summary.out)
    assert summary.total_length_m == pytest.approx(geodesic_length(vegas["truth"]), rel=0.05)
    assert apls_of_lines(roads, vegas["truth"]).apls > 0.9
    # segments meet at shared node ids where their coordinates meet
    ends: dict[int, set[tuple[float, float]]] = {}
    for feature in collection["features"]:
        coords = feature["geometry"]["coordinates"]
        ends.setdefault(feature["properties"]["start_node"], set()).add(tuple(coords[0]))
        ends.setdefault(feature["properties"]["end_node"], set()).add(tuple(coords[-1]))
    assert all(len(points) == 1 for points in ends.values())
    assert any(len([f for f in collection["features"] if n in f["properties"].values()]) >= 3 for n in ends)


def test_summary_lines_are_the_written_roads_in_the_mask_grid(vegas_mask: Path, tmp_path: Path) -> None:
    summary = vectorize_mask(vegas_mask, tmp_path / "roads.geojson")

    written = load(summary.out)["features"]
    assert len(summary.lines) == len(written) == summary.segments > 0
    with rasterio.open(vegas_mask) as src:
        to_mask = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        to_pixel = ~src.transform
    for line, feature in zip(summary.lines, written, strict=True):
        x, y = to_pixel @ to_mask.transform(*np.array(feature["geometry"]["coordinates"]).T)
        # The file's coordinates are rounded to 1e-7 degrees, about 1 cm: far under a pixel.
        np.testing.assert_allclose(line, np.column_stack([x, y]), atol=0.05)


def test_projected_crs_gives_the_same_roads(vegas_mask: Path, tmp_path: Path) -> None:
    utm = tmp_path / "mask_utm.tif"
    with rasterio.open(vegas_mask) as src:
        transform, width, height = rasterio.warp.calculate_default_transform(
            src.crs, "EPSG:32611", src.width, src.height, *src.bounds
        )
        profile = src.profile | {
            "crs": "EPSG:32611",
            "transform": transform,
            "width": width,
            "height": height,
        }
        with rasterio.open(utm, "w", **profile) as dst:
            rasterio.warp.reproject(
                rasterio.band(src, 1),
                rasterio.band(dst, 1),
                resampling=rasterio.warp.Resampling.nearest,
                dst_nodata=255,
            )

    in_lonlat = vectorize_mask(vegas_mask, tmp_path / "lonlat.geojson")
    in_utm = vectorize_mask(utm, tmp_path / "utm.geojson")

    assert_rfc7946(load(in_utm.out))
    assert in_utm.total_length_m == pytest.approx(in_lonlat.total_length_m, rel=0.03)
    assert apls_of_lines(read_lines(in_utm.out), read_lines(in_lonlat.out)).apls > 0.95


def test_empty_mask_gives_an_empty_feature_collection(write_geotiff, tmp_path: Path) -> None:
    mask = write_geotiff(np.zeros((300, 400), np.uint8), nodata=255)

    summary = vectorize_mask(mask, tmp_path / "roads.geojson")

    assert load(summary.out) == {"type": "FeatureCollection", "features": []}
    assert (summary.segments, summary.nodes, summary.total_length_m) == (0, 0, 0.0)


def test_real_mask_has_no_seams_at_block_borders(shared_data: Path, tmp_path: Path) -> None:
    mask = shared_data / "spacenet" / "pairs" / "sample_road_raster_mask.tif"
    whole = vectorize_mask(mask, tmp_path / "whole.geojson", options=VectorizeOptions(block_size=4096))
    blocks = vectorize_mask(
        mask, tmp_path / "blocks.geojson", options=VectorizeOptions(block_size=200, block_overlap=64)
    )

    assert (whole.blocks, blocks.blocks) == (1, 49)
    assert load(blocks.out) == load(whole.out)


def test_line_across_a_block_border_is_one_feature(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((500, 500), np.uint8)
    rows = np.arange(40, 460)
    for width in range(-4, 5):  # a 9-pixel-wide diagonal road crossing the border at x=256, y=256
        mask[rows, np.clip(rows + width, 0, 499)] = 1
    path = write_geotiff(mask, nodata=255)

    whole = vectorize_mask(path, tmp_path / "whole.geojson", options=VectorizeOptions(block_size=512))
    blocks = vectorize_mask(
        path, tmp_path / "blocks.geojson", options=VectorizeOptions(block_size=256, block_overlap=32)
    )

    assert blocks.blocks == 4 and blocks.segments == whole.segments == 1
    assert load(blocks.out) == load(whole.out)


def test_scene_wider_than_16_bit_coordinates(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((40, 40_000), np.uint8)
    mask[15:25, 100:39_900] = 1
    path = write_geotiff(mask, transform=from_origin(500_000, 5_000_000, 0.5, 0.5))

    summary = vectorize_mask(path, tmp_path / "roads.geojson")

    (road,) = read_lines(summary.out)
    assert summary.total_length_m == pytest.approx(39_800 * 0.5, rel=0.01)
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    east, _ = to_lonlat.transform(500_000 + 39_900 * 0.5, 5_000_000 - 10)
    assert road.bounds[2] == pytest.approx(east, abs=1e-4)


def test_255_is_no_data_only_when_declared(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((200, 200), np.uint8)
    mask[95:105, 10:190] = 255

    declared = vectorize_mask(write_geotiff(mask, "a.tif", nodata=255), tmp_path / "a.geojson")
    undeclared = vectorize_mask(write_geotiff(mask, "b.tif"), tmp_path / "b.geojson")

    assert declared.segments == 0
    assert undeclared.segments == 1


def test_cleaning_drops_spurs_and_fragments_and_bridges_gaps(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((400, 600), np.uint8)  # 0.5 m pixels
    mask[100:110, 20:280] = 1  # a road, a 6 m gap (under a tree), the road again
    mask[100:110, 292:580] = 1
    mask[110:120, 150:158] = 1  # a 5 m stub off the road: a spur
    mask[300:310, 300:320] = 1  # a 10 m speck: a fragment
    path = write_geotiff(mask)

    cleaned = vectorize_mask(path, tmp_path / "cleaned.geojson")
    raw = vectorize_mask(
        path,
        tmp_path / "raw.geojson",
        options=VectorizeOptions(min_spur_m=0, min_fragment_m=0, max_gap_m=0, fill_holes_m2=0),
    )

    assert cleaned.segments == 1 and cleaned.total_length_m == pytest.approx(280, abs=6)
    assert raw.segments >= 4


def test_no_crs_gives_pixel_coordinates(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((100, 300), np.uint8)
    mask[45:55, 20:280] = 1

    summary = vectorize_mask(write_geotiff(mask, crs=None), tmp_path / "roads.geojson")

    (feature,) = load(summary.out)["features"]
    assert not summary.georeferenced and feature["properties"]["length_m"] is None
    xs, ys = zip(*feature["geometry"]["coordinates"], strict=True)
    assert min(xs) > 15 and max(xs) < 285 and all(45 < y < 55 for y in ys)
    assert feature["properties"]["length_px"] == pytest.approx(255, abs=10)


def test_multiband_mask_is_refused(write_geotiff, tmp_path: Path) -> None:
    rgb = write_geotiff(np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(InputError, match="3 bands"):
        vectorize_mask(rgb, tmp_path / "roads.geojson")


def test_cli_vectorize_then_score_graph(shared_data: Path, tmp_path: Path) -> None:
    pairs = shared_data / "spacenet" / "pairs"
    out = tmp_path / "roads.geojson"
    runner = CliRunner()

    result = runner.invoke(
        cli, ["vectorize", str(pairs / "sample_road_raster_mask.tif"), "--out", str(out), "--min-spur-m", "8"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"roads.geojson: \d+ segments, \d+ nodes, 1\.\d\d km", result.output)

    result = runner.invoke(cli, ["score-graph", str(out), str(pairs / "sample_roads_for_masking.geojson")])
    assert result.exit_code == 0, result.output
    assert float(result.output.split()[-1]) > 0.95

    result = runner.invoke(cli, ["vectorize", str(pairs / "RGB-PanSharpen_img1447.tif"), "--out", str(out)])
    assert result.exit_code == 2 and "3 bands; a road mask has one band" in result.output


def test_geopackage_holds_the_same_roads(shared_data: Path, tmp_path: Path) -> None:
    """Checked by GDAL: its own GeoPackage validator, and OGR (through pyogrio) reading the layer back."""
    mask = shared_data / "spacenet" / "pairs" / "sample_road_raster_mask.tif"
    geojson = vectorize_mask(mask, tmp_path / "roads.geojson")
    gpkg = vectorize_mask(mask, tmp_path / "roads.gpkg")

    assert validate_gpkg.check(str(gpkg.out), warning_as_error=True, extra_checks=True) == []
    info = pyogrio.read_info(gpkg.out)
    assert (info["layer_name"], info["crs"], info["geometry_type"]) == ("roads", "EPSG:4326", "LineString")
    meta, _, geometry, columns = pyogrio.raw.read(gpkg.out)
    table = dict(zip(meta["fields"], columns, strict=True))
    features = load(geojson.out)["features"]
    assert gpkg.segments == len(geometry) == len(features) > 0
    for i, feature in enumerate(features):
        line = shapely.from_wkb(geometry[i])
        assert list(line.coords) == [tuple(c) for c in feature["geometry"]["coordinates"]]
        props = feature["properties"]
        stored = (table["length_m"][i], table["start_node"][i], table["end_node"][i])
        assert stored == (props["length_m"], props["start_node"], props["end_node"])
    assert np.isnan(table["confidence"]).all()  # no probability raster: NULL


def test_geopackage_of_pixel_coordinates(write_geotiff, tmp_path: Path) -> None:
    mask = np.zeros((200, 300), np.uint8)
    mask[98:103, 20:280] = 1
    path = write_geotiff(mask, "mask.tif", crs=None)
    out = vectorize_mask(path, tmp_path / "roads.gpkg").out
    assert validate_gpkg.check(str(out), warning_as_error=True, extra_checks=True) == []
    meta, _, geometry, columns = pyogrio.raw.read(out)
    assert meta["crs"] is None and len(geometry) == 1
    assert np.isnan(dict(zip(meta["fields"], columns, strict=True))["length_m"]).all()  # no CRS: NULL


def test_geopackage_without_pyogrio_names_the_extra(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyogrio.raw", None)  # import fails as if it were not installed
    mask = shared_data / "spacenet" / "pairs" / "sample_road_raster_mask.tif"
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'roadnet[gpkg]'")):
        vectorize_mask(mask, tmp_path / "roads.gpkg")


@pytest.mark.parametrize(
    "name", ["spacenet/pairs/sample_road_raster_mask.tif", "deepglobe/pairs/113_mask.png"]
)
def test_skeleton_graph_agrees_with_skan(shared_data: Path, name: str) -> None:
    """skan, an independent skeleton analyser, finds the same branches, ends and pieces in the skeleton."""
    with rasterio.open(shared_data / name) as src:
        skeleton = skeletonize(src.read(1) > 127)
    height, width = skeleton.shape
    ours = trace_skeleton(skeleton, (0, height, 0, width), (0, 0), width)
    theirs = Skeleton(skeleton)
    branches = summarize(theirs, separator="_")

    def length(xy: np.ndarray) -> float:
        return float(np.hypot(*np.diff(xy, axis=0).T).sum())

    assert sorted(length(xy) for _, _, xy in ours.edges) == pytest.approx(sorted(branches.branch_distance))
    graph = nx.MultiGraph([(start, end) for start, end, _ in ours.edges])
    # node positions are pixel centres, (x, y) + 0.5; skan's coordinates are (row, col)
    our_ends = sorted((int(ours.nodes[n][1]), int(ours.nodes[n][0])) for n in graph if graph.degree(n) == 1)
    their_ends = sorted(map(tuple, theirs.coordinates[theirs.degrees == 1].astype(int).tolist()))
    assert our_ends == their_ends and len(our_ends) > 2
    assert nx.number_connected_components(graph) == branches.skeleton_id.nunique()
