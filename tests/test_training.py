"""Training: export, data, loss, schedule, ensembling, and the train -> export -> evaluate chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from models import create_model
from roadnet.cli import cli
from roadnet.errors import InputError, ModelError
from roadnet.model_metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from training.augment import AugmentConfig, augment
from training.config import TrainConfig
from training.data import (
    DATASETS,
    FOLDERS,
    Pair,
    PatchDataset,
    channel_stats,
    cut_patch,
    find_pairs,
    patch_origins,
    split_pairs,
)
from training.ensemble import MeanOfModels, average_weights, ema_model, recompute_bn
from training.export import export_onnx
from training.metrics import IGNORE, Scores, ThresholdSweep, bce_loss, soft_dice_loss
from training.pack import pack_pairs
from training.schedule import PlateauState, is_snapshot_epoch, learning_rate, plateau_step
from training.warm_start import onnx_normalisation, warm_start

torch.set_num_threads(1)


class _SizeSensitive(nn.Module):
    """Right at the traced size only: a branch on the input width is baked in by tracing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.sigmoid(self.conv(x))
        return out if x.shape[-1] == 256 else 1 - out


def test_export_writes_metadata_and_normalises_inside(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.Sigmoid())
    metadata = ModelMetadata(arch="test", mean=[10.0, 20.0, 30.0], std=[2.0, 3.0, 4.0], threshold=0.4)
    path = export_onnx(model, metadata, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert ModelMetadata.from_props(props) == metadata
    image = np.full((1, 3, 40, 50), 100.0, np.float32)
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
    mean = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    std = torch.tensor([2.0, 3.0, 4.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((torch.from_numpy(image) - mean) / std).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_export_fails_loudly_when_onnx_differs(tmp_path: Path) -> None:
    metadata = ModelMetadata(arch="test", mean=[0.0] * 3, std=[1.0] * 3)
    with pytest.raises(ModelError, match="differs from PyTorch"):
        export_onnx(_SizeSensitive(), metadata, tmp_path / "m.onnx")


def test_tiny_onnx_model_fixture(tiny_onnx_model: Path) -> None:
    session = ort.InferenceSession(str(tiny_onnx_model), providers=["CPUExecutionProvider"])
    assert ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map).arch == "risnet"
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((2, 3, 64, 96), np.float32)})
    assert out.shape == (2, 1, 64, 96)
    assert out.min() >= 0 and out.max() <= 1


# -- data ----------------------------------------------------------------------------------------------


def test_find_pairs_reads_every_layout(shared_data: Path) -> None:
    pairs = find_pairs(shared_data)
    counts = Counter(pair.dataset for pair in pairs)
    manifest = [line.split("\t") for line in (shared_data / "MANIFEST-2.tsv").read_text().splitlines()[1:]]
    second_hunt = Counter(FOLDERS[row[0]] for row in manifest if row)
    first_hunt = {"deepglobe": 8, "epfl": 67, "ottawa": 10, "spacenet": 3, "massachusetts": 1}
    assert counts == Counter(first_hunt) + second_hunt  # every pair of both manifests, once
    assert set(counts) == set(DATASETS)
    assert len({pair.key for pair in pairs}) == len(pairs)
    keys = ["ottawa/1-14-5", "epfl/satImage_001", "deepglobe/951_0_0", "ottawa/demo", "cil/satimage_2"]
    keys += ["rural_china/" + next(row[1] for row in manifest if row[0] == "rural_roads_china")]
    for key in keys:
        image, mask = next(p for p in pairs if p.key == key).load()
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert set(np.unique(mask)) == {0, 1}
        assert 0.01 < mask.mean() < 0.3  # roads, not background, are the minority


def test_no_data_is_ignored_not_background(shared_data: Path) -> None:
    pairs = {p.key: p for p in find_pairs(shared_data / "massachusetts", shared_data / "spacenet")}
    # Massachusetts' white fill outside the imagery: its labels still draw roads there.
    image, mask = pairs["massachusetts/10078660_15"].load()
    white = (image >= 250).all(axis=2)
    ignored = mask == IGNORE
    assert 0.2 < ignored.mean() < 0.9
    assert white[ignored].all()  # only white pixels are ignored
    assert ignored[white].mean() > 0.95  # and nearly all white ones (small white roofs stay imagery)
    # A GeoTIFF's alpha band: the solaris raster has none, so nothing is ignored there.
    _, solaris = pairs["spacenet/solaris_road_mask_input"].load()
    assert not (solaris == IGNORE).any()


