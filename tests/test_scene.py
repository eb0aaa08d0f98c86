"""Scene validation and 8-bit reading: real SpaceNet and DeepGlobe files, synthetic ones for the rest."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import GeoTiffWriter

from roadnet.errors import BandCountError, NotGeoreferencedError, SceneSizeError, UnreadableRasterError
from roadnet.scene import inspect_scene, open_scene, read_rgb


def _read_all(path: Path) -> tuple[np.ndarray, np.ndarray]:
    info = inspect_scene(path, require_georeference=False)
    with open_scene(info) as src:
        return read_rgb(src, info, 0, info.height)


def test_spacenet_paris_rgb(spacenet_scene: Path) -> None:
    info = inspect_scene(spacenet_scene, require_georeference=True)
    assert (info.width, info.height, info.count, info.bands) == (650, 650, 3, (1, 2, 3))
    assert info.georeferenced and "WGS 84" in (info.crs or "")
    assert info.stretch is None and not info.has_mask and info.warnings == ()


def test_spacenet_vegas_rgba_uses_rgb_and_alpha(shared_data: Path) -> None:
    path = shared_data / "spacenet" / "pairs" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    info = inspect_scene(path, require_georeference=True)
    assert (info.width, info.height, info.count, info.bands, info.has_mask) == (
        1300,
        1300,
        4,
        (1, 2, 3),
        True,
    )


def test_panchromatic_uint16_refused(shared_data: Path) -> None:
    path = shared_data / "spacenet" / "pairs" / "road_mask_input.tif"
    with pytest.raises(BandCountError, match=r"single-band .* needs three bands"):
        inspect_scene(path, require_georeference=False)


def test_jpeg_accepted_with_warning_or_refused_when_georeference_required(shared_data: Path) -> None:
    path = shared_data / "deepglobe" / "pairs" / "104_sat.jpg"
    info = inspect_scene(path, require_georeference=False)
    assert not info.georeferenced and "pixel coordinates" in info.warnings[0]
    with pytest.raises(NotGeoreferencedError, match="no coordinate reference system"):
        inspect_scene(path, require_georeference=True)


def test_truncated_zero_and_not_a_raster(spacenet_scene: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(spacenet_scene.read_bytes()[:600_000])
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    text = tmp_path / "notes.tif"
    text.write_text("not an image\n")
    with pytest.raises(UnreadableRasterError, match=r"truncated or corrupt: .*TIFFReadEncodedStrip"):
        inspect_scene(truncated, require_georeference=False)
    with pytest.raises(UnreadableRasterError, match=r"empty \(0 bytes\)"):
        inspect_scene(empty, require_georeference=False)
    with pytest.raises(UnreadableRasterError, match="not recognized as being in a supported file format"):
        inspect_scene(text, require_georeference=False)


def test_too_small_and_too_large(write_geotiff: GeoTiffWriter) -> None:
    path = write_geotiff(np.zeros((3, 200, 300), np.uint8))
    with pytest.raises(SceneSizeError, match=r"200 pixels|300x200 pixels, smaller than the model's 256x256"):
        inspect_scene(path, require_georeference=True)
    with pytest.raises(SceneSizeError, match="more than the limit of 1,000"):
        inspect_scene(path, require_georeference=True, min_side=64, max_pixels=1000)


def test_band_order(write_geotiff: GeoTiffWriter) -> None:
    image = np.stack([np.full((256, 256), v, np.uint8) for v in (10, 20, 30, 40)])
    path = write_geotiff(image)
    info = inspect_scene(path, require_georeference=True, bands=(3, 2, 1))
    with open_scene(info) as src:
        rgb, _ = read_rgb(src, info, 0, 256)
    assert rgb[:, 0, 0].tolist() == [30, 20, 10]
    with pytest.raises(BandCountError, match=r"band order \(1, 2, 5\)"):
        inspect_scene(path, require_georeference=True, bands=(1, 2, 5))


def test_uint16_stretched_by_percentiles(write_geotiff: GeoTiffWriter) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, (3, 300, 300)).astype(np.uint16)
    info = inspect_scene(write_geotiff(image), require_georeference=True)
    assert info.stretch is not None and info.dtype == "uint16"
    low, high = info.stretch[0]
    assert 100 <= low < 300 and 3800 < high <= 4000
    rgb, valid = _read_all(info.path)
    assert rgb.dtype == np.uint8 and valid.all()
    expected = np.clip((image[0].astype(np.float64) - low) * 255 / (high - low), 0, 255)
    assert np.abs(rgb[0] - expected).max() <= 1.0
    # The stretch is one rule per scene: the same pixel reads the same in any block.
    with open_scene(info) as src:
        part, _ = read_rgb(src, info, 100, 164)
    np.testing.assert_array_equal(part, rgb[:, 100:164])


def test_nodata_and_alpha_masked(write_geotiff: GeoTiffWriter) -> None:
    image = np.full((3, 256, 256), 80, np.uint8)
    image[:, :50] = 0
    image[0, 60, 60] = 0  # one band at the nodata value is still a valid pixel
    rgb, valid = _read_all(write_geotiff(image, nodata=0))
    assert not valid[:50].any() and valid[50:].all()

    rgba = np.concatenate([np.full((3, 256, 256), 90, np.uint8), np.full((1, 256, 256), 255, np.uint8)])
    rgba[3, :, :30] = 0
    path = write_geotiff(rgba, name="rgba.tif", photometric="RGB", alpha="YES")
    rgb, valid = _read_all(path)
    assert not valid[:, :30].any() and valid[:, 30:].all()
    assert (rgb[:, :, :30] == 0).all() and (rgb[:, :, 30:] == 90).all()


def test_png_copy_is_read(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "tile.png"
    shutil.copy(shared_data / "deepglobe" / "crops" / "951_0_0_sat.png", path)
    rgb, valid = _read_all(path)
    assert rgb.shape == (3, 512, 512) and valid.all()
