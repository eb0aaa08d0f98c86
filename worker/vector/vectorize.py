"""A road mask to a road network: skeleton, graph, cleaning, GeoJSON (RFC 7946).

The steps, each threshold an option of :class:`VectorizeOptions` in metres on the ground:

1. Read the mask block by block (rasterio windows, a block plus an overlap on each side). A pixel is road
   where its value is > 0 and it is not no data: 255 counts as no data only when the raster declares it
   (``roadnet predict`` writes 1 road, 0 background, 255 no data, and declares it).
2. Fill holes smaller than ``fill_holes_m2`` (cars, shadows: they would make loops), skeletonise
   (scikit-image) and trace the skeleton inside the block into junctions and segments
   (:mod:`worker.vector.graph_trace`). The overlap makes the skeleton inside the block the same as the whole
   scene's; segments leaving the block end at border nodes that the neighbouring block shares, so the
   stitched graph has each road once and unbroken. Memory is one window plus the graph.
3. Clean (:mod:`worker.vector.graph_clean`), as CRESI and the SpaceNet 3 winners do: drop spurs shorter than
   ``min_spur_m``, bridge gaps up to ``max_gap_m`` between dead ends that line up, drop isolated pieces
   shorter than ``min_fragment_m``, Douglas-Peucker simplify with tolerance ``simplify_m``.
4. Write GeoJSON per RFC 7946: WGS 84 longitude/latitude whatever the mask's CRS, no ``crs`` member,
   7 decimals (about 1 cm), one LineString feature per segment between two nodes (junctions or dead
   ends) with properties ``length_m`` (geodesic, WGS 84 ellipsoid), ``start_node`` and ``end_node``,
   and ``confidence`` (the mean road probability along it, 0-1) when the probability raster is given.
   An output named ``*.gpkg`` gets the same features as a GeoPackage layer ``roads`` instead.

Lengths in metres come from the pixel size on the ground at the scene's centre (geodesic distance to
the next pixel across and down), so geographic CRSs such as EPSG:4326 work like projected ones.

A mask without a CRS or geotransform is vectorised in pixel space: coordinates are (column, row) of
the image with pixel centres at +0.5 and y growing downwards, thresholds count one pixel as one
metre, ``length_m`` is null and ``length_px`` gives the length in pixels.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import rasterio
from pyproj import Geod, Transformer
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window
from scipy.spatial import cKDTree
from skimage.morphology import remove_small_holes, skeletonize

from roadnet.errors import InputError, UnreadableRasterError
from worker.inference.predict import PROBABILITY_SCALE
from worker.vector.confidence import mean_along_lines
from worker.vector.geopackage import write_geopackage
from worker.vector.graph_clean import (
    add_edge,
    bridge_gaps,
    drop_fragments,
    merge_degree_two,
    polyline_length,
    prune_spurs,
    simplify_edges,
)
from worker.vector.graph_trace import trace_skeleton
from worker.vector.options import VectorizeOptions

__all__ = ["VectorizeOptions", "VectorizeSummary", "vectorize_mask"]

_GEOD = Geod(ellps="WGS84")
#: Decimals of output coordinates: 1e-7 degree is about 1 cm.
COORD_DECIMALS = 7


@dataclass(frozen=True)
class VectorizeSummary:
    """What :func:`vectorize_mask` wrote."""

    out: Path
    segments: int
    nodes: int
    #: Sum of the segments' geodesic lengths; None for a mask without a CRS.
    total_length_m: float | None
    georeferenced: bool
    blocks: int
    #: The segments written, as (column, row) coordinates in the mask's pixel grid: what a preview on that
    #: grid draws, without reading ``out`` back and reprojecting it.
    lines: list[np.ndarray]


def _open_mask(mask: Path) -> DatasetReader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(mask)
    except RasterioError as exc:
        raise UnreadableRasterError(
            f"{mask} is not a raster that can be read ({exc}); pass the mask.tif that roadnet predict "
            "wrote, or any single-band GeoTIFF where road > 0."
        ) from exc
    if src.count != 1:
        src.close()
        raise InputError(
            f"{mask} has {src.count} bands; a road mask has one band (road > 0). "
            "Pass the mask.tif that roadnet predict wrote."
        )
    return src


def _pixel_size_m(src: DatasetReader) -> tuple[float, float]:
    """Ground length in metres of one pixel across and one pixel down, at the scene's centre."""
    to_wgs84 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    col, row = src.width / 2, src.height / 2
    xs, ys = zip(*(src.transform @ p for p in ((col, row), (col + 1, row), (col, row + 1))), strict=True)
    lons, lats = to_wgs84.transform(xs, ys)
    across = _GEOD.inv(lons[0], lats[0], lons[1], lats[1])[2]
    down = _GEOD.inv(lons[0], lats[0], lons[2], lats[2])[2]
    if not (across > 0 and down > 0 and math.isfinite(across + down)):
        raise InputError(
            f"{src.name}: cannot work out the pixel size on the ground from its CRS and transform"
        )
    return float(across), float(down)


