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
    tracer = _Tracer(skel, core, origin, scene_width)
    if tracer.pixels:
        tracer.add_nodes()
        tracer.trace_from_nodes()
        tracer.trace_from_border()
        tracer.trace_loops()
    return tracer.graph


class _Tracer:
    """One window's tracing: its pixels' neighbour lists and the graph being built. Pixels are
    window-local linear indices (row * window width + col); a neighbour may lie outside the core."""

    def __init__(
        self, skel: np.ndarray, core: tuple[int, int, int, int], origin: tuple[int, int], scene_width: int
    ) -> None:
        self.core, self.origin, self.scene_width = core, origin, scene_width
        self.win_w = skel.shape[1]
        r0, r1, c0, c1 = core
        links = _links(skel)
        self.degree = np.asarray(np.sum(links, axis=0, dtype=np.uint8))
        self.core_skel = np.zeros_like(skel)
        self.core_skel[r0:r1, c0:c1] = skel[r0:r1, c0:c1] & (self.degree[r0:r1, c0:c1] > 0)
        self.rows, self.cols = np.nonzero(self.core_skel)
        self.local = self.rows * self.win_w + self.cols
        self.pixels: list[int] = self.local.tolist()
        self.nbrs: dict[int, list[int]] = {p: [] for p in self.pixels}
        for k, (dr, dc) in enumerate(_OFFSETS):
            sel = links[k][self.rows, self.cols]
            targets = (self.local[sel] + dr * self.win_w + dc).tolist()
            for p, q in zip(self.local[sel].tolist(), targets, strict=True):
                self.nbrs[p].append(q)
        self.graph = TracedGraph()
        self.node_of: dict[int, NodeKey] = {}
        self.visited: set[int] = set()

    def in_core(self, p: int) -> bool:
        r0, r1, c0, c1 = self.core
        r, c = divmod(p, self.win_w)
        return r0 <= r < r1 and c0 <= c < c1

    def scene_index(self, p: int) -> int:
        r, c = divmod(p, self.win_w)
        return (r + self.origin[0]) * self.scene_width + (c + self.origin[1])

    def xy(self, p: int) -> tuple[float, float]:
        r, c = divmod(p, self.win_w)
        return (c + self.origin[1] + 0.5, r + self.origin[0] + 0.5)

    def border_node(self, inside: int, outside: int) -> NodeKey:
        a, b = sorted((self.scene_index(inside), self.scene_index(outside)))
        key: NodeKey = ("b", a, b)
        (xa, ya), (xb, yb) = self.xy(inside), self.xy(outside)
        self.graph.nodes[key] = ((xa + xb) / 2, (ya + yb) / 2)
        return key

    def add_node(self, p: int) -> None:
        self.node_of[p] = ("n", self.scene_index(p))
        self.graph.nodes[self.node_of[p]] = self.xy(p)

    def add_nodes(self) -> None:
        """End pixels, and junction pixels grouped 8-connected into one node at their centroid."""
        deg = self.degree[self.rows, self.cols]
        for p in self.local[deg == 1].tolist():
            self.add_node(p)
        junction = deg >= 3
        if not junction.any():
            return
        row_off, col_off = self.origin
        labels, _ = ndimage.label(self.core_skel & (self.degree >= 3), structure=np.ones((3, 3), bool))
        lab = labels[self.rows[junction], self.cols[junction]]
        jpix = self.local[junction]
        _, first = np.unique(lab, return_index=True)  # first pixel of each label in raster order
        key_of_label = {int(lab[i]): ("n", self.scene_index(int(jpix[i]))) for i in first}
        counts = np.maximum(np.bincount(lab), 1)
        cx = np.bincount(lab, weights=self.cols[junction] + col_off + 0.5) / counts
        cy = np.bincount(lab, weights=self.rows[junction] + row_off + 0.5) / counts
        for label, key in key_of_label.items():
            self.graph.nodes[key] = (float(cx[label]), float(cy[label]))
        for p, label in zip(jpix.tolist(), lab.tolist(), strict=True):
            self.node_of[p] = key_of_label[label]

    def walk(self, start_key: NodeKey, prev: int, cur: int) -> None:
        """Follow chain pixels from ``cur`` (entered from ``prev``) to a node and record the edge."""
        pts = [self.graph.nodes[start_key]]
        while self.in_core(cur) and cur not in self.node_of:
            self.visited.add(cur)
            pts.append(self.xy(cur))
            a, b = self.nbrs[cur]
            prev, cur = cur, (b if a == prev else a)
        end_key = self.node_of[cur] if self.in_core(cur) else self.border_node(prev, cur)
        pts.append(self.graph.nodes[end_key])
        self.graph.edges.append((start_key, end_key, np.asarray(pts, dtype=np.float64)))

    def trace_from_nodes(self) -> None:
        direct_links: set[tuple[int, int]] = set()
        for p, node_key in list(self.node_of.items()):
            for q in self.nbrs[p]:
                if q in self.visited or self.node_of.get(q) == node_key:
                    continue
                if q in self.node_of:  # two nodes side by side: one edge, traced once
                    pair = (min(p, q), max(p, q))
                    if pair in direct_links:
                        continue
                    direct_links.add(pair)
                self.walk(node_key, p, q)

    def trace_from_border(self) -> None:
        """Chains that enter the core over its border and never meet a node inside it."""
        for p in self.pixels:
            if p in self.node_of:
                continue
            for q in self.nbrs[p]:
                if not self.in_core(q) and p not in self.visited:
                    self.walk(self.border_node(p, q), q, p)

    def trace_loops(self) -> None:
        """What is left are closed loops without nodes: one pixel of each becomes a node."""
        for p in self.pixels:
            if p in self.node_of or p in self.visited:
                continue
            self.add_node(p)
            self.visited.add(p)
            self.walk(self.node_of[p], p, self.nbrs[p][0])
