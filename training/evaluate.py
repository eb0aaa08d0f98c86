"""Whole-image evaluation through the service's sliding window, for PyTorch models and ONNX files alike.

Every predictor takes raw 0-255 float32 windows ``(B, 3, W, W)`` and returns probabilities
``(B, 1, W, W)``, exactly what :func:`worker.sliding_window.predict_array` (the one sliding-window
implementation) calls, so validation during training and ``roadnet evaluate`` on an exported model
measure the same thing the worker serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from roadnet.model_metadata import ModelMetadata
from training.metrics import Scores
from worker.sliding_window import PredictFn, predict_array


def torch_predictor(model: nn.Module, device: torch.device | str = "cpu") -> PredictFn:
    """``model`` (normalisation included, e.g. ``export.Normalized``) in eval mode as a predict fn."""
    model.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(path: Path, threads: int = 0) -> tuple[PredictFn, ModelMetadata]:
    """An exported model as a predict fn, with its roadnet metadata, loaded as the worker loads it."""
    from worker.model import load_model

    model = load_model(path, threads=threads)
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


def per_dataset(scores: Scores) -> dict[str, dict[str, float]]:
    """mIoU and image count per dataset (the part of each key before ``/``)."""
    grouped: dict[str, list[float]] = {}
    for key, iou in scores.per_image.items():
        grouped.setdefault(key.split("/")[0], []).append(iou)
    return {name: {"miou": float(np.mean(v)), "images": len(v)} for name, v in sorted(grouped.items())}
