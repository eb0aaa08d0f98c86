"""APLS, the average path length similarity of SpaceNet 3, between two road networks in GeoJSON.

The definition followed is CosmiQ's (Van Etten et al., SpaceNet 3; ``apls.py`` of github.com/CosmiQ/apls,
which does not install on current numpy/networkx, hence this rewrite):

1. Both networks are read from GeoJSON LineStrings (lon/lat, RFC 7946), projected to the UTM zone of
   their common centre, noded where lines meet or cross, and turned into graphs weighted by length.
2. Control points: every node, plus a point every ``CONTROL_INTERVAL_M`` (50 m) along each edge from its
   start.
3. Half score, ground truth onto proposal: each ground-truth control point is snapped onto the nearest
   proposal edge within ``SNAP_DISTANCE_M`` (4 m), inserting a node there. For every pair of control
   points joined by a path in the ground truth, of length L, the proposal path between their snapped
   points has length L'; the pair scores ``min(1, |L - L'| / L)``, and 1 (the most) when a point did not
   snap or the proposal has no path. The half score is 1 minus the mean over pairs.
4. The same with the roles swapped (proposal onto ground truth), which penalises spurious roads.
5. APLS is the harmonic mean of the two halves (0 when either is 0).

Networks with more than ``max_control_points`` control points are scored on a seeded random sample of
them as path sources (CosmiQ samples too). Two empty networks score 1, one empty network scores 0.
"""

from __future__ import annotations

import json
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import shapely
import shapely.geometry
import shapely.ops
from pyproj import Transformer

from roadnet.errors import InputError

CONTROL_INTERVAL_M = 50.0
SNAP_DISTANCE_M = 4.0
#: Lines shorter than this (metres) carry no path and are left out.
MIN_LINE_M = 0.01


@dataclass(frozen=True)
class APLSResult:
    """APLS and its two halves."""

    apls: float
    truth_onto_proposal: float
    proposal_onto_truth: float
    truth_control_points: int
    proposal_control_points: int


def read_lines(path: Path) -> list[shapely.LineString]:
    """The LineStrings (and MultiLineStrings' parts) of a GeoJSON file, in lon/lat."""
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    features = collection.get("features", []) if isinstance(collection, dict) else []
    lines: list[shapely.LineString] = []
    for feature in features:
        geometry = shapely.geometry.shape(feature["geometry"]) if feature.get("geometry") else None
        if geometry is None or geometry.is_empty:
            continue
        parts = getattr(geometry, "geoms", [geometry])
        lines.extend(part for part in parts if isinstance(part, shapely.LineString) and part.length > 0)
    return lines


