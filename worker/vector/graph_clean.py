"""Cleaning a road graph the way CRESI and the SpaceNet 3 winners do, with every length in metres.

The graph is a ``networkx.MultiGraph`` in a local metric plane: each node has ``xy`` (metres), each edge
``xy`` (an ``(n, 2)`` array of metres) and ``start`` (the node its ``xy`` begins at; a MultiGraph does
not keep edge direction).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import networkx as nx
import numpy as np
import shapely
from scipy.spatial import cKDTree


def polyline_length(xy: np.ndarray) -> float:
    """Length of a polyline given as an ``(n, 2)`` array."""
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())


def add_edge(graph: nx.MultiGraph, start: Hashable, end: Hashable, xy: np.ndarray) -> None:
    """Add an edge whose polyline ``xy`` runs from ``start`` to ``end``."""
    graph.add_edge(start, end, xy=xy, start=start)


def _xy_from(data: dict, node: Hashable) -> np.ndarray:
    """An edge's polyline oriented to begin at ``node``."""
    xy: np.ndarray = data["xy"]
    return xy if data["start"] == node else xy[::-1]


def merge_degree_two(graph: nx.MultiGraph) -> None:
    """Join the two edges at every node of degree two into one edge (the node carries no junction)."""
    for node in list(graph.nodes):
        if graph.degree(node) != 2 or graph.has_edge(node, node):
            continue
        (_, a, da), (_, b, db) = graph.edges(node, data=True)
        joined = np.concatenate([_xy_from(da, a), _xy_from(db, node)[1:]])
        graph.remove_node(node)
        add_edge(graph, a, b, joined)


def prune_spurs(graph: nx.MultiGraph, min_spur_m: float) -> None:
    """Remove dead-end edges shorter than ``min_spur_m`` that hang off a junction, and short self-loops.

    One pass, so a real road made of short pieces is not eaten from its end; the skeleton's spurs (where
    a wide road ends or widens) hang off junctions and go in that pass.
    """
    spurs = [
        node
        for node in graph.nodes
        if graph.degree(node) == 1
        and (nbr := next(iter(graph[node]))) != node
        and graph.degree(nbr) >= 3
        and polyline_length(next(iter(graph[node][nbr].values()))["xy"]) < min_spur_m
    ]
    graph.remove_nodes_from(spurs)
    loops = [
        (u, v, k)
        for u, v, k, xy in graph.edges(keys=True, data="xy")
        if u == v and polyline_length(xy) < min_spur_m
    ]
    graph.remove_edges_from(loops)
    graph.remove_nodes_from([n for n in list(graph.nodes) if graph.degree(n) == 0])
    merge_degree_two(graph)


def _end_direction(graph: nx.MultiGraph, end: Hashable, lookback_m: float) -> np.ndarray:
    """Unit vector pointing out of a dead end, taken over the last ``lookback_m`` of its edge."""
    nbr = next(iter(graph[end]))
    xy = _xy_from(next(iter(graph[end][nbr].values())), nbr)  # runs towards the end
    line = shapely.LineString(xy)
    back = line.interpolate(max(line.length - lookback_m, 0.0))
    vec = xy[-1] - np.array([back.x, back.y])
    norm = float(np.hypot(*vec))
    return vec / norm if norm > 0 else vec


def bridge_gaps(graph: nx.MultiGraph, max_gap_m: float, max_angle_deg: float, lookback_m: float) -> int:
    """Join pairs of dead ends closer than ``max_gap_m`` that line up (roads hidden under trees).

    Each end points along its last ``lookback_m``; a pair is joined when the straight bridge leaves each
    end within ``max_angle_deg`` of its direction. Closest pairs first, each end used once. Returns the
    number of bridges added.
    """
    ends = [n for n in graph.nodes if graph.degree(n) == 1]
    if len(ends) < 2 or max_gap_m <= 0:
        return 0
    pos = np.array([graph.nodes[n]["xy"] for n in ends], dtype=np.float64)
    dirs = np.array([_end_direction(graph, n, lookback_m) for n in ends])
    cos_max = math.cos(math.radians(max_angle_deg))
    candidates = []
    for i, j in cKDTree(pos).query_pairs(max_gap_m):
        gap = pos[j] - pos[i]
        dist = float(np.hypot(*gap))
        if graph.has_edge(ends[i], ends[j]):  # the two ends of one short piece
            continue
        if dist > 0 and (dirs[i] @ gap / dist < cos_max or dirs[j] @ -gap / dist < cos_max):
            continue
        candidates.append((dist, i, j))
    used: set[int] = set()
    for _, i, j in sorted(candidates):
        if i in used or j in used:
            continue
        used.update((i, j))
        add_edge(graph, ends[i], ends[j], np.array([pos[i], pos[j]]))
    return len(used) // 2


def drop_fragments(graph: nx.MultiGraph, min_fragment_m: float) -> None:
    """Remove connected pieces whose roads add up to less than ``min_fragment_m``."""
    for component in list(nx.connected_components(graph)):
        total = sum(polyline_length(xy) for _, _, xy in graph.edges(component, data="xy"))
        if total < min_fragment_m:
            graph.remove_nodes_from(component)


def simplify_edges(graph: nx.MultiGraph, tolerance_m: float) -> None:
    """Douglas-Peucker simplify every edge's polyline (its end points stay where they are)."""
    if tolerance_m <= 0:
        return
    for u, v, data in graph.edges(data=True):
        xy = shapely.get_coordinates(shapely.simplify(shapely.LineString(data["xy"]), tolerance_m))
        if u != v or len(xy) >= 4:  # a loop simplified to a back-and-forth keeps its shape
            data["xy"] = xy