def test_ignored_pixels_count_in_no_loss_or_metric() -> None:
    prob = torch.tensor([[0.9, 0.9], [0.1, 0.8]])[None, None]
    target = torch.tensor([[1.0, IGNORE], [0.0, IGNORE]])[None, None]
    kept = torch.tensor([[1.0, 0.0], [0.0, 0.0]])[None, None]
    # The loss of the masked target equals the loss over the valid pixels alone.
    assert soft_dice_loss(prob, target).item() == pytest.approx(-2 * 0.9 / (0.9 + 0.1 + 1 + 1))
    assert bce_loss(prob, target).item() == pytest.approx(bce_loss(prob[..., 0], kept[..., 0]).item())
    scores = Scores()
    assert scores.add("a/1", prob[0, 0].numpy(), target[0, 0].numpy().astype(np.uint8), 0.5) == 1.0
    sweep = ThresholdSweep()
    sweep.add(prob[0, 0].numpy(), target[0, 0].numpy().astype(np.uint8))
    assert sweep.best()[1] == 1.0


def test_spacenet_centrelines_rasterise_near_the_solaris_mask(shared_data: Path) -> None:
    # The solaris sample ships both its centrelines and the raster mask solaris made from them; our
    # rasterisation of the same lines must overlap it well (solaris' own buffer width is unknown).
    folder = shared_data / "spacenet" / "pairs"
    ours = Pair(
        "spacenet",
        "t",
        folder / "road_mask_input.tif",
        folder / "sample_roads_for_masking.geojson",
        "centrelines",
    )
    theirs = Pair(
        "spacenet", "t", folder / "road_mask_input.tif", folder / "sample_road_raster_mask.tif", "raster>=128"
    )
    (_, a), (_, b) = ours.load(), theirs.load()
    assert (a & b).sum() / (a | b).sum() > 0.4


def test_a_pack_reads_back_as_the_same_pairs_with_the_same_masks(shared_data: Path, tmp_path: Path) -> None:
    sources = [shared_data / "spacenet", shared_data / "rural_roads_china"]
    counts = pack_pairs(sources, tmp_path / "pack")
    originals, packed = find_pairs(*sources), find_pairs(tmp_path / "pack")
    assert counts == {"spacenet": 3, "rural_china": 4}
    assert [pair.key for pair in packed] == [pair.key for pair in originals]
    for original, copy in zip(originals, packed, strict=True):
        (image, mask), (image_copy, mask_copy) = original.load(), copy.load()
        assert np.array_equal(mask_copy, mask)  # roads, background and no data, exactly
        assert np.abs(image_copy.astype(int) - image).mean() < 4  # JPEG, not the original bytes


def test_split_is_by_image_per_dataset_and_fixed_by_seed(shared_data: Path) -> None:
    pairs = find_pairs(shared_data)
    split = split_pairs(pairs, 0.15, seed=0)
    assert not set(split["train"]) & set(split["val"])
    assert sorted(split["train"] + split["val"]) == sorted(p.key for p in pairs)
    assert split == split_pairs(list(reversed(pairs)), 0.15, seed=0)
    assert split != split_pairs(pairs, 0.15, seed=1)
    val_datasets = Counter(key.split("/")[0] for key in split["val"])
    assert val_datasets["epfl"] == 10 and val_datasets["massachusetts"] == 8
    assert val_datasets["deepglobe"] == 1 and val_datasets["spacenet"] == 1  # 9 and 3 images


def test_split_gives_small_sets_enough_and_keeps_named_images(shared_data: Path) -> None:
    pairs = find_pairs(shared_data)
    keep = ["deepglobe/951_0_0", "epfl/satImage_001"]
    split = split_pairs(pairs, 0.15, seed=0, min_val=2, val_keys=keep)
    val_datasets = Counter(key.split("/")[0] for key in split["val"])
    assert val_datasets["deepglobe"] == 2  # 9 images: 2 to validation, 7 to learn from
    assert val_datasets["spacenet"] == 1 and val_datasets["rural_china"] == 1  # under 6: one
    assert val_datasets["epfl"] == 10  # the kept image counts towards the set's share
    assert set(keep) <= set(split["val"])


