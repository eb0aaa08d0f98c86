"""The preview PNG: the SpaceNet Paris tile with its roads drawn over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from worker.preview import ROAD_COLOUR, render_preview


def road_pixels(image: np.ndarray) -> np.ndarray:
    return np.all(image == ROAD_COLOUR, axis=-1)


def test_preview_draws_the_roads_over_the_scene(
    spacenet_scene: Path, shared_data: Path, tmp_path: Path
) -> None:
    roads = shared_data / "spacenet" / "pairs" / "OSMroads_img1447.geojson"

    out = render_preview(spacenet_scene, roads, tmp_path / "preview.png", max_size=400)

    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (400, 400, 3)
    drawn = road_pixels(image)
    assert 0.01 < drawn.mean() < 0.3
    assert image[~drawn].std() > 10  # the scene is there under the roads


def test_preview_without_roads_is_the_scene(spacenet_scene: Path, tmp_path: Path) -> None:
    empty = tmp_path / "roads.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')

    image = np.asarray(Image.open(render_preview(spacenet_scene, empty, tmp_path / "p.png")).convert("RGB"))

    assert image.shape == (650, 650, 3)  # not upsampled past the scene's size
    assert not road_pixels(image).any()
