"""Rebuild a trained network from a run folder or checkpoint, as the ensemble the config asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import create_model
from roadnet.errors import ModelError
from roadnet.model_metadata import ModelMetadata
from training.config import TrainConfig
from training.data import training_gsd
from training.ensemble import MeanOfModels
from training.export import Normalized

ENSEMBLES = ("raw", "ema", "swa", "swa_ema")


def load_checkpoint(path: Path) -> tuple[dict[str, Any], Path]:
    """The checkpoint dict of a run folder (``final.pt``, else ``last.pt``) or of a ``.pt`` file."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "final.pt", path / "last.pt"]
        path = next((p for p in candidates if p.is_file()), candidates[-1])
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}; train a run first with `roadnet train`")
    return torch.load(path, map_location="cpu", weights_only=False), path


def model_from_checkpoint(path: Path, ensemble: str | None = None) -> tuple[Normalized, ModelMetadata]:
    """The network (normalisation included, eval mode) and its export metadata.

    ``ensemble`` (default: the config's ``export_ensemble``): ``raw`` weights, ``ema``, ``swa`` (the
    average of the cyclic-lr snapshots, BN recomputed) or ``swa_ema`` (the same over the snapshots' EMA
    weights). A run without snapshots (shorter than ``clr_start``, or unfinished) falls back to ``ema``,
    and the metadata's provenance says so.
    """
    checkpoint, file = load_checkpoint(path)
    config = checkpoint["config"]
    wanted = ensemble or config.get("export_ensemble", "ema")
    if wanted not in ENSEMBLES:
        raise ModelError(f"unknown ensemble {wanted!r}; choose one of: {', '.join(ENSEMBLES)}")
    # final.pt holds raw/ema/swa/swa_ema; last.pt (an unfinished run) holds model (raw) and ema.
    keys = {"raw": "raw" if "raw" in checkpoint else "model"}
    used = wanted if keys.get(wanted, wanted) in checkpoint else "ema"
    state = checkpoint[keys.get(used, used)]
    net = create_model(checkpoint["arch"], **checkpoint["model_kwargs"])
    net.load_state_dict(state)
    model = Normalized(net, checkpoint["mean"], checkpoint["std"]).eval()
    scores = checkpoint.get("scores", {}).get({"raw": "single"}.get(used, used))
    provenance = {
        "checkpoint": str(file.resolve()),
        "ensemble": used,
        "ensemble_requested": wanted,
        "snapshots": checkpoint.get("snapshots", []),
        "step": checkpoint.get("step"),
        "epochs": config.get("epochs"),
        "config": config,
        "validation": scores,
        "validation_images": len(checkpoint.get("split", {}).get("val", [])) or None,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    metadata = ModelMetadata(
        arch=checkpoint["arch"],
        mean=list(checkpoint["mean"]),
        std=list(checkpoint["std"]),
        window=int(config.get("window", 256)),
        stride=64,  # the paper's inference stride, whatever validation used during training
        # final.pt: the threshold that maximised this ensemble's validation mIoU
        threshold=float((scores or {}).get("best_threshold", config.get("threshold", 0.5))),
        model_kwargs=dict(checkpoint["model_kwargs"]),
        provenance=provenance,
        gsd_m=training_gsd(TrainConfig.from_dict(config)),
    )
    return model, metadata


def mean_of_checkpoints(paths: list[Path], ensemble: str | None = None) -> tuple[nn.Module, ModelMetadata]:
    """Prediction averaging (paper section 5): one network averaging the probabilities of ``paths``.

    A single path gives that run's network without its normalisation (``export_onnx`` adds it). Several
    runs keep each its own normalisation inside the averaged network, so the combined metadata's
    mean/std are the identity and each member's are recorded in ``provenance["members"]``; the
    threshold is the members' mean.
    """
    loaded = [model_from_checkpoint(path, ensemble) for path in paths]
    if len(loaded) == 1:
        model, metadata = loaded[0]
        return model.model, metadata
    members = [
        {"arch": m.arch, "model_kwargs": m.model_kwargs, "mean": m.mean, "std": m.std, **m.provenance}
        for _, m in loaded
    ]
    metadata = ModelMetadata(
        arch="+".join(dict.fromkeys(m.arch for _, m in loaded)),
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        threshold=sum(m.threshold for _, m in loaded) / len(loaded),
        provenance={"ensemble": f"prediction average of {len(loaded)} models", "members": members},
    )
    return MeanOfModels([model for model, _ in loaded]), metadata
