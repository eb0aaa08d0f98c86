"""Start a run from an exported model: its ONNX weights back into the PyTorch network.

The ONNX exporter folds each eval-mode batch norm into the convolution before it (``W' = W γ/σ``,
``b' = β - μ γ/σ``), so the original BN parameters are gone. What is recoverable is the function the
model computes, and that is what a warm start needs: each folded convolution gets ``W'``, and its batch
norm is set from one batch of training patches, so that it outputs ``W'x + b'`` both with batch
statistics (training) on that batch and with running statistics (eval): ``γ = sqrt(var + eps)``,
``β = mean + b'``, running mean and variance = those of the convolution's output. A forward pre-hook on
every such batch norm does it in one pass, in order, so each layer sees the inputs the exported model
would have given it. Unfolded parameters (named as in PyTorch) are copied as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from roadnet.errors import ModelError


def _module_path(node_name: str) -> str:
    """``/model/stem/branches.0/branches.0.0/Conv`` -> ``stem.branches.0.0`` (inside ``Normalized.model``).

    Each scope of the exporter's node names extends its parent's dotted name, so the last of a run of
    extensions is the full path below the parent scope.
    """
    path: list[str] = []
    for part in node_name.strip("/").split("/")[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    if not path or path[0] != "model":
        raise ModelError(f"unexpected ONNX node name {node_name!r}: not inside the exported model")
    return ".".join(path[1:])


def warm_start(net: nn.Module, onnx_path: Path, batch: torch.Tensor) -> None:
    """Load ``onnx_path``'s weights into ``net`` (the bare network, same arch and kwargs); ``batch`` is
    normalised input ``(N, 3, P, P)`` used to set the folded batch norms (see the module docstring)."""
    graph = onnx.load(str(onnx_path)).graph
    initializers = {
        init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer
    }
    modules = dict(net.named_modules())
    state = net.state_dict()
    loaded: set[str] = set()
    folded_bias: dict[nn.Module, torch.Tensor] = {}
    for name, value in initializers.items():  # unfolded parameters keep their PyTorch names
        key = name.removeprefix("model.")
        if key in state and state[key].shape == value.shape:
            state[key].copy_(value)
            loaded.add(key)
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in initializers or node.input[1].startswith("model."):
            continue
        path = _module_path(node.name)
        conv = modules.get(path)
        parent_path, _, index = path.rpartition(".")
        parent = modules.get(parent_path)
        if not isinstance(conv, nn.Conv2d) or not isinstance(parent, nn.Sequential):
            raise ModelError(f"{onnx_path}: node {node.name} has no matching convolution in the network")
        bn = parent[int(index) + 1]
        weight = initializers[node.input[1]]
        if not isinstance(bn, nn.BatchNorm2d) or weight.shape != conv.weight.shape:
            raise ModelError(
                f"{onnx_path}: node {node.name} does not match {path} ({tuple(conv.weight.shape)})"
            )
        conv.weight.data.copy_(weight)
        folded_bias[bn] = initializers[node.input[2]] if len(node.input) > 2 else torch.zeros(weight.shape[0])
        loaded.add(f"{path}.weight")
        loaded.update(f"{parent_path}.{int(index) + 1}.{p}" for p in ("weight", "bias"))
    net.load_state_dict(state)
    missing = [k for k, v in net.named_parameters() if k not in loaded]
    if missing:
        raise ModelError(f"{onnx_path} holds no weights for {missing[:5]} ({len(missing)} in all)")

    def match_folded(bn: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(bn, nn.BatchNorm2d)
        assert bn.running_mean is not None and bn.running_var is not None
        mean = inputs[0].mean(dim=(0, 2, 3))
        var = inputs[0].var(dim=(0, 2, 3), unbiased=False)
        bn.weight.data.copy_(torch.sqrt(var + bn.eps))
        bn.bias.data.copy_(mean + folded_bias[bn])
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

    # In eval mode: no dropout and no running-statistics updates, so every layer sees the activations the
    # exported model computes and the unfolded batch norms keep the exported statistics.
    hooks = [bn.register_forward_pre_hook(match_folded) for bn in folded_bias]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(batch)
    for hook in hooks:
        hook.remove()
    net.train(was_training)


def onnx_normalisation(onnx_path: Path) -> tuple[list[float], list[float]]:
    """The ``mean`` and ``std`` an exported model normalises its input with (inside its graph)."""
    values = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(onnx_path)).graph.initializer}
    return [float(v) for v in np.ravel(values["mean"])], [float(v) for v in np.ravel(values["std"])]