def test_patches_cover_the_image_with_fill() -> None:
    assert len(patch_origins(1024, 1024, 256)) == 16
    origins = patch_origins(400, 300, 256)
    assert origins == [(0, 0), (0, 256), (256, 0), (256, 256)]
    image = np.full((400, 300, 3), 7, np.uint8)
    corner = cut_patch(image, 256, 256, 256)
    assert corner.shape == (256, 256, 3)
    assert (corner[:144, :44] == 7).all() and (corner[144:] == 0).all() and (corner[:, 44:] == 0).all()
    assert (cut_patch(image[..., 0], 256, 256, 256, fill=IGNORE)[144:] == IGNORE).all()


def test_patch_dataset_reads_the_same_patches_lazily(shared_data: Path) -> None:
    pairs = [p for p in find_pairs(shared_data / "roadnet_ottawa" / "pairs")][:2]
    preloaded, lazy = (
        PatchDataset(pairs, 256, AugmentConfig(p=0.5), 0, preload, scale=(0.7, 1.4))
        for preload in (True, False)
    )
    assert len(preloaded) == len(lazy) == 8  # two 512x512 images: 4 grid patches each
    for item in range(len(lazy)):
        for a, b in zip(preloaded[item], lazy[item], strict=True):
            assert torch.equal(a, b)
    image, mask = lazy[0]
    assert image.shape == (3, 256, 256) and mask.shape == (1, 256, 256)


def test_patch_dataset_draws_sets_by_weight(shared_data: Path) -> None:
    ottawa = find_pairs(shared_data / "roadnet_ottawa" / "pairs")[:3]
    epfl = find_pairs(shared_data / "epfl_roads")[:30]
    dataset = PatchDataset(
        ottawa + epfl, 64, AugmentConfig(p=0.0), 0, True, samples=400, set_weights={"ottawa": 3.0}
    )
    seen = Counter()
    for item in range(len(dataset)):
        generator = torch.Generator().manual_seed(hash((0, 0, item)) & 0x7FFFFFFF)
        seen[dataset.sets[int(torch.multinomial(dataset.set_probs, 1, generator=generator))]] += 1
    assert len(dataset) == 400
    assert 0.68 < seen["ottawa"] / 400 < 0.82  # 3 : 1, whatever the image counts (3 against 30)


def test_multi_scale_crops_resize_to_the_patch_and_keep_masks_binary(shared_data: Path) -> None:
    pairs = find_pairs(shared_data / "massachusetts" / "pairs")
    dataset = PatchDataset(pairs, 128, AugmentConfig(p=1.0), 0, True, samples=12, scale=(0.5, 2.0))
    for image, mask in (dataset[i] for i in range(len(dataset))):
        assert image.shape == (3, 128, 128) and mask.shape == (1, 128, 128)
        assert set(mask.unique().tolist()) <= {0.0, 1.0, float(IGNORE)}
        assert (mask != IGNORE).float().mean() > 0.2  # crops are placed where there is imagery


def test_channel_stats() -> None:
    images = [np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 10, np.uint8)]
    mean, std = channel_stats(images)
    assert mean == pytest.approx([5.0] * 3) and std == pytest.approx([5.0] * 3)


def test_augmentation_moves_image_and_mask_together() -> None:
    mask = torch.zeros(1, 64, 64)
    mask[:, 20:28, :] = 1  # a horizontal road
    mask[:, :, 40:44] = 1  # and a vertical one
    image = mask.repeat(3, 1, 1) * 200
    config = AugmentConfig(p=1.0, scale=(0.8, 0.8), zoom=(1.1, 1.1), shear_deg=5.0, jitter=0.0)
    out_image, out_mask = augment(image, mask, config, torch.Generator().manual_seed(3))
    assert not torch.equal(out_mask, mask)  # it did warp
    assert set(out_mask.unique().tolist()) == {0.0, 1.0, float(IGNORE)}  # what came from outside: no data
    inside = out_mask[0] != IGNORE
    agreement = ((out_image[0] > 100) == (out_mask[0] == 1))[inside].float().mean()
    assert agreement > 0.98  # only bilinear edge pixels may differ


