"""APLS on hand-made networks whose score is worked out by hand, and on the SpaceNet labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from pyproj import Transformer

from roadnet.cli import cli
from worker.vector.apls import add_control_points, apls, apls_of_lines, build_graph, half_apls, read_lines

# Hand-made networks are drawn in metres in UTM 31N near Paris and handed to APLS in lon/lat.
_TO_LONLAT = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
_ORIGIN = (448_000.0, 5_425_000.0)


def lonlat(*points: tuple[float, float]) -> shapely.LineString:
    """A lon/lat line through points given in metres east and north of an origin."""
    xs, ys = zip(*((_ORIGIN[0] + x, _ORIGIN[1] + y) for x, y in points), strict=True)
    return shapely.LineString(zip(*_TO_LONLAT.transform(xs, ys), strict=True))


def test_identical_networks_score_one() -> None:
    roads = [lonlat((0, 0), (300, 0)), lonlat((150, 0), (150, 200)), lonlat((0, 0), (0, -120))]
    result = apls_of_lines(roads, roads)
    assert result.apls == pytest.approx(1.0)
    assert result.truth_control_points > 6  # nodes plus a point every 50 m


def test_empty_networks() -> None:
    road = [lonlat((0, 0), (100, 0))]
    assert apls_of_lines([], road).apls == 0.0
    assert apls_of_lines(road, []).apls == 0.0
    assert apls_of_lines([], []).apls == 1.0


def test_snapping_distance_is_four_metres() -> None:
    truth = [lonlat((0, 0), (200, 0))]
    assert apls_of_lines([lonlat((0, 3), (200, 3))], truth).apls == pytest.approx(1.0, abs=1e-3)
    assert apls_of_lines([lonlat((0, 6), (200, 6))], truth).apls == 0.0


def test_a_broken_road_scores_the_hand_computed_value() -> None:
    """Truth: one 200 m road, control points at 0, 50, 100, 150, 200. Proposal: the road broken
    between 120 m and 125 m.

    Truth onto proposal: all five points snap; of the 10 pairs, the 6 across the break have no proposal
    path (1 each), the 4 others match exactly: 1 - 6/10 = 0.4. Proposal onto truth: pairs are taken
    only where the proposal has a path, and the truth matches them all: 1. APLS = 2 / (1/0.4 + 1/1).
    """
    truth = [lonlat((0, 0), (200, 0))]
    proposal = [lonlat((0, 0), (120, 0)), lonlat((125, 0), (200, 0))]
    result = apls_of_lines(proposal, truth)
    assert result.truth_onto_proposal == pytest.approx(0.4, abs=1e-3)
    assert result.proposal_onto_truth == pytest.approx(1.0, abs=1e-3)
    assert result.apls == pytest.approx(2 / (1 / 0.4 + 1), abs=1e-3)


def test_a_detour_scores_its_path_length_difference() -> None:
    """Truth: 100 m straight, control points at 0, 50, 100. Proposal: the same ends joined by a
    3 m offset detour, (0,0)-(0,3)-(100,3)-(100,0). The 50 m point snaps 3 m across; every truth path
    is 6% longer in the proposal (53/50, 53/50, 106/100): 1 - 0.06 = 0.94."""
    truth = build_graph([shapely.LineString([(0, 0), (100, 0)])])
    proposal = build_graph([shapely.LineString([(0, 0), (0, 3), (100, 3), (100, 0)])])
    add_control_points(truth)
    assert truth.number_of_nodes() == 3
    assert half_apls(truth, proposal) == pytest.approx(0.94)


def test_long_differences_are_capped_at_one() -> None:
    """A 400 m detour for a 100 m road counts as a missing path, not worse."""
    truth = build_graph([shapely.LineString([(0, 0), (100, 0)])])
    proposal = build_graph([shapely.LineString([(0, 0), (0, 200), (100, 200), (100, 0)])])
    assert half_apls(truth, proposal) == pytest.approx(0.0)


def test_lines_meeting_mid_way_are_noded() -> None:
    """A T junction drawn as two lines, one ending on the other's middle, is one connected network."""
    graph = build_graph([shapely.LineString([(0, 0), (200, 0)]), shapely.LineString([(100, 0), (100, 80)])])
    assert graph.number_of_nodes() == 4 and graph.number_of_edges() == 3


def test_closed_loops_of_any_size_are_graphs() -> None:
    ring = shapely.Point(50, 50).buffer(20).exterior
    tiny = shapely.Point(0, 0).buffer(0.003).exterior  # smaller than the node precision: dropped
    graph = build_graph([ring, tiny, shapely.LineString([(0, 0), (0, 0.001)])])
    assert sum(length for *_, length in graph.edges(data="length")) == pytest.approx(ring.length)


def test_two_roads_between_the_same_junctions_both_count() -> None:
    """Each side of a median: the second road is split so a simple graph keeps both."""
    north = shapely.LineString([(0, 0), (50, 10), (100, 0)])
    south = shapely.LineString([(0, 0), (50, -10), (100, 0)])
    graph = build_graph([north, south])
    assert sum(length for *_, length in graph.edges(data="length")) == pytest.approx(2 * north.length)


def test_spacenet_labels_against_themselves_and_a_degraded_copy(shared_data: Path, tmp_path: Path) -> None:
    truth_path = shared_data / "spacenet" / "pairs" / "AOI_2_Vegas_img0.geojson"
    truth = read_lines(truth_path)
    assert apls(truth_path, truth_path).apls == pytest.approx(1.0)

    degraded = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(line)}
            for line in truth[::2]
        ],
    }
    (tmp_path / "half.geojson").write_text(json.dumps(degraded))
    score = apls(tmp_path / "half.geojson", truth_path).apls
    assert 0.05 < score < 0.95

    result = CliRunner().invoke(cli, ["score-graph", str(tmp_path / "half.geojson"), str(truth_path)])
    assert result.exit_code == 0 and result.output == f"APLS {score:.4f}\n"
