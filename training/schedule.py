"""The learning rate as a pure function of where training is (section 4.3 of the paper).

Two phases:

- before ``clr_start``: Adam at ``lr``, halved (``plateau_factor``) whenever the validation loss has
  not improved for ``plateau_patience`` epochs. The plateau bookkeeping is a small immutable state
  updated once per epoch by :func:`plateau_step`.
- from ``clr_start``: cyclic learning rate. Each cycle of ``clr_cycle`` epochs anneals from
  ``clr_max_lr`` down to ``clr_min_lr`` along a half cosine, step by step, then jumps back up (the
  snapshot-ensemble schedule of Huang et al., the paper's reference [7]). The snapshot is taken at the
  end of each cycle, where the rate is lowest. Paper config: 2e-4 (the initial rate, high enough to
  leave the current minimum) to 1e-5, cycles of 10 epochs: 5 snapshots in epochs 100-150.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from training.config import TrainConfig


@dataclass(frozen=True)
class PlateauState:
    """The plateau phase's memory: current rate, best validation loss, epochs since it improved."""

    lr: float
    best: float = math.inf
    bad_epochs: int = 0


def plateau_step(state: PlateauState, val_loss: float, config: TrainConfig) -> PlateauState:
    """The state after an epoch that ended with ``val_loss``."""
    if val_loss < state.best:
        return replace(state, best=val_loss, bad_epochs=0)
    if state.bad_epochs + 1 >= config.plateau_patience:
        return replace(state, lr=state.lr * config.plateau_factor, bad_epochs=0)
    return replace(state, bad_epochs=state.bad_epochs + 1)


def learning_rate(epoch: int, fraction: float, plateau: PlateauState, config: TrainConfig) -> float:
    """The rate of the step that ends ``fraction`` (in (0, 1]) of the way through 0-based ``epoch``.

    The last step of a cycle (``fraction`` 1 in its last epoch) gets exactly ``clr_min_lr``, so the
    snapshot taken after it is at the cycle's lowest rate.
    """
    if epoch < config.clr_start:
        return plateau.lr
    position = ((epoch - config.clr_start) + fraction) / config.clr_cycle
    within = position - math.ceil(position) + 1  # (0, 1]: a cycle's end is 1, not the next one's 0
    return config.clr_min_lr + (config.clr_max_lr - config.clr_min_lr) * (1 + math.cos(math.pi * within)) / 2


def is_snapshot_epoch(epoch: int, config: TrainConfig) -> bool:
    """Whether 0-based ``epoch`` ends a cycle (the rate is at its lowest): keep a snapshot."""
    return epoch >= config.clr_start and (epoch - config.clr_start + 1) % config.clr_cycle == 0