def test_augmentation_chance() -> None:
    image, mask = torch.rand(3, 16, 16) * 255, torch.zeros(1, 16, 16)
    generator = torch.Generator().manual_seed(0)
    changed = sum(
        not torch.equal(augment(image, mask, AugmentConfig(), generator)[0], image) for _ in range(1000)
    )
    assert 60 < changed < 140  # 10 %


def test_dihedral_augmentation_draws_all_eight_symmetries_for_image_and_mask_alike() -> None:
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(3, 8, 8)
    mask = image[:1].clone()
    generator = torch.Generator().manual_seed(0)
    config = AugmentConfig(p=0.0, dihedral=True)
    seen = set()
    for _ in range(200):
        out_image, out_mask = augment(image, mask, config, generator)
        assert torch.equal(out_image[:1], out_mask)
        seen.add(tuple(out_mask.flatten().tolist()))
    assert len(seen) == 8


# -- loss, metrics, schedule ---------------------------------------------------------------------------


def test_soft_dice_loss_is_equation_3() -> None:
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2] = 1  # 8 road pixels
    assert soft_dice_loss(target, target).item() == pytest.approx(-16 / 17)
    assert soft_dice_loss(torch.zeros_like(target), target).item() == 0
    half = torch.full_like(target, 0.5)
    assert soft_dice_loss(half, target).item() == pytest.approx(-8 / (8 + 8 + 1))
    assert bce_loss(target, target).item() < 1e-5


def test_scores_average_per_image_and_pool() -> None:
    scores = Scores()
    truth = np.zeros((4, 4))
    truth[0, :2] = 1
    prob = np.zeros((4, 4))
    prob[0, :1] = 0.9  # 1 of 2 found: IoU 0.5
    scores.add("a/1", prob, truth, 0.5)
    scores.add("b/1", np.zeros((4, 4)), np.zeros((4, 4)), 0.5)  # nothing to find, nothing found: 1
    summary = scores.summary()
    assert summary["miou"] == pytest.approx(0.75)
    assert summary["iou"] == pytest.approx(0.5)
    assert summary["precision"] == 1 and summary["recall"] == 0.5
    assert Scores.from_tensor(scores.as_tensor()).summary() == summary


def test_threshold_sweep_picks_the_best_threshold() -> None:
    truth = np.zeros((4, 4))
    truth[:, :2] = 1
    prob = np.where(truth > 0, 0.3, 0.1)  # roads at 0.3: only thresholds <= 0.3 and > 0.1 find them
    sweep = ThresholdSweep()
    sweep.add(prob, truth)
    threshold, miou = sweep.best()
    assert 0.1 < threshold <= 0.3 and miou == 1.0


def test_plateau_halves_after_patience() -> None:
    config = TrainConfig(plateau_patience=3)
    state = PlateauState(lr=2e-4)
    for loss in [-0.5, -0.6, -0.6, -0.55, -0.6]:
        state = plateau_step(state, loss, config)
    assert state == PlateauState(lr=1e-4, best=-0.6, bad_epochs=0)  # 3 epochs without a new best
    state = plateau_step(PlateauState(lr=2e-4, best=-0.6, bad_epochs=2), -0.59, config)
    assert state == PlateauState(lr=1e-4, best=-0.6, bad_epochs=0)


def test_schedule_phases() -> None:
    config = TrainConfig(epochs=150, clr_start=100, clr_cycle=10, clr_max_lr=2e-4, clr_min_lr=1e-5)
    plateau = PlateauState(lr=5e-5)
    assert learning_rate(99, 0.9, plateau, config) == 5e-5  # plateau phase: the halved rate
    assert learning_rate(100, 0.01, plateau, config) == pytest.approx(2e-4, rel=1e-3)  # cycle starts high
    assert learning_rate(109, 1.0, plateau, config) == pytest.approx(1e-5)  # its last step is lowest
    assert learning_rate(110, 0.01, plateau, config) == pytest.approx(2e-4, rel=1e-3)  # then back up
    rates = [learning_rate(100 + e, f / 4, plateau, config) for e in range(10) for f in range(1, 5)]
    assert rates == sorted(rates, reverse=True) and rates[-1] == pytest.approx(1e-5)
    snapshots = [e for e in range(150) if is_snapshot_epoch(e, config)]
    assert snapshots == [109, 119, 129, 139, 149]


