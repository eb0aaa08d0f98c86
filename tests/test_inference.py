"""predict_scene and `roadnet predict` with a real (tiny, untrained) ONNX model on real and made-up scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import rasterio
from click.testing import CliRunner
from conftest import GeoTiffWriter
from rio_cogeo.cogeo import cog_validate

from roadnet.cli import cli
from roadnet.errors import BandCountError, InputError, ModelError, SceneSizeError
from roadnet.options import InferenceOptions
from roadnet.scene import inspect_scene, open_scene, read_rgb
from roadnet.white_fill import white_fill
from roadnet.window_grid import window_starts
from worker.inference.model import choose_providers, load_model
from worker.inference.predict import predict_scene
from worker.inference.sliding_window import predict_array


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _scene_rgb(path: Path) -> np.ndarray:
    info = inspect_scene(path, require_georeference=False, min_side=1)
    with open_scene(info) as src:
        return read_rgb(src, info, 0, info.height)[0]


@pytest.mark.parametrize(
    ("name", "stride"), [("RGB-PanSharpen_img1447.tif", 128), ("RGB-PanSharpen_AOI_2_Vegas_img0.tif", 256)]
)
def test_georeference_preserved_on_spacenet(
    shared_data: Path, tiny_onnx_model: Path, tmp_path: Path, name: str, stride: int
) -> None:
    scene = shared_data / "spacenet" / "pairs" / name
    result = predict_scene(
        scene, tmp_path, model_path=tiny_onnx_model, options=InferenceOptions(stride=stride)
    )
    with rasterio.open(scene) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    for path in (result.mask, result.probability):
        with rasterio.open(path) as out:
            assert out.crs == crs and out.transform == transform and out.shape == shape
            assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and out.overviews(1)
            assert out.nodata == 255 and out.dtypes == ("uint8",)
        is_cog, errors, warnings = cog_validate(path, strict=True)  # rio-cogeo's independent check
        assert is_cog and not errors and not warnings, (errors, warnings)
    assert set(np.unique(_read(result.mask))) <= {0, 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "probability.tif"]


def test_stride_average_matches_brute_force_and_predict_array(
    tiny_onnx_model: Path, write_geotiff: GeoTiffWriter, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 450, 300)).astype(np.uint8)
    scene = write_geotiff(image)
    window, stride = 128, 32
    fractions: list[float] = []
    result = predict_scene(
        scene,
        tmp_path / "out",
        model_path=tiny_onnx_model,
        options=InferenceOptions(window=window, stride=stride, batch_size=4, threshold=0.5),
        progress=fractions.append,
    )
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and result.windows == 12 * 7

    session = ort.InferenceSession(str(tiny_onnx_model), providers=["CPUExecutionProvider"])
    total = np.zeros((450, 300))
    count = np.zeros((450, 300))
    for r in window_starts(450, window, stride):
        for c in window_starts(300, window, stride):
            batch = image[None, :, r : r + window, c : c + window].astype(np.float32)
            total[r : r + window, c : c + window] += session.run(["probability"], {"image": batch})[0][0, 0]
            count[r : r + window, c : c + window] += 1
    reference = total / count
    got = _read(result.probability).astype(np.float64) / 254
    assert np.abs(got - reference).max() <= 0.5 / 254 + 1e-4
    np.testing.assert_array_equal(_read(result.mask), (reference >= 0.5).astype(np.uint8))

    # The streamed scene equals the whole-array predict_array that training's validation uses.
    model = load_model(tiny_onnx_model)
    whole = predict_array(image.astype(np.float32), model.predict, window, stride, batch_size=16)
    np.testing.assert_array_equal(_read(result.probability), np.rint(whole * 254).astype(np.uint8))


def test_nodata_honoured(tiny_onnx_model: Path, write_geotiff: GeoTiffWriter, tmp_path: Path) -> None:
    image = np.full((3, 300, 300), 120, np.uint8)
    image[:, 100:150] = 0
    scene = write_geotiff(image, nodata=0)
    result = predict_scene(scene, tmp_path, model_path=tiny_onnx_model, options=InferenceOptions(stride=128))
    for path in (result.mask, result.probability):
        out = _read(path)
        assert (out[100:150] == 255).all() and (out[:100] != 255).all() and (out[150:] != 255).all()


def test_rgba_alpha_is_nodata(tiny_onnx_model: Path, write_geotiff: GeoTiffWriter, tmp_path: Path) -> None:
    rgba = np.concatenate([np.full((3, 256, 300), 90, np.uint8), np.full((1, 256, 300), 255, np.uint8)])
    rgba[3, :, 250:] = 0
    scene = write_geotiff(rgba, photometric="RGB", alpha="YES")
    result = predict_scene(scene, tmp_path, model_path=tiny_onnx_model)
    mask = _read(result.mask)
    assert (mask[:, 250:] == 255).all() and (mask[:, :250] != 255).all()


def test_white_fill_is_no_data(shared_data: Path, tiny_onnx_model: Path, tmp_path: Path) -> None:
    # A Massachusetts tile: white outside the imagery, with no alpha or nodata saying so. Untaught what
    # white means, a model draws roads there; the worker must read it as no data, as training does.
    # (SpaceNet's Vegas scene, whose bright roofs are not fill, stays all data: the test above.)
    scene = shared_data / "massachusetts" / "tiles" / "images" / "10078660_15.png"
    with rasterio.open(scene) as src:
        fill = white_fill(src.read([1, 2, 3]))
    result = predict_scene(scene, tmp_path, model_path=tiny_onnx_model, options=InferenceOptions(fast=True))
    mask = _read(result.mask)
    assert fill.mean() > 0.2  # the tile's lower third
    # Found on a decimated read of the scene: a thread of white a coarse pixel misses may stay (4 px here).
    assert (mask[fill] == 255).mean() > 0.999
    assert (mask[~fill] != 255).all()


def test_uint16_stretched_before_the_model(
    tiny_onnx_model: Path, write_geotiff: GeoTiffWriter, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    scene = write_geotiff(rng.integers(200, 3000, (3, 256, 320)).astype(np.uint16))
    result = predict_scene(scene, tmp_path, model_path=tiny_onnx_model, options=InferenceOptions(stride=128))
    assert result.scene.stretch is not None
    model = load_model(tiny_onnx_model)
    expected = predict_array(_scene_rgb(scene).astype(np.float32), model.predict, 256, 64)
    np.testing.assert_array_equal(_read(result.probability), np.rint(expected * 254).astype(np.uint8))


def test_jpeg_written_in_pixel_coordinates(shared_data: Path, tiny_onnx_model: Path, tmp_path: Path) -> None:
    scene = shared_data / "deepglobe" / "pairs" / "104_sat.jpg"
    result = predict_scene(scene, tmp_path, model_path=tiny_onnx_model, options=InferenceOptions(fast=True))
    assert result.window == 1024 and result.windows == 1 and "pixel coordinates" in result.scene.warnings[0]
    with rasterio.open(result.mask) as out:
        assert out.crs is None and out.shape == (1024, 1024)


def test_refusals(
    shared_data: Path, tiny_onnx_model: Path, write_geotiff: GeoTiffWriter, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pan = shared_data / "spacenet" / "pairs" / "road_mask_input.tif"
    with pytest.raises(BandCountError, match="single-band"):
        predict_scene(pan, out, model_path=tiny_onnx_model)
    with pytest.raises(SceneSizeError, match="smaller than the model's 256x256 window"):
        predict_scene(write_geotiff(np.zeros((3, 100, 400), np.uint8)), out, model_path=tiny_onnx_model)
    scene = write_geotiff(np.zeros((3, 256, 256), np.uint8), name="ok.tif")
    with pytest.raises(ModelError, match=r"model file .*missing\.onnx does not exist"):
        predict_scene(scene, out, model_path=tmp_path / "missing.onnx")
    with pytest.raises(InputError, match="stride 300 is larger than the window 256"):
        predict_scene(scene, out, model_path=tiny_onnx_model, options=InferenceOptions(stride=300))
    assert not out.exists()


def test_model_session(tiny_onnx_model: Path) -> None:
    model = load_model(tiny_onnx_model, threads=1)
    assert model.provider == choose_providers()[0]  # CPU here; CUDA or TensorRT with onnxruntime-gpu
    assert model.session.get_session_options().enable_cpu_mem_arena is False
    assert model.metadata.window == 256 and model.metadata.stride == 64
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert load_model(tiny_onnx_model, threads=1) is model


def test_cli_predict(spacenet_scene: Path, tiny_onnx_model: Path, tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        ["predict", str(spacenet_scene), "--out", str(tmp_path), "--model", str(tiny_onnx_model), "--fast"],
    )
    assert ok.exit_code == 0, ok.output
    assert "1 windows of 650 px" in ok.output and (tmp_path / "mask.tif").is_file()
    roads = json.loads((tmp_path / "roads.geojson").read_text())
    assert roads["type"] == "FeatureCollection" and "road segments" in ok.output
    pan = shared_data / "spacenet" / "pairs" / "road_mask_input.tif"
    refused = runner.invoke(
        cli, ["predict", str(pan), "--out", str(tmp_path), "--model", str(tiny_onnx_model)]
    )
    assert refused.exit_code == 2 and "needs three bands (red, green, blue)" in refused.output


def test_missing_default_model_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("roadnet.model_files.weights_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match=r"roadnet-risnet\.onnx does not exist; the default model ships"):
        load_model()


@pytest.mark.gpu
def test_gpu_provider_chosen(tiny_onnx_model: Path) -> None:
    # With onnxruntime-gpu installed (README "GPU inference") the session runs on CUDA or TensorRT.
    model = load_model(tiny_onnx_model)
    assert model.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    probability = model.predict(np.zeros((2, 3, 256, 256), np.float32))
    assert probability.shape == (2, 1, 256, 256)
