"""Whole-image evaluation through the service's sliding window, for PyTorch models and ONNX files alike.

Every predictor takes raw 0-255 float32 windows ``(B, 3, W, W)`` and returns probabilities
``(B, 1, W, W)``, exactly what :func:`worker.inference.sliding_window.predict_array` (the one sliding-window
implementation) calls, so validation during training and ``roadnet evaluate`` on an exported model
measure the same thing the worker serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from roadnet.errors import InputError
from roadnet.model_metadata import ModelMetadata
from training.data import Pair, find_pairs, load_split
from training.metrics import Scores
from worker.inference.sliding_window import PredictFn, predict_array


def torch_predictor(model: nn.Module, device: torch.device | str = "cpu") -> PredictFn:
    """``model`` (normalisation included, e.g. ``export.Normalized``) in eval mode as a predict fn."""
    model.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(
    path: Path, threads: int = 0, providers: Sequence[str] | None = None
) -> tuple[PredictFn, ModelMetadata]:
    """An exported model as a predict fn, with its roadnet metadata, loaded as the worker loads it
    (``providers``: the worker's choice when None), but this very file, never a sibling the worker
    would pick (``M.int8.onnx`` on CPU): evaluating a file scores that file."""
    from worker.inference.model import load_model

    model = load_model(path, threads=threads, providers=providers, variants=False)
    return model.predict, model.metadata


def mean_predictor(predictors: list[PredictFn]) -> PredictFn:
    """Prediction averaging across models: the mean of ``predictors``' probabilities."""
    if len(predictors) == 1:
        return predictors[0]
    return lambda batch: np.mean([predict(batch) for predict in predictors], axis=0)


def score_images(
    predict: PredictFn,
    images: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    window: int,
    stride: int,
    batch_size: int,
    threshold: float,
    on_image: Callable[[str, np.ndarray, np.ndarray], Any] | None = None,
) -> Scores:
    """Predict each ``(key, image (H, W, 3) uint8, mask (H, W))`` whole and add it to the scores;
    ``on_image(key, probability, mask)`` sees each result."""
    scores = Scores()
    for key, image, mask in images:
        raw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        prob = predict_array(raw, predict, window=window, stride=stride, batch_size=batch_size)
        scores.add(key, prob, mask, threshold)
        if on_image is not None:
            on_image(key, prob, mask)
    return scores


def pairs_of_split(data: list[Path], split: Path | None, part: str) -> list[Pair]:
    """The labelled pairs under ``data`` that are in ``part`` (``train`` or ``val``) of ``split`` (every
    pair when ``split`` is None); none is an :class:`InputError`."""
    pairs = find_pairs(*data)
    if split is not None:
        wanted = set(load_split(split)[part])
        pairs = [pair for pair in pairs if pair.key in wanted]
    if not pairs:
        raise InputError(f"none of the {part} images of {split} is under {', '.join(map(str, data))}")
    return pairs


def per_dataset(scores: Scores) -> dict[str, dict[str, float]]:
    """mIoU and image count per dataset (the part of each key before ``/``)."""
    grouped: dict[str, list[float]] = {}
    for key, iou in scores.per_image.items():
        grouped.setdefault(key.split("/")[0], []).append(iou)
    return {name: {"miou": float(np.mean(v)), "images": len(v)} for name, v in sorted(grouped.items())}