def _utm_transformer(lines: Sequence[shapely.LineString]) -> Transformer:
    """lon/lat to the UTM zone holding the lines' centre."""
    lon, lat = shapely.get_coordinates(lines).mean(axis=0)
    zone = int((lon + 180) // 6) % 60 + 1
    return Transformer.from_crs("EPSG:4326", f"EPSG:{(32600 if lat >= 0 else 32700) + zone}", always_xy=True)


def _node_key(x: float, y: float) -> tuple[float, float]:
    return (round(x, 3), round(y, 3))  # millimetres: ends that meet share a node


def build_graph(lines: Sequence[shapely.LineString]) -> nx.Graph:
    """A graph of metric lines, noded where they meet; edges carry ``geometry`` and ``length``."""
    graph = nx.Graph()
    if not lines:
        return graph
    noded = shapely.line_merge(shapely.unary_union(list(lines)))
    for part in getattr(noded, "geoms", [noded]):
        _add_line(graph, part)
    return graph


def _add_line(graph: nx.Graph, line: shapely.LineString) -> None:
    if line.length < MIN_LINE_M:
        return
    u, v = _node_key(*line.coords[0]), _node_key(*line.coords[-1])
    if u == v or graph.has_edge(u, v):  # a ring, or a second road between two nodes: split it in halves
        half = line.length / 2
        _add_line(graph, shapely.ops.substring(line, 0, half))
        _add_line(graph, shapely.ops.substring(line, half, line.length))
        return
    for key, xy in ((u, line.coords[0]), (v, line.coords[-1])):
        graph.add_node(key, xy=xy[:2])
    graph.add_edge(u, v, geometry=line, length=line.length, start=u)


def _split_edge(graph: nx.Graph, u: Hashable, v: Hashable, at: Sequence[float]) -> list[Hashable]:
    """Split edge (u, v) at distances ``at`` along its geometry; returns the node at each distance."""
    line: shapely.LineString = graph.edges[u, v]["geometry"]
    start, end = (u, v) if graph.edges[u, v]["start"] == u else (v, u)
    length = line.length
    cuts = sorted({min(max(d, 0.0), length) for d in at})
    node_at: dict[float, Hashable] = {}
    inner = [d for d in cuts if 1e-3 < d < length - 1e-3]
    for d in cuts:
        if d <= 1e-3:
            node_at[d] = start
        elif d >= length - 1e-3:
            node_at[d] = end
    if inner:
        graph.remove_edge(u, v)
        bounds = [0.0, *inner, length]
        nodes = [start]
        for d in inner:
            point = line.interpolate(d)
            key = _node_key(point.x, point.y)
            graph.add_node(key, xy=(point.x, point.y))
            node_at[d] = key
            nodes.append(key)
        nodes.append(end)
        for a, b, n0, n1 in zip(bounds[:-1], bounds[1:], nodes[:-1], nodes[1:], strict=True):
            piece = shapely.ops.substring(line, a, b)
            graph.add_edge(n0, n1, geometry=piece, length=b - a, start=n0)
    return [node_at[min(max(d, 0.0), length)] for d in at]


def add_control_points(graph: nx.Graph, interval: float = CONTROL_INTERVAL_M) -> None:
    """Insert a node every ``interval`` metres along every edge, measured from the edge's start."""
    for u, v, length in list(graph.edges(data="length")):
        marks = list(np.arange(interval, length, interval))
        if marks:
            _split_edge(graph, u, v, marks)


def snap_points(graph: nx.Graph, points: np.ndarray, max_distance: float) -> list[Hashable | None]:
    """Snap each point onto the nearest edge within ``max_distance``, inserting a node there.

    Returns the graph node of each point, or None where no edge is that close.
    """
    result: list[Hashable | None] = [None] * len(points)
    if graph.number_of_edges() == 0 or len(points) == 0:
        return result
    edges = list(graph.edges)
    tree = shapely.STRtree([graph.edges[e]["geometry"] for e in edges])
    geoms = shapely.points(points)
    hits, _ = tree.query_nearest(geoms, max_distance=max_distance, return_distance=True, all_matches=False)
    on_edge: dict[int, list[tuple[int, float]]] = {}
    for point_index, edge_index in hits.T.tolist():
        line = graph.edges[edges[edge_index]]["geometry"]
        on_edge.setdefault(edge_index, []).append((point_index, line.project(geoms[point_index])))
    for edge_index, items in on_edge.items():
        u, v = edges[edge_index]
        nodes = _split_edge(graph, u, v, [d for _, d in items])
        for (point_index, _), node in zip(items, nodes, strict=True):
            result[point_index] = node
    return result


def half_apls(
    reference: nx.Graph, other: nx.Graph, *, max_control_points: int = 1000, seed: int = 0
) -> float:
    """1 minus the mean path-length difference of ``reference``'s control point pairs found in ``other``.

    ``reference`` must already carry its control points (:func:`add_control_points`); ``other`` is
    modified (control points snapped into it).
    """
    control = list(reference.nodes)
    points = np.array([reference.nodes[n]["xy"] for n in control], dtype=np.float64).reshape(-1, 2)
    snapped = dict(zip(control, snap_points(other, points, SNAP_DISTANCE_M), strict=True))
    sources = control
    if len(control) > max_control_points:
        sources = random.Random(seed).sample(control, max_control_points)
    index = {n: i for i, n in enumerate(control)}
    diffs: list[float] = []
    for source in sources:
        ref_lengths = nx.single_source_dijkstra_path_length(reference, source, weight="length")
        start = snapped[source]
        other_lengths = (
            nx.single_source_dijkstra_path_length(other, start, weight="length") if start is not None else {}
        )
        for target, length in ref_lengths.items():
            # each unordered pair once when every node is a source; sampled sources pair with all
            if length <= 0 or (sources is control and index[target] <= index[source]):
                continue
            end = snapped[target]
            if end is None or end not in other_lengths:
                diffs.append(1.0)
            else:
                diffs.append(min(1.0, abs(length - other_lengths[end]) / length))
    return 1.0 - float(np.mean(diffs)) if diffs else 0.0


def apls_of_lines(proposal: Sequence[shapely.LineString], truth: Sequence[shapely.LineString]) -> APLSResult:
    """APLS of ``proposal`` against ``truth``, both lists of lon/lat LineStrings."""
    if not proposal or not truth:
        score = 1.0 if not proposal and not truth else 0.0
        return APLSResult(score, score, score, 0, 0)
    project = _utm_transformer([*proposal, *truth])
    graphs = [
        build_graph([shapely.transform(line, project.transform, interleaved=False) for line in lines])
        for lines in (truth, proposal)
    ]
    for graph in graphs:
        add_control_points(graph)
    truth_graph, proposal_graph = graphs
    onto_proposal = half_apls(truth_graph, proposal_graph.copy())
    onto_truth = half_apls(proposal_graph, truth_graph.copy())
    score = 0.0 if min(onto_proposal, onto_truth) <= 0 else 2 / (1 / onto_proposal + 1 / onto_truth)
    return APLSResult(
        apls=score,
        truth_onto_proposal=onto_proposal,
        proposal_onto_truth=onto_truth,
        truth_control_points=truth_graph.number_of_nodes(),
        proposal_control_points=proposal_graph.number_of_nodes(),
    )


def apls(proposal: Path, truth: Path) -> APLSResult:
    """APLS of the road network in the GeoJSON file ``proposal`` against the one in ``truth``."""
    return apls_of_lines(read_lines(proposal), read_lines(truth))