def test_configs_load() -> None:
    configs = Path(__file__).resolve().parents[1] / "training" / "configs"
    paper = TrainConfig.from_yaml(configs / "paper.yaml")
    assert (paper.lr, paper.betas, paper.epochs, paper.plateau_patience, paper.clr_start) == (
        2e-4,
        (0.9, 0.999),
        150,
        10,
        100,
    )
    for name in ["cpu-small.yaml", "smoke.yaml", "table1.yaml"]:
        config = TrainConfig.from_yaml(configs / name)
        assert 0 < config.clr_start < config.epochs  # short runs still reach the cyclic phase
    # Table 1's runs are scored on the default model's validation images: the split's keys must agree.
    split_keys = ("seed", "val_fraction", "min_val", "val_keys")
    long, table1 = (
        TrainConfig.from_yaml(configs / name).to_dict() for name in ("cpu-long.yaml", "table1.yaml")
    )
    assert [long[key] for key in split_keys] == [table1[key] for key in split_keys]
    with pytest.raises(InputError, match="unknown config keys"):
        TrainConfig.from_dict({"epoch": 3})
    small = TrainConfig.from_yaml(configs / "cpu-small.yaml")
    unet = TrainConfig.from_yaml(configs / "cpu-small.yaml", ["arch=unet", "model_kwargs={width: 0.25}"])
    assert (unet.arch, unet.model_kwargs, unet.epochs) == ("unet", {"width": 0.25}, small.epochs)


# -- ensembling ----------------------------------------------------------------------------------------


def test_ema_follows_weights_with_decay() -> None:
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ema_model(model, decay=0.5)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)
    ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(0.75)  # 0 -> 0.5 -> 0.75


def test_snapshot_average_and_bn_recompute() -> None:
    states = [
        {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)},
        {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(7)},
    ]
    averaged = average_weights(states)
    assert averaged["w"].tolist() == [2.0, 4.0] and averaged["n"].item() == 7
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).eval()
    batches = [torch.full((2, 1, 3, 3), 4.0) + torch.randn(2, 1, 3, 3) for _ in range(5)]
    recompute_bn(model, batches)
    conv_out = torch.cat([model[0](b) for b in batches]).detach()
    assert model[1].running_mean.item() == pytest.approx(conv_out.mean().item(), abs=1e-4)
    assert not model.training and model[1].momentum == 0.1


def test_mean_of_models_averages_predictions() -> None:
    class Constant(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x[:, :1], self.value)

    out = MeanOfModels([Constant(0.2), Constant(0.6)])(torch.zeros(1, 3, 4, 4))
    assert torch.allclose(out, torch.full((1, 1, 4, 4), 0.4))


# -- the commands --------------------------------------------------------------------------------------

SMOKE = Path(__file__).resolve().parents[1] / "training" / "configs" / "smoke.yaml"


