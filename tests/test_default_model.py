"""The model that ships with roadnet: found with no configuration, self-describing, and finding the
roads of a real scene it was never trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from roadnet.model_files import default_model_path, weights_dir
from roadnet.options import InferenceOptions
from training.data import find_pairs
from worker.inference.model import load_model
from worker.inference.predict import predict_scene

#: A RoadNet Ottawa tile of the model's validation split (never trained on).
VALIDATION_SCENE = "ottawa/1-17-11"


def test_default_model_ships_with_its_card_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROADNET_MODEL_PATH", raising=False)
    assert default_model_path() == weights_dir() / "roadnet-risnet.onnx"
    for name in ("MODEL_CARD.md", "model_card.json", "split.json"):
        assert (weights_dir() / name).is_file(), name
    metadata = load_model(default_model_path(), threads=1).metadata
    assert (metadata.arch, metadata.window, metadata.stride) == ("risnet", 256, 64)
    assert 0 < metadata.threshold < 1
    # An ensemble of one run's weights, or a weight average (of weight averages) of such ensembles.
    assert all(run["ensemble"] in {"ema", "swa", "swa_ema"} for run in _runs(metadata.provenance))


def _runs(provenance: dict) -> list[dict]:
    """The training runs' provenances under a (nested) weight average's."""
    if "averaged" not in provenance:
        return [provenance]
    return [run for member in provenance["averaged"] for run in _runs(member["provenance"])]


@pytest.mark.slow
def test_default_model_finds_the_roads_of_a_validation_scene(shared_data: Path, tmp_path: Path) -> None:
    split = json.loads((weights_dir() / "split.json").read_text())
    assert VALIDATION_SCENE in split["val"] and VALIDATION_SCENE not in split["train"]
    pair = next(pair for pair in find_pairs(shared_data / "roadnet_ottawa") if pair.key == VALIDATION_SCENE)
    _, truth = pair.load()
    result = predict_scene(pair.image, tmp_path, options=InferenceOptions(fast=True))
    with rasterio.open(result.mask) as src:
        predicted = src.read(1) == 1
    road = truth.astype(bool)
    iou = (predicted & road).sum() / (predicted | road).sum()
    # Measured: 0.79 in fast mode (the half-width model: 0.64); an untrained model scores about 0.05.
    assert iou > 0.4, f"IoU {iou:.3f} with the ground truth"
