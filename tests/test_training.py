"""Training: export, data, loss, schedule, ensembling, and the train -> export -> evaluate chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from roadnet.errors import ModelError
from roadnet.model_metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from training.export import export_onnx

torch.set_num_threads(1)


class _SizeSensitive(nn.Module):
    """Right at the traced size only: a branch on the input width is baked in by tracing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.sigmoid(self.conv(x))
        return out if x.shape[-1] == 256 else 1 - out


def test_export_writes_metadata_and_normalises_inside(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.Sigmoid())
    metadata = ModelMetadata(arch="test", mean=[10.0, 20.0, 30.0], std=[2.0, 3.0, 4.0], threshold=0.4)
    path = export_onnx(model, metadata, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert ModelMetadata.from_props(props) == metadata
    image = np.full((1, 3, 40, 50), 100.0, np.float32)
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
    mean = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    std = torch.tensor([2.0, 3.0, 4.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((torch.from_numpy(image) - mean) / std).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_export_fails_loudly_when_onnx_differs(tmp_path: Path) -> None:
    metadata = ModelMetadata(arch="test", mean=[0.0] * 3, std=[1.0] * 3)
    with pytest.raises(ModelError, match="differs from PyTorch"):
        export_onnx(_SizeSensitive(), metadata, tmp_path / "m.onnx")


def test_tiny_onnx_model_fixture(tiny_onnx_model: Path) -> None:
    session = ort.InferenceSession(str(tiny_onnx_model), providers=["CPUExecutionProvider"])
    assert ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map).arch == "risnet"
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((2, 3, 64, 96), np.float32)})
    assert out.shape == (2, 1, 64, 96)
    assert out.min() >= 0 and out.max() <= 1
