"""Export a trained network to ONNX with its normalisation inside the graph and roadnet metadata.

The exported graph takes raw 0-255 RGB ``image`` ``(N, 3, H, W)`` float32 and returns ``probability``
``(N, 1, H, W)``, so the worker never needs to know how the network was normalised (the contract in
``roadnet/model_metadata.py``). Export then runs the file in ONNX Runtime and compares it with PyTorch
on a random input of a size other than the traced one, so a shape baked in at trace time fails here
rather than in the service.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from roadnet.errors import ModelError
from roadnet.model_metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from training.onnx_metadata import write_metadata

OPSET = 17
# The TorchScript exporter, not the dynamo-based one (``dynamo=True``). Measured with torch 2.13,
# onnxscript 0.7.2, onnx 1.23 and ONNX Runtime 1.32 on RISNet, U-Net and DeepLab at 200x328, 256x256 and
# 64x96, the dynamo graphs give the same outputs (max |dynamo - TorchScript| 0.0 in ONNX Runtime; max
# |ONNX - PyTorch| 9.5e-7 for both), but (1) it cannot write opset 17 (no Pad adapter: it writes opset
# 18, IR 10); (2) its file does not warm-start (``training.warm_start`` finds no weights for 205 of the
# tiny RISNet's tensors: BN is not folded into the convolutions as the TorchScript exporter folds it);
# (3) a size-dependent branch fails inside torch.export instead of in the parity check below; (4) it
# takes 33-123 s against 1-5 s on two busy cores, and needs onnxscript. Revisit when warm_start reads
# its graphs.
# float32 convolutions in two runtimes differ by ~1e-6; a real mismatch (wrong op, baked shape) is far
# larger than this.
ATOL = 1e-4


class Normalized(nn.Module):
    """``model`` behind a per-channel ``(x - mean) / std`` of raw 0-255 input."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model((image - self.mean) / self.std)


def export_onnx(
    model: nn.Module, metadata: ModelMetadata, path: Path | str, *, check_size: tuple[int, int] = (200, 328)
) -> Path:
    """Write ``model`` (normalised by ``metadata.mean``/``std``) to ``path`` as ONNX; return the path.

    Batch, height and width are dynamic. ``metadata`` goes into the file's ``metadata_props``. Raises
    :class:`ModelError` when ONNX Runtime's output differs from PyTorch's on a random
    ``check_size`` input (deliberately not the traced window size).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = Normalized(copy.deepcopy(model).cpu().float(), metadata.mean, metadata.std).eval()
    window = metadata.window
    example = torch.rand(1, 3, window, window) * 255
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N", 2: "H", 3: "W"}, OUTPUT_NAME: {0: "N", 2: "H", 3: "W"}},
            opset_version=OPSET,
            dynamo=False,  # TorchScript exporter, deliberately: see the note at OPSET
        )
    write_metadata(path, metadata)
    _check_against_torch(wrapped, path, check_size)
    return path


def _check_against_torch(wrapped: nn.Module, path: Path, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = wrapped(torch.from_numpy(image)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
    if actual.shape != expected.shape:
        raise ModelError(
            f"exported model {path} returns shape {actual.shape} for input {image.shape}, PyTorch "
            f"{expected.shape}: the export baked in a size; fix the model's padding code and export again"
        )
    worst = float(np.abs(actual - expected).max())
    if worst > ATOL:
        raise ModelError(
            f"exported model {path} differs from PyTorch by up to {worst:.2e} (tolerance {ATOL:.0e}); "
            "an operator exports wrongly, fix the model or the export and export again"
        )