@pytest.mark.slow
def test_train_export_evaluate_chain(shared_data: Path, tmp_path: Path) -> None:
    data, run, onnx_path = shared_data / "deepglobe" / "pairs", tmp_path / "run", tmp_path / "m.onnx"
    runner = CliRunner()
    train_args = ["train", "--config", str(SMOKE), "--data", str(data), "--out", str(run)]
    result = runner.invoke(cli, train_args)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output.strip().splitlines()[-1])) == {"single", "ema", "swa", "swa_ema"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert {"val_miou", "ema_miou", "val_loss", "lr", "train_loss"} <= set(rows[0])
    assert (run / "curves.png").stat().st_size > 0
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["epoch-003.pt", "epoch-004.pt"]
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 6 and len(split["val"]) == 1
    checkpoint = torch.load(run / "last.pt", weights_only=False)
    assert checkpoint["arch"] == "risnet" and checkpoint["model_kwargs"] == {"width": 0.0625}
    assert checkpoint["step"] == 8 and checkpoint["epoch"] == 4 and len(checkpoint["mean"]) == 3

    result = runner.invoke(cli, train_args)
    assert result.exit_code != 0 and "--resume" in result.output

    result = runner.invoke(cli, ["export", str(run), "--out", str(onnx_path)])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    assert metadata.provenance["ensemble"] == "swa_ema" and metadata.mean == checkpoint["mean"]
    assert (metadata.window, metadata.stride) == (256, 64)

    # Prediction averaging: two checkpoints (here the run's final and last) as one ONNX graph.
    averaged = tmp_path / "mean.onnx"
    result = runner.invoke(cli, ["export", str(run), str(run / "last.pt"), "--out", str(averaged)])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(averaged), providers=["CPUExecutionProvider"])
    members = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map).provenance["members"]
    assert [m["checkpoint"].rsplit("/", 1)[1] for m in members] == ["final.pt", "last.pt"]

    result = runner.invoke(cli, ["evaluate", "--model", str(onnx_path), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert 0 <= scores["miou"] <= 1 and scores["images"] == 7
    assert scores["datasets"]["deepglobe"]["images"] == 7

    # --resume continues where the run stopped: one more epoch with a longer config, on patches turned
    # and mirrored at random.
    longer = tmp_path / "longer.yaml"
    longer.write_text(SMOKE.read_text() + "\nepochs: 5\ndihedral: true\n")
    result = runner.invoke(cli, [*train_args[:2], str(longer), *train_args[3:], "--resume"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5] and rows[-1]["step"] == 10


@pytest.mark.slow
def test_distributed_training_with_two_gloo_processes(shared_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "roadnet",
        "train",
        "--config",
        str(SMOKE),
        "--data",
        str(shared_data / "deepglobe" / "pairs"),
        "--out",
        str(run),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert rows[-1]["step"] == 4  # 8 patches per epoch shared by two processes of batch 4: 1 step each
    assert json.loads((run / "final.json").read_text())["swa_ema"]["images"] == 1


def test_warm_start_rebuilds_an_exported_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = create_model("risnet", width=0.0625)
    for module in trained.modules():  # BN statistics and affine terms that folding must carry over
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    mean, std = [90.0, 80.0, 70.0], [40.0, 45.0, 50.0]
    metadata = ModelMetadata(arch="risnet", mean=mean, std=std, model_kwargs={"width": 0.0625})
    path = export_onnx(trained.eval(), metadata, tmp_path / "m.onnx")
    assert onnx_normalisation(path) == (pytest.approx(mean), pytest.approx(std))

    net = create_model("risnet", width=0.0625)
    images = torch.rand(4, 3, 64, 64) * 255
    normalised = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    warm_start(net, path, normalised)
    with torch.no_grad():
        ours = net.eval()(normalised).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (theirs,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    np.testing.assert_allclose(ours, theirs, atol=1e-4)

    with pytest.raises(ModelError, match=r"no matching convolution|does not match"):
        warm_start(create_model("risnet", width=0.125), path, normalised)


@pytest.mark.slow
def test_gpu_train_script_runs_the_whole_chain_with_the_smoke_config(
    shared_data: Path, tmp_path: Path
) -> None:
    # What a GPU lease runs, on the CPU: from a pack of the data, mixed precision and channels-last on,
    # as gpu.yaml has them.
    pack_pairs([shared_data / "deepglobe" / "pairs"], tmp_path / "pack")
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_train.py"
    command = [sys.executable, str(script), str(tmp_path / "out"), "--config", str(SMOKE)]
    command += ["--data", str(tmp_path / "pack"), "--set", "amp=true"]
    command += ["--set", "channels_last=true", "--set", "min_val=2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert report["stride"] == 64 and report["images"] == 2 and 0 <= report["miou"] <= 1
    assert set(report["table1"]) == {"single", "ema", "swa", "swa_ema"}
    assert report["datasets"]["deepglobe"]["images"] == 2
    for name in ("model.onnx", "metrics.jsonl", "curves.png", "final.json", "split.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
