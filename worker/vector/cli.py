"""``roadnet vectorize`` and ``roadnet score-graph``: the road network from a mask, and its APLS."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from roadnet.outputs import OUTPUTS, OutputName
from worker.vector.options import VectorizeOptions

F = TypeVar("F", bound=Callable[..., Any])


def _with_options(command: F) -> F:
    """``command`` with an option for each field of :class:`VectorizeOptions`, in the fields' order."""
    for option in reversed(dataclasses.fields(VectorizeOptions)):
        command = click.option(
            "--" + option.name.replace("_", "-"),
            option.name,
            type=type(option.default),
            default=option.default,
            show_default=True,
            help=option.metadata["help"],
        )(command)
    return command


@click.command("vectorize")
@click.argument("mask", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="GeoJSON to write, or *.gpkg for a GeoPackage (default: roads.geojson beside the mask).",
)
@click.option(
    "--probability",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The probability.tif written with the mask: each road gets its confidence, the mean along it.",
)
@_with_options
def vectorize_command(mask: Path, out: Path | None, probability: Path | None, **options: float) -> None:
    """Vectorise a road MASK (road > 0; 255 is no data only if the raster declares it) to GeoJSON.

    Writes RFC 7946 GeoJSON in WGS 84 longitude/latitude (or a GeoPackage layer "roads" for --out
    *.gpkg), one LineString per road segment with length_m, start_node and end_node (and confidence,
    0-1, with --probability). A mask without a CRS gives pixel coordinates. Thresholds are metres on the
    ground.
    """
    from tqdm import tqdm

    from worker.vector.vectorize import vectorize_mask

    out = out or mask.with_name(OUTPUTS[OutputName.roads].filename)
    with tqdm(total=100, desc="vectorize", unit="%", leave=False) as bar:

        def progress(fraction: float) -> None:
            bar.update(round(100 * fraction) - bar.n)

        summary = vectorize_mask(
            mask,
            out,
            options=VectorizeOptions(**options),  # type: ignore[arg-type]
            probability=probability,
            progress=progress,
        )
    length = (
        f"{summary.total_length_m / 1000:.2f} km"
        if summary.total_length_m is not None
        else "pixel coordinates"
    )
    click.echo(f"{summary.out}: {summary.segments} segments, {summary.nodes} nodes, {length}")


@click.command("score-graph")
@click.argument("proposed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print both halves and the control point counts as JSON."
)
def score_graph_command(proposed: Path, truth: Path, as_json: bool) -> None:
    """Print the APLS of the road network PROPOSED against TRUTH (GeoJSON lines in lon/lat).

    SpaceNet 3's definition (CosmiQ apls): control points every 50 m, snapping within 4 m, path length
    differences capped at 1, missing paths 1, harmonic mean of truth-onto-proposal and
    proposal-onto-truth.
    """
    from worker.vector.apls import apls

    result = apls(proposed, truth)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        click.echo(f"APLS {result.apls:.4f}")
