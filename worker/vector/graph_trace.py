"""A one-pixel-wide skeleton to a graph of nodes and polylines, one block of a scene at a time.

What sknw does, written here because sknw is unmaintained and keeps coordinates in 16-bit integers
(scenes are wider than 32 767 px): pixel indices here are Python ints, positions float64.

Pixels are linked to their 8 neighbours, except that a diagonal link is dropped when the two pixels share
a 4-neighbour on the skeleton (the path through that neighbour already joins them), so staircases and
corners do not look like junctions. Pixels with one link are end nodes, pixels with three or more are
junction pixels (8-connected junction pixels form one node, placed at their centroid), and chains of
two-link pixels between nodes are the edges.

Block-wise: the caller skeletonises a window larger than the block's *core* and traces only the core's
pixels, counting links to pixels outside the core so that every pixel is classified as in the whole
scene. An edge that leaves the core ends at a *border node* halfway between the last pixel inside and
the first pixel outside; its key names that pixel pair, so the neighbouring block, tracing the same link
from the other side, ends its piece at the same key and the two pieces join when the blocks are stitched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: A node's key, unique across the scene: ("n", pixel) for an end or junction (its first pixel in
#: raster order, as a scene-wide linear index), ("b", pixel, pixel) for a border node between two pixels.
NodeKey = tuple[str, int] | tuple[str, int, int]

_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass
class TracedGraph:
    """Nodes (key -> (x, y) in scene pixel coordinates, pixel centres at +0.5) and edges.

    Each edge is ``(start_key, end_key, xy)`` with ``xy`` an ``(n, 2)`` float array running from the
    start node to the end node.
    """

    nodes: dict[NodeKey, tuple[float, float]] = field(default_factory=dict)
    edges: list[tuple[NodeKey, NodeKey, np.ndarray]] = field(default_factory=list)


def _links(skel: np.ndarray) -> list[np.ndarray]:
    """For each of the 8 offsets, where a skeleton pixel links to its neighbour at that offset."""
    padded = np.pad(skel, 1)
    rows, cols = skel.shape

    def shifted(dr: int, dc: int) -> np.ndarray:
        return padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]

    links = []
    for dr, dc in _OFFSETS:
        link = skel & shifted(dr, dc)
        if dr and dc:
            link &= ~shifted(dr, 0) & ~shifted(0, dc)
        links.append(link)
    return links


def trace_skeleton(
    skel: np.ndarray,
    core: tuple[int, int, int, int],
    origin: tuple[int, int],
    scene_width: int,
) -> TracedGraph:
    """Trace the skeleton pixels inside ``core`` of a window into nodes and edges.

    ``skel`` is the window's boolean skeleton; ``core`` is ``(row_start, row_stop, col_start, col_stop)``
    in window pixels; ``origin`` is the window's (row, col) offset in the scene, and ``scene_width`` makes
    scene-wide pixel indices. Single isolated pixels are dropped.
    """
    r0, r1, c0, c1 = core
    win_w = skel.shape[1]
    row_off, col_off = origin
    links = _links(skel)
    degree = np.asarray(np.sum(links, axis=0, dtype=np.uint8))

    core_skel = np.zeros_like(skel)
    core_skel[r0:r1, c0:c1] = skel[r0:r1, c0:c1] & (degree[r0:r1, c0:c1] > 0)
    rows, cols = np.nonzero(core_skel)
    graph = TracedGraph()
    if rows.size == 0:
        return graph
    local = rows * win_w + cols

    # Neighbour lists, window-local linear indices (a neighbour may lie outside the core).
    nbrs: dict[int, list[int]] = {p: [] for p in local.tolist()}
    for k, (dr, dc) in enumerate(_OFFSETS):
        sel = links[k][rows, cols]
        for p, q in zip(local[sel].tolist(), (local[sel] + dr * win_w + dc).tolist(), strict=True):
            nbrs[p].append(q)

    def in_core(p: int) -> bool:
        r, c = divmod(p, win_w)
        return r0 <= r < r1 and c0 <= c < c1

    def scene_index(p: int) -> int:
        r, c = divmod(p, win_w)
        return (r + row_off) * scene_width + (c + col_off)

    def xy(p: int) -> tuple[float, float]:
        r, c = divmod(p, win_w)
        return (c + col_off + 0.5, r + row_off + 0.5)

    def border_node(inside: int, outside: int) -> NodeKey:
        a, b = sorted((scene_index(inside), scene_index(outside)))
        key: NodeKey = ("b", a, b)
        (xa, ya), (xb, yb) = xy(inside), xy(outside)
        graph.nodes[key] = ((xa + xb) / 2, (ya + yb) / 2)
        return key

    # Nodes: end pixels, and junction pixels grouped 8-connected into one node at their centroid.
    node_of: dict[int, NodeKey] = {}
    deg = degree[rows, cols]
    for p in local[deg == 1].tolist():
        node_of[p] = ("n", scene_index(p))
        graph.nodes[node_of[p]] = xy(p)
    junction = deg >= 3
    if junction.any():
        labels, _ = ndimage.label(core_skel & (degree >= 3), structure=np.ones((3, 3), bool))
        lab = labels[rows[junction], cols[junction]]
        jpix = local[junction]
        _, first = np.unique(lab, return_index=True)  # first pixel of each label in raster order
        key_of_label = {int(lab[i]): ("n", scene_index(int(jpix[i]))) for i in first}
        counts = np.bincount(lab)
        cx = np.bincount(lab, weights=cols[junction] + col_off + 0.5) / np.maximum(counts, 1)
        cy = np.bincount(lab, weights=rows[junction] + row_off + 0.5) / np.maximum(counts, 1)
        for label, key in key_of_label.items():
            graph.nodes[key] = (float(cx[label]), float(cy[label]))
        for p, label in zip(jpix.tolist(), lab.tolist(), strict=True):
            node_of[p] = key_of_label[label]

    visited: set[int] = set()

    def walk(start_key: NodeKey, prev: int, cur: int) -> None:
        """Follow chain pixels from ``cur`` (entered from ``prev``) to a node and record the edge."""
        pts = [graph.nodes[start_key]]
        end_key: NodeKey
        while True:
            if not in_core(cur):
                end_key = border_node(prev, cur)
                break
            if cur in node_of:
                end_key = node_of[cur]
                break
            visited.add(cur)
            pts.append(xy(cur))
            a, b = nbrs[cur]
            prev, cur = cur, (b if a == prev else a)
        pts.append(graph.nodes[end_key])
        graph.edges.append((start_key, end_key, np.asarray(pts, dtype=np.float64)))

    direct_links: set[tuple[int, int]] = set()
    for p, node_key in list(node_of.items()):
        for q in nbrs[p]:
            if q in visited or node_of.get(q) == node_key:
                continue
            if q in node_of:  # two nodes side by side: one edge, traced once
                pair = (min(p, q), max(p, q))
                if pair in direct_links:
                    continue
                direct_links.add(pair)
            walk(node_key, p, q)

    # Chains that enter the core over its border and never meet a node inside it.
    for p in local.tolist():
        if p in node_of or p in visited:
            continue
        for q in nbrs[p]:
            if not in_core(q) and p not in visited:
                walk(border_node(p, q), q, p)

    # What is left are closed loops without nodes: make one pixel of each a node.
    for p in local.tolist():
        if p in node_of or p in visited:
            continue
        node_of[p] = ("n", scene_index(p))
        graph.nodes[node_of[p]] = xy(p)
        visited.add(p)
        walk(node_of[p], p, nbrs[p][0])
    return graph
