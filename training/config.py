"""The training configuration: one dataclass, read from YAML; every count of the recipe lives here.

``paper.yaml`` holds the paper's values (sections 4-5); shorter runs change the counts, not the code, so
they pass through the same phases: plateau halving, then cyclic learning rate with snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from roadnet.errors import InputError


@dataclass
class TrainConfig:
    """Everything a run needs besides the data folders and the output folder."""

    # model
    arch: str = "risnet"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"width": 1.0})
    # data
    patch: int = 256
    val_fraction: float = 0.15
    seed: int = 0
    augment_p: float = 0.1
    jitter: float = 0.1  # brightness, contrast and saturation change, up to (the paper: 10 %)
    dihedral: bool = False  # random flips and quarter turns of every patch (not in the paper)
    batch_size: int = 16
    patches_per_epoch: int = 0  # random patches per epoch; 0: as many as the training images' 256 grid holds
    set_weights: dict[str, float] = field(default_factory=dict)  # chance of drawing each set; unnamed: 1
    scale_range: tuple[float, float] = (1.0, 1.0)  # crop side / patch side, log-uniform (multi-scale)
    min_val: int = 1  # validation images per set, at least, once it has 3x as many
    val_keys: list[str] = field(default_factory=list)  # images always in validation (dataset/id)
    init_from: str = ""  # an exported .onnx to start from (same arch and kwargs); its normalisation is kept
    workers: int = 4
    preload_images: bool = True  # decode every image once into memory; false for DeepGlobe-sized data
    # loss and optimiser (paper: dice, Adam 2e-4, betas 0.9/0.999, no weight decay)
    loss: str = "dice"  # "dice" (eq. 3, eps 1) or "bce"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    # schedule (paper: 150 epochs, halve after 10 epochs without val-loss improvement, CLR from 100)
    epochs: int = 150
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    clr_start: int = 100
    clr_cycle: int = 10
    clr_max_lr: float = 2e-4
    clr_min_lr: float = 1e-5
    # ensembling
    ema_decay: float = 0.999
    bn_batches: int = 50  # batches of training patches to recompute BN statistics after averaging
    export_ensemble: str = "swa_ema"  # raw | ema | swa | swa_ema (average of the snapshots' EMA weights)
    # validation
    val_every: int = 1  # validate raw and EMA weights every this many epochs and at the last one
    final_scores: list[str] = field(default_factory=lambda: ["single", "ema", "swa", "swa_ema"])  # Table 1
    window: int = 256
    val_stride: int = 64
    val_batch_size: int = 16
    threshold: float = 0.5
    threads: int = 0  # torch CPU threads; 0: leave torch's default
    amp: bool = False  # mixed precision: bfloat16 autocast (CUDA and CPU)
    channels_last: bool = False  # NHWC memory format (faster convolutions on tensor-core GPUs)

    @classmethod
    def from_yaml(cls, path: Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read ``path``, then apply ``KEY=VALUE`` overrides (values in YAML syntax, e.g. ``arch=unet``,
        ``model_kwargs={width: 0.25}``); unknown keys are an error naming the known ones."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        for override in overrides:
            key, sep, value = override.partition("=")
            if not sep:
                raise InputError(f"override {override!r} is not KEY=VALUE")
            data[key.strip()] = yaml.safe_load(value)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict (a checkpoint's ``config``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown config keys {sorted(unknown)}; known keys: {', '.join(sorted(known))}")
        for key in ("betas", "scale_range"):
            if key in data:
                data = {**data, key: tuple(data[key])}
        config = cls(**data)
        if config.loss not in {"dice", "bce"}:
            raise InputError(f"loss must be 'dice' or 'bce', got {config.loss!r}")
        if config.export_ensemble not in {"raw", "ema", "swa", "swa_ema"}:
            raise InputError(
                f"export_ensemble must be raw, ema, swa or swa_ema, got {config.export_ensemble!r}"
            )
        return config

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON/checkpoint friendly)."""
        data = asdict(self)
        data["betas"] = list(self.betas)
        data["scale_range"] = list(self.scale_range)
        return data