def _blocks(height: int, width: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    """(row, col, rows, cols) of the blocks tiling the scene."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield row, col, min(size, height - row), min(size, width - col)


def _skeleton_graph(
    src: DatasetReader,
    options: VectorizeOptions,
    scale: tuple[float, float],
    progress: Callable[[float], None] | None,
) -> tuple[nx.MultiGraph, int]:
    """The stitched skeleton graph of the whole mask in metres, and the number of blocks."""
    sx, sy = scale
    graph = nx.MultiGraph()
    halo = options.block_overlap
    hole_px = int(options.fill_holes_m2 / (sx * sy))
    blocks = list(_blocks(src.height, src.width, options.block_size))
    for done, (row, col, rows, cols) in enumerate(blocks, start=1):
        window = Window(col - halo, row - halo, cols + 2 * halo, rows + 2 * halo)
        data = src.read(1, window=window, boundless=True, masked=True)
        road = np.ma.filled(data > 0, False)
        if road[halo : halo + rows, halo : halo + cols].any():
            if hole_px > 0:
                road = remove_small_holes(road, max_size=hole_px)
            traced = trace_skeleton(
                skeletonize(road),
                core=(halo, halo + rows, halo, halo + cols),
                origin=(row - halo, col - halo),
                scene_width=src.width,
            )
            for key, (x, y) in traced.nodes.items():
                graph.add_node(key, xy=(x * sx, y * sy))
            for start, end, xy in traced.edges:
                add_edge(graph, start, end, xy * (sx, sy))
        if progress is not None:
            progress(0.9 * done / len(blocks))
    _join_unmatched_borders(graph, tolerance=3 * max(sx, sy))
    merge_degree_two(graph)
    return graph, len(blocks)


def _join_unmatched_borders(graph: nx.MultiGraph, tolerance: float) -> None:
    """Join border nodes that only one block reached to the nearest such node of the other block.

    With enough overlap both blocks trace the same pixel pair and the node is shared; this covers the
    rare skeleton that differs by a pixel across a border (a blob wider than the overlap).
    """
    lonely = [n for n in graph.nodes if n[0] == "b" and graph.degree(n) == 1]
    if len(lonely) < 2:
        return
    pos = np.array([graph.nodes[n]["xy"] for n in lonely])
    used: set[int] = set()
    pairs = sorted(
        (float(np.hypot(*(pos[i] - pos[j]))), i, j) for i, j in cKDTree(pos).query_pairs(tolerance)
    )
    for _, i, j in pairs:
        if i in used or j in used or graph.has_edge(lonely[i], lonely[j]):
            continue
        used.update((i, j))
        add_edge(graph, lonely[i], lonely[j], np.array([pos[i], pos[j]]))


def clean_graph(graph: nx.MultiGraph, options: VectorizeOptions) -> None:
    """Spurs, gaps, fragments, simplification, in that order (a bridged piece is no longer a fragment)."""
    prune_spurs(graph, options.min_spur_m)
    bridge_gaps(graph, options.max_gap_m, options.max_gap_angle_deg, options.end_direction_m)
    drop_fragments(graph, options.min_fragment_m)
    merge_degree_two(graph)
    simplify_edges(graph, options.simplify_m)


def _numbered_edges(graph: nx.MultiGraph) -> list[tuple[int, int, np.ndarray]]:
    """Edges as (start id, end id, xy), in an order that depends only on the geometry.

    Nodes are numbered top to bottom, then left to right; each edge runs from its lower-numbered node
    and edges are sorted, so the output is the same however the scene was cut into blocks.
    """
    order = sorted(graph.nodes, key=lambda n: (graph.nodes[n]["xy"][1], graph.nodes[n]["xy"][0]))
    node_id = {node: i for i, node in enumerate(order)}
    edges = []
    for u, v, data in graph.edges(data=True):
        a, b = (node_id[u], node_id[v]) if data["start"] == u else (node_id[v], node_id[u])
        xy = data["xy"]
        if b < a:
            a, b, xy = b, a, xy[::-1]
        edges.append((a, b, xy))
    edges.sort(key=lambda e: (e[0], e[1], len(e[2]), tuple(e[2][len(e[2]) // 2])))
    return edges


def _features(
    graph: nx.MultiGraph,
    src: DatasetReader,
    scale: tuple[float, float],
    georeferenced: bool,
    probability: DatasetReader | None,
    lines: list[np.ndarray],
) -> Iterator[dict]:
    """One GeoJSON feature per edge; with ``probability``, each with its ``confidence``. Appends each
    feature's line in pixel coordinates to ``lines``."""
    to_wgs84 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True) if georeferenced else None
    edges = [(start, end, xy / scale) for start, end, xy in _numbered_edges(graph)]
    confidences = (
        mean_along_lines(probability, [xy for *_, xy in edges], PROBABILITY_SCALE)
        if probability is not None
        else None
    )
    fid = 0
    for i, (start, end, pixels) in enumerate(edges):
        px, py = pixels[:, 0], pixels[:, 1]
        props: dict[str, object] = {"start_node": start, "end_node": end}
        if to_wgs84 is not None:
            x, y = to_wgs84.transform(*(src.transform @ (px, py)))
            coords = np.round(np.column_stack([x, y]), COORD_DECIMALS)
            props["length_m"] = round(float(_GEOD.line_length(coords[:, 0], coords[:, 1])), 2)
        else:
            coords = np.round(np.column_stack([px, py]), 3)
            props["length_m"] = None
            props["length_px"] = round(polyline_length(coords), 2)
        if confidences is not None:
            props["confidence"] = confidences[i]
        keep = np.ones(len(coords), bool)
        keep[1:] = np.any(coords[1:] != coords[:-1], axis=1)
        coords = coords[keep]
        if len(coords) < 2:  # shorter than the coordinates' precision
            continue
        lines.append(pixels[keep])
        yield {
            "type": "Feature",
            "id": fid,
            "properties": props,
            "geometry": {"type": "LineString", "coordinates": coords.tolist()},
        }
        fid += 1


