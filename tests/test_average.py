"""Weight averaging of exported models (``training/average.py``, ``roadnet average``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from roadnet.cli import cli
from roadnet.errors import InputError, ModelError
from roadnet.model_metadata import ModelMetadata
from training.average import average_models
from training.evaluate import onnx_predictor
from training.onnx_metadata import read_metadata


def _export(out: Path, seed: int, width: float = 0.0625, threshold: float = 0.5, gsd_m: float = 0.5) -> Path:
    import torch

    from models import create_model
    from training.export import export_onnx

    torch.manual_seed(seed)
    model = create_model("risnet", width=width).eval()
    metadata = ModelMetadata(
        arch="risnet",
        mean=[100.0, 100.0, 100.0],
        std=[50.0, 50.0, 50.0],
        threshold=threshold,
        model_kwargs={"width": width},
        provenance={"seed": seed},
        gsd_m=gsd_m,
    )
    return export_onnx(model, metadata, out)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("average")
    return _export(folder / "a.onnx", 1, threshold=0.3, gsd_m=0.3), _export(folder / "b.onnx", 2, gsd_m=0.5)


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _predict(path: Path, batch: np.ndarray) -> np.ndarray:
    predict, _ = onnx_predictor(path, threads=1)
    return predict(batch)


def test_every_weight_is_the_weighted_mean(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_models
    metadata = average_models([a, b], tmp_path / "soup.onnx", weights=[3, 1])
    wa, wb, soup = _weights(a), _weights(b), _weights(tmp_path / "soup.onnx")
    floats = [name for name in soup if soup[name].dtype == np.float32 and soup[name].size > 3]
    assert floats and all(np.allclose(soup[n], 0.75 * wa[n] + 0.25 * wb[n], atol=1e-6) for n in floats)
    assert metadata == read_metadata(tmp_path / "soup.onnx")
    assert metadata.threshold == pytest.approx(0.75 * 0.3 + 0.25 * 0.5)
    assert metadata.gsd_m == pytest.approx(0.35)
    assert [m["provenance"] for m in metadata.provenance["averaged"]] == [{"seed": 1}, {"seed": 2}]


def test_all_weight_on_one_model_predicts_as_it(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_models
    average_models([a, b], tmp_path / "a-only.onnx", weights=[1, 0], threshold=0.4)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(_predict(tmp_path / "a-only.onnx", batch), _predict(a, batch), atol=1e-6)
    assert read_metadata(tmp_path / "a-only.onnx").threshold == 0.4


def test_different_networks_are_refused(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    wider = _export(tmp_path / "wider.onnx", 3, width=0.125)
    with pytest.raises(ModelError, match=r"differs from .* in model_kwargs"):
        average_models([two_models[0], wider], tmp_path / "soup.onnx")
    with pytest.raises(InputError, match="at least two models"):
        average_models([two_models[0]], tmp_path / "soup.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(ModelError, match=f"{text} is not an ONNX model"):
        average_models([two_models[0], text], tmp_path / "soup.onnx")
    assert not (tmp_path / "soup.onnx").exists()


def test_average_command(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_models
    out = tmp_path / "soup.onnx"
    result = CliRunner().invoke(cli, ["average", str(a), str(b), "--out", str(out), "--threshold", "0.45"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (risnet, threshold 0.45)" in result.output
    result = CliRunner().invoke(cli, ["average", str(a), str(b), "--out", str(out), "--weight", "1"])
    assert result.exit_code == 2
    assert "give one non-negative weight per model (2), not [1.0]" in result.output
    result = CliRunner().invoke(cli, ["average", str(a), str(b), "--out", str(out), "--threshold", "5"])
    assert result.exit_code == 2
    assert "Invalid value for '--threshold': 5.0 is not in the range 0<x<1" in result.output
