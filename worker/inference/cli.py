"""``roadnet predict``: the road mask, probability and road network of a scene, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from roadnet.outputs import OUTPUTS, OutputName

#: The share of the progress bar (percent) inference takes; vectorisation takes the rest.
INFERENCE_SHARE = 90


def _bands(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        r, g, b = (int(part) for part in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected three 1-based band numbers like 3,2,1, got {value!r}") from exc
    return (r, g, b)


@click.command("predict")
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder to write {OUTPUTS[OutputName.mask].filename}, {OUTPUTS[OutputName.probability].filename} "
    f"and {OUTPUTS[OutputName.roads].filename} into.",
)  # fmt: skip
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="ONNX model from `roadnet export` (default: ROADNET_MODEL_PATH or the shipped model).",
)  # fmt: skip
@click.option(
    "--window", type=click.IntRange(min=32), help="Window side in pixels (default: the model's, 256)."
)
@click.option("--stride", type=click.IntRange(min=1), help="Step between windows (default: the model's, 64).")
@click.option(
    "--batch", "batch_size", type=click.IntRange(min=1), help="Windows per batch (default: ~1M pixels)."
)
@click.option(
    "--threshold", type=click.FloatRange(0, 1), help="Road probability threshold (default: the model's)."
)
@click.option(
    "--bands", help="1-based bands used as R,G,B, e.g. 3,2,1 (default: RGB colour bands, else 1,2,3)."
)
@click.option(
    "--fast", is_flag=True,
    help="Beyond the paper: 1024-pixel windows at stride 768, about 9x fewer pixels through the network.",
)  # fmt: skip
def predict_command(
    scene: Path,
    out_dir: Path,
    model_path: Path | None,
    window: int | None,
    stride: int | None,
    batch_size: int | None,
    threshold: float | None,
    bands: str | None,
    fast: bool,
) -> None:
    """Predict the roads of SCENE (GeoTIFF, or any raster GDAL reads) into --out."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from roadnet.options import InferenceOptions
    from worker.inference.predict import predict_scene
    from worker.vector.vectorize import vectorize_mask

    options = InferenceOptions(
        window=window,
        stride=stride,
        batch_size=batch_size,
        threshold=threshold,
        bands=_bands(bands),
        fast=fast,
    )
    bar_format = "{l_bar}{bar}| {elapsed}<{remaining}"
    with logging_redirect_tqdm(), tqdm(total=100, unit="%", desc=scene.name, bar_format=bar_format) as bar:

        def stage(start: float, end: float) -> Callable[[float], None]:
            return lambda fraction: bar.update(round(start + (end - start) * fraction, 1) - bar.n)

        result = predict_scene(
            scene, out_dir, model_path=model_path, options=options, progress=stage(0, INFERENCE_SHARE)
        )
        roads = vectorize_mask(
            result.mask,
            out_dir / OUTPUTS[OutputName.roads].filename,
            probability=result.probability,
            progress=stage(INFERENCE_SHARE, 100),
        )
    for note in result.scene.warnings:
        click.echo(f"warning: {note}", err=True)
    click.echo(
        f"{result.mask}\n{result.probability}\n{roads.out}\n"
        f"{result.windows} windows of {result.window} px at stride {result.stride} on {result.provider} "
        f"in {result.seconds:.1f} s; roads cover {100 * result.road_fraction:.1f}% of the scene, "
        f"{roads.segments} road segments"
        + (f", {roads.total_length_m / 1000:.1f} km" if roads.total_length_m is not None else "")
    )
