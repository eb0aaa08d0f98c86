"""Predict the roads of a scene of any size: the paper's stride-averaged windows, streamed in strips.

:func:`predict_scene` reads the scene in strips of rows that follow the global window grid
(:func:`~worker.inference.sliding_window.predict_rows`), so it holds only about one window's height of
the scene and its accumulators at a time: memory grows with the scene's width, never its height, and
time with its area. Finished rows go straight to tiled GeoTIFFs, which are then converted to Cloud-Optimised
GeoTIFFs with overviews and moved into place (temporary file, then rename), so a reader never sees a
half-written result.

Outputs, with the input's CRS and transform (pixel coordinates when it has none):

- ``mask.tif``: uint8, 1 road, 0 background, 255 no data;
- ``probability.tif``: uint8, road probability scaled to 0-254, 255 no data.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from roadnet.options import InferenceOptions, resolve_options
from roadnet.outputs import OUTPUTS, OutputName
from roadnet.scene import SceneInfo, find_white_fill, inspect_scene, open_scene, read_rgb
from roadnet.window_grid import scene_windows
from worker.inference.cog import BLOCK, GDAL_CACHE_MB, write_cog
from worker.inference.model import load_model
from worker.inference.sliding_window import predict_rows

log = logging.getLogger(__name__)

NODATA = 255
#: Probabilities are stored as round(p * 254), leaving 255 for no data.
PROBABILITY_SCALE = 254


@dataclass(frozen=True)
class PredictionOutputs:
    """Where the results are and how they were made."""

    mask: Path
    probability: Path
    scene: SceneInfo
    model: Path
    provider: str
    window: int
    stride: int
    batch_size: int
    threshold: float
    windows: int
    seconds: float
    road_fraction: float


class _TiledWriter:
    """Writes rows of one band to a tiled GeoTIFF, buffering until whole tile rows can be written."""

    def __init__(self, path: Path, src: rasterio.io.DatasetReader, georeferenced: bool) -> None:
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 1,
            "dtype": "uint8",
            "nodata": NODATA,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        if georeferenced:
            profile |= {"crs": src.crs, "transform": src.transform}
        self.path = path
        self.width = src.width
        self.dst = rasterio.open(path, "w", **profile)
        self.pending: list[np.ndarray] = []
        self.written = 0

    def write(self, rows: np.ndarray, final: bool = False) -> None:
        self.pending.append(rows)
        held = sum(len(p) for p in self.pending)
        ready = held if final else held - held % BLOCK
        if ready == 0:
            return
        data = np.concatenate(self.pending)
        self.dst.write(data[:ready], 1, window=Window(0, self.written, self.width, ready))
        self.written += ready
        self.pending = [data[ready:]] if ready < held else []

    def close(self) -> None:
        self.dst.close()


def _with_nodata(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    values[~valid] = NODATA
    return values


def predict_scene(
    scene: Path,
    out_dir: Path,
    *,
    model_path: Path | None = None,
    options: InferenceOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> PredictionOutputs:
    """Predict the roads of ``scene`` into ``out_dir/mask.tif`` and ``out_dir/probability.tif``.

    ``model_path`` defaults to the configured model (:func:`roadnet.model_files.default_model_path`).
    ``progress`` gets the fraction done, 0 to 1. Raises the :mod:`roadnet.scene` input errors for a
    scene inference cannot use and :class:`roadnet.errors.ModelError` for a bad model.
    """
    started = time.monotonic()
    model = load_model(model_path)
    opts = resolve_options(options or InferenceOptions(), model.metadata)
    assert opts.window
    opts = replace(opts, batch_size=opts.batch_size or model.batch_size(opts.window))
    assert opts.window and opts.stride and opts.batch_size and opts.threshold is not None
    info = inspect_scene(
        Path(scene),
        require_georeference=False,
        bands=opts.bands,
        min_side=min(opts.window, model.metadata.window),
    )
    # A window larger than the scene (fast mode on a small tile) shrinks to the scene.
    window = min(opts.window, info.height, info.width)
    stride = min(opts.stride, window)
    total_windows = scene_windows(info.height, info.width, window, stride)
    log.info(
        "predicting %s (%dx%d) with %s on %s: window %d, stride %d, batch %d, %d windows",
        info.path.name, info.width, info.height, model.path.name, model.provider, window, stride,
        opts.batch_size, total_windows,
    )  # fmt: skip

    done = 0

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            # The last 5% are the conversion to Cloud-Optimised GeoTIFF.
            progress(0.95 * done / total_windows)

    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = out_dir / OUTPUTS[OutputName.mask].filename
    prob_path = out_dir / OUTPUTS[OutputName.probability].filename
    roads = valid_pixels = 0
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), warnings.catch_warnings(), open_scene(info) as src:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        valid_rows: list[np.ndarray] = []  # validity of rows read but not yet written

        fill = find_white_fill(src, info)

        def read_rows(start: int, stop: int) -> np.ndarray:
            rgb, valid = read_rgb(src, info, start, stop)
            if fill is not None:
                valid &= ~fill.rows(rgb, start)  # no data, though the model sees white, as in training
            valid_rows.append(valid)
            return rgb

        mask_out = _TiledWriter(out_dir / ".mask.tiled.tif", src, info.georeferenced)
        prob_out = _TiledWriter(out_dir / ".probability.tiled.tif", src, info.georeferenced)
        try:
            rows = predict_rows(read_rows, info.height, info.width, model.predict, window, stride,
                                opts.batch_size, on_batch)  # fmt: skip
            for first, probability in rows:
                held = np.concatenate(valid_rows)
                valid, rest = held[: len(probability)], held[len(probability) :]
                valid_rows[:] = [rest]
                road = probability >= opts.threshold
                last = first + len(probability) == info.height
                mask_out.write(_with_nodata(road.astype(np.uint8), valid), final=last)
                scaled = np.rint(probability * PROBABILITY_SCALE).astype(np.uint8)
                prob_out.write(_with_nodata(scaled, valid), final=last)
                roads += int(np.count_nonzero(road & valid))
                valid_pixels += int(np.count_nonzero(valid))
        except BaseException:
            for out in (mask_out, prob_out):
                out.close()
                out.path.unlink(missing_ok=True)
            raise
        mask_out.close()
        prob_out.close()
        write_cog(mask_out.path, mask_path, resampling="NEAREST")
        write_cog(prob_out.path, prob_path, resampling="AVERAGE")
    if progress is not None:
        progress(1.0)
    seconds = time.monotonic() - started
    log.info("wrote %s and %s in %.1f s", mask_path, prob_path, seconds)
    return PredictionOutputs(
        mask=mask_path,
        probability=prob_path,
        scene=info,
        model=model.path,
        provider=model.provider,
        window=window,
        stride=stride,
        batch_size=opts.batch_size,
        threshold=opts.threshold,
        windows=total_windows,
        seconds=seconds,
        road_fraction=roads / valid_pixels if valid_pixels else 0.0,
    )
