"""The paper's three ensembles (section 5): EMA of weights, cyclic snapshot averaging, prediction averaging.

- :func:`ema_model`: an exponential moving average of parameters and BN statistics, updated every step.
- :func:`average_weights`: the mean of several state dicts (the low-lr snapshots), after which
  :func:`recompute_bn` re-estimates batch-norm statistics on training patches, since averaged weights
  do not match any snapshot's running statistics.
- :class:`MeanOfModels`: averages several models' probabilities; exportable as one ONNX graph.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (buffers included); call ``.update_parameters(model)`` after each step."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of ``states`` (integer buffers such as BN's counters: from the last)."""
    if not states:
        raise ValueError("no weights to average")
    averaged = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            averaged[key] = torch.stack([state[key].float() for state in states]).mean(0).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged


def recompute_bn(
    model: nn.Module,
    batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]],
    device: torch.device | None = None,
) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/var on ``batches`` (cumulative average), in place.

    torch's :func:`~torch.optim.swa_utils.update_bn` does it: running statistics reset, momentum None
    (a cumulative average), train mode for the pass, each norm's momentum and the model's mode restored
    after. ``batches`` may be a loader's ``(images, masks)`` pairs: the images are used, on ``device``.
    """
    update_bn(batches, model, device)
    return model


class MeanOfModels(nn.Module):
    """Prediction averaging: the mean probability of ``models`` (each maps the same input to (N,1,H,W))."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / AveragedModel wrappers, as a detached copy."""
    while isinstance(inner := getattr(model, "module", None), nn.Module):
        model = inner
    return copy.deepcopy(model)
