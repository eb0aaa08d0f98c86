"""The three networks: shapes, range, gradients, determinism, ONNX export; one subclass per architecture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from models import ARCHITECTURES, UnknownArchitectureError, create_model
from roadnet.cli import cli
from roadnet.errors import InputError, MissingDependencyError

ODD_SIZE = (100, 147)  # a multiple of no network's stride


def _calibrated(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with batch-norm statistics from one batch, as after training.

    An untrained model's running statistics (mean 0, variance 1) let activations grow layer after layer
    in eval mode, which is not what an exported model computes.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    return model.eval()


class ArchitectureContract:
    """What every architecture must do; subclasses set ``arch`` and a small ``width`` for CPU tests."""

    arch: str
    width: float

    @pytest.fixture
    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return create_model(self.arch, width=self.width)

    @pytest.mark.parametrize("size", [(256, 256), ODD_SIZE])
    def test_output_shape_and_range(self, model: nn.Module, size: tuple[int, int]) -> None:
        for mode in (True, False):
            model.train(mode)
            with torch.no_grad():
                out = model(torch.randn(1, 3, *size))
            assert out.shape == (1, 1, *size)
            assert out.min() >= 0 and out.max() <= 1

    def test_backward_reaches_every_parameter(self, model: nn.Module) -> None:
        # Two steps: DeepLab's residual blocks start as identities (zero last BN scale), so their first
        # convolution gets a gradient from the second step on.
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
        image, target = torch.randn(2, 3, *ODD_SIZE), (torch.rand(2, 1, *ODD_SIZE) > 0.9).float()
        for _ in range(2):
            optimizer.zero_grad()
            out = model(image)
            loss = 1 - 2 * (out * target).sum() / (out.sum() + target.sum() + 1)  # the paper's dice loss
            loss.backward()
            optimizer.step()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().sum() > 0, name

    def test_eval_mode_is_deterministic(self, model: nn.Module) -> None:
        model = _calibrated(model)
        image = torch.randn(1, 3, *ODD_SIZE)
        with torch.no_grad():
            assert torch.equal(model(image), model(image))

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter, as training uses
    def test_onnx_export_has_dynamic_batch_and_size(self, model: nn.Module, tmp_path: Path) -> None:
        model = _calibrated(model)
        path = tmp_path / f"{self.arch}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model,
                (torch.randn(1, 3, 64, 64),),
                str(path),
                input_names=["image"],
                output_names=["probability"],
                dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "probability": {0: "N", 2: "H", 3: "W"}},
                opset_version=17,
                dynamo=False,
            )
        image = torch.randn(3, 3, *ODD_SIZE)
        with torch.no_grad():
            expected = model(image).numpy()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (actual,) = session.run(["probability"], {"image": image.numpy()})
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4)


class TestUNet(ArchitectureContract):
    arch, width = "unet", 0.125


class TestDeepLab(ArchitectureContract):
    arch, width = "deeplab", 0.25


class TestRISNet(ArchitectureContract):
    arch, width = "risnet", 0.25


def test_every_architecture_has_a_test_class() -> None:
    tested = {cls.arch for cls in ArchitectureContract.__subclasses__()}
    assert tested == set(ARCHITECTURES)


def test_unknown_architecture_lists_the_choices() -> None:
    with pytest.raises(KeyError, match="unknown architecture 'resnet'; choose one of: unet, deeplab, risnet"):
        create_model("resnet")
    assert issubclass(UnknownArchitectureError, InputError)


def test_create_model_without_torch_names_the_train_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail as if not installed
    monkeypatch.delitem(sys.modules, "models.unet", raising=False)
    with pytest.raises(MissingDependencyError, match=r"roadnet\[train\]"):
        create_model("unet")


def _convs(module: nn.Module, kernel_size: tuple[int, int]) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == kernel_size]


def test_paper_size_unet_has_128_maps_and_5_downsamplings() -> None:
    model = create_model("unet")
    assert {conv.out_channels for conv in _convs(model, (3, 3))} == {128}
    assert model.stride == 32
    assert len(model.encoder) == 6  # full resolution and five pooled stages


def test_paper_size_deeplab_has_55_3x3_convs_to_one_eighth() -> None:
    model = create_model("deeplab")
    encoder = _convs(model.encoder, (3, 3))
    assert len(encoder) == 55
    assert sorted({conv.out_channels for conv in encoder}) == [16, 32, 64, 128]
    assert model.stride == 8
    assert [m.out_channels for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)] == [
        64,
        32,
        16,
    ]


def test_paper_size_risnet_factorises_every_3x3() -> None:
    model = create_model("risnet")
    assert _convs(model, (3, 1)) and len(_convs(model, (3, 1))) == len(_convs(model, (1, 3)))
    square = _convs(model, (3, 3))
    assert square and all(conv.stride == (2, 2) for conv in square)  # only the downsamplings are 3x3


def test_models_command_prints_every_architecture() -> None:
    result = CliRunner().invoke(cli, ["models", "--width", "0.125", "--window", "64"])
    assert result.exit_code == 0, result.output
    for arch in ARCHITECTURES:
        assert arch in result.output
    assert "2 x multiply-accumulates" in result.output


def test_models_command_without_torch_names_the_train_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail as if not installed
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 2
    assert "pip install 'roadnet[train]'" in result.output