def _write_geojson(features: Iterator[dict], out: Path) -> tuple[int, float]:
    """Stream the features into ``out`` (atomically); returns the count and total ``length_m``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    count, total = 0, 0.0
    with tmp.open("w", encoding="utf-8") as f:
        f.write('{"type": "FeatureCollection", "features": [')
        for feature in features:
            f.write(("," if count else "") + "\n" + json.dumps(feature, separators=(",", ":")))
            count += 1
            total += feature["properties"]["length_m"] or 0.0
        f.write("\n]}\n")
    os.replace(tmp, out)
    return count, total


def vectorize_mask(
    mask: Path,
    out: Path,
    *,
    options: VectorizeOptions | None = None,
    probability: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> VectorizeSummary:
    """Vectorise the road mask ``mask`` into ``out``; see the module docstring.

    ``probability``, the probability raster ``roadnet predict`` wrote with the mask (same grid), gives
    each road a ``confidence`` property: the mean road probability along it, 0-1
    (:mod:`worker.vector.confidence`).

    ``out`` ending in ``.gpkg`` writes the same features as a GeoPackage layer ``roads``
    (:mod:`worker.vector.geopackage`); ``.geojson`` or ``.json`` writes GeoJSON.

    ``progress`` gets the fraction done, 0..1.
    """
    options = options or VectorizeOptions()
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".geojson", ".json", ".gpkg"):
        raise InputError(f"{out.name}: name the output *.geojson (GeoJSON) or *.gpkg (GeoPackage)")
    with ExitStack() as stack:
        src = stack.enter_context(_open_mask(Path(mask)))
        prob = stack.enter_context(rasterio.open(probability)) if probability is not None else None
        georeferenced = src.crs is not None and not src.transform.is_identity
        scale = _pixel_size_m(src) if georeferenced else (1.0, 1.0)
        graph, blocks = _skeleton_graph(src, options, scale, progress)
        clean_graph(graph, options)
        lines: list[np.ndarray] = []
        features = _features(graph, src, scale, georeferenced, prob, lines)
        if suffix == ".gpkg":
            count, total = write_geopackage(features, out, georeferenced=georeferenced)
        else:
            count, total = _write_geojson(features, out)
    if progress is not None:
        progress(1.0)
    return VectorizeSummary(
        out=out,
        segments=count,
        nodes=graph.number_of_nodes(),
        total_length_m=round(total, 2) if georeferenced else None,
        georeferenced=georeferenced,
        blocks=blocks,
        lines=lines,
    )
