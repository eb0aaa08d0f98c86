"""The preview PNGs: the SpaceNet Paris tile with its roads drawn over it, and a road mask on its grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from PIL import Image
from pyproj import Transformer

from roadnet.outputs import MASK_COLOUR
from roadnet.scene import SceneInfo, inspect_scene
from worker.runner.preview import ROAD_COLOUR, render_mask_preview, render_preview
from worker.vector.apls import read_lines


def road_pixels(image: np.ndarray) -> np.ndarray:
    return np.all(image == ROAD_COLOUR, axis=-1)


def _scene(path: Path) -> SceneInfo:
    return inspect_scene(path, require_georeference=False, min_side=1)


def _pixel_lines(roads: Path, scene: SceneInfo) -> list[np.ndarray]:
    """The lon/lat lines of ``roads`` in ``scene``'s pixel grid, as the vectoriser hands them over."""
    to_pixel = ~Affine(*scene.transform)
    to_scene = Transformer.from_crs("EPSG:4326", scene.crs, always_xy=True)
    lines = []
    for line in read_lines(roads):
        x, y = to_pixel @ to_scene.transform(*shapely.get_coordinates(line).T)
        lines.append(np.column_stack([x, y]))
    return lines


def test_preview_draws_the_roads_over_the_scene(
    spacenet_scene: Path, shared_data: Path, tmp_path: Path
) -> None:
    roads = shared_data / "spacenet" / "pairs" / "OSMroads_img1447.geojson"

    scene = _scene(spacenet_scene)
    out = render_preview(scene, _pixel_lines(roads, scene), tmp_path / "preview.png", max_size=400)

    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (400, 400, 3)
    drawn = road_pixels(image)
    assert 0.01 < drawn.mean() < 0.3
    assert image[~drawn].std() > 10  # the scene is there under the roads


def test_preview_without_roads_is_the_scene(spacenet_scene: Path, tmp_path: Path) -> None:
    image = np.asarray(
        Image.open(render_preview(_scene(spacenet_scene), [], tmp_path / "p.png")).convert("RGB")
    )

    assert image.shape == (650, 650, 3)  # not upsampled past the scene's size
    assert not road_pixels(image).any()


def _mask_on_the_scene_grid(scene: Path, out: Path) -> Path:
    """A mask as inference writes it (uint8: 1 road, 0 background, 255 no data) on ``scene``'s grid: one
    road 10 pixels wide across rows 300-309, and no data over the first 100 rows."""
    with rasterio.open(scene) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "nodata": 255}  # fmt: skip
        mask = np.zeros((src.height, src.width), dtype=np.uint8)
    mask[300:310] = 1
    mask[:100] = 255
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mask, 1)
    return out


def test_mask_preview_is_the_mask_over_transparency_at_the_preview_size(
    spacenet_scene: Path, tmp_path: Path
) -> None:
    mask = _mask_on_the_scene_grid(spacenet_scene, tmp_path / "mask.tif")
    scene = _scene(spacenet_scene)

    for max_size in (2048, 400):  # full size, and downsampled as the scene preview is
        out = render_mask_preview(mask, tmp_path / f"mask-{max_size}.png", max_size=max_size)
        preview = Image.open(render_preview(scene, [], tmp_path / f"p-{max_size}.png", max_size))
        image = Image.open(out)
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.size == preview.size
        rgba = np.asarray(image)
        road_rows = np.flatnonzero(rgba[..., 3].any(axis=1))
        scale = image.height / 650
        assert road_rows.min() == pytest.approx(300 * scale, abs=1)
        assert road_rows.max() == pytest.approx(309 * scale, abs=1)
        roads = rgba[road_rows]
        assert (roads == MASK_COLOUR).all()  # opaque road colour across the scene's width
        assert (np.delete(rgba, road_rows, axis=0)[..., 3] == 0).all()  # background and no data: transparent
