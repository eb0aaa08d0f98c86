"""Labelled road imagery: pair readers per layout, the per-image split, patches, normalisation statistics.

Every layout ends in the same thing: an RGB image ``(H, W, 3)`` uint8 and a binary mask ``(H, W)``
uint8 in {0, 1}. How each layout's label becomes binary:

========================  ======================================================  ========================
layout                    files                                                   road where
========================  ======================================================  ========================
``deepglobe``             ``<id>_sat.jpg`` + ``<id>_mask.png``                    mean of RGB >= 128
``deepglobe`` (crops)     ``<id>_sat.png`` + ``<id>.png``                         value >= 128
``epfl``                  ``images/<n>.png`` + ``groundtruth/<n>.png``            value >= 128 (anti-aliased)
``massachusetts``         ``<tile>.jpg`` + ``<tile>.png``                         value >= 128
``ottawa``                ``<id>_image.png`` + ``<id>_label_gt.png``              any channel > 0 (surface,
                                                                                  edge and centreline)
``ottawa`` (demo)         ``image.png`` + ``segment.png``                         red: R >= 128, G < 128
``spacenet``              ``RGB-PanSharpen_<x>.tif`` + ``<x>.geojson`` or         within SPACENET_HALF_WIDTH_M
                          ``OSMroads_<x>.geojson`` (centrelines)                  of a centreline
``spacenet`` (solaris)    ``road_mask_input.tif`` + ``sample_road_raster_mask``   value >= 128
any set (second hunt)     ``<set>/tiles/images/<id>.*`` + ``tiles/masks/<id>.*``  the set's rule in
                                                                                  :data:`DATASETS`
========================  ======================================================  ========================

The second hunt's pairs are found by their folder layout (same id in ``images/`` and ``masks/``), which
``MANIFEST-2.tsv`` lists one to one; reading the folders serves a sub-folder given as ``--data`` too.

No data is not background. ``Pair.load`` marks pixels outside the imagery :data:`IGNORE` in the mask:
alpha 0, a GeoTIFF's declared nodata, and for Massachusetts the white fill outside the imagery (RGB all
>= 250 in edge-touching regions of at least 5 ha, :mod:`roadnet.white_fill`, so a white roof stays
imagery). Losses and metrics skip those pixels, as they skip the padding beyond an image's edge.

Unpaired images (``unlabeled/`` folders) are ignored. SpaceNet rasters keep their first three bands
(the Vegas tile's fourth is alpha); the solaris tile is 11-bit panchromatic, scaled to 0-255 and
repeated into three grey channels.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from roadnet.errors import InputError
from roadnet.white_fill import metres_per_pixel, white_fill
from training.augment import AugmentConfig, augment
from training.config import TrainConfig
from training.metrics import IGNORE


@dataclass(frozen=True)
class DatasetInfo:
    """What one labelled set is: its label rule (for the ``tiles/`` layout), ground resolution in
    metres per pixel (as its sources state it; approximate where they vary), and whether its white
    fill is no data."""

    rule: str
    gsd_m: float
    white_fill_nodata: bool = False


# One place for every set's label rule and resolution. Folder names map to dataset names via FOLDERS.
DATASETS: dict[str, DatasetInfo] = {
    "deepglobe": DatasetInfo("rgb-mean>=128", 0.5),
    "spacenet": DatasetInfo("centrelines", 0.3),
    "massachusetts": DatasetInfo("grey>=128", 1.0, white_fill_nodata=True),
    "epfl": DatasetInfo("grey>=128", 0.3),
    "cil": DatasetInfo("grey>=128", 0.45),
    "ottawa": DatasetInfo("non-black", 0.21),
    "rural_china": DatasetInfo("rgb-mean>=128", 0.5),
}
FOLDERS = {
    "cil2022": "cil",
    "deepglobe": "deepglobe",
    "epfl_roads": "epfl",
    "massachusetts": "massachusetts",
    "roadnet_ottawa": "ottawa",
    "rural_roads_china": "rural_china",
    "spacenet": "spacenet",
}


def training_gsd(config: TrainConfig) -> float:
    """The ground resolution a run trains at, on average: each set's metres per pixel weighted by how
    often it is drawn (``set_weights``; unnamed sets 1), times the geometric mean of the crop scale (a
    crop ``s`` times the patch, resized to it, is seen at ``s`` times the set's resolution)."""
    weights = {name: config.set_weights.get(name, 1.0) for name in DATASETS}
    mean_gsd = sum(DATASETS[name].gsd_m * w for name, w in weights.items()) / sum(weights.values())
    low, high = config.scale_range
    return round(mean_gsd * math.sqrt(low * high), 3)


# A packed copy of the data (training.pack): one folder per set under a folder holding this index.
PACK_INDEX = "PACK.json"
PACKED_MASK = ".mask.png"

# SpaceNet 3's own masks (apls create_masks) buffer centrelines by 2 m each side: a 4 m road, about
# 13 px at 0.3 m, close to the width of DeepGlobe's hand-drawn roads in metres.
SPACENET_HALF_WIDTH_M = 2.0
# The solaris sample ships its raster mask: the pair is fixed by name.
SOLARIS_PAIR = ("road_mask_input.tif", "sample_road_raster_mask.tif")
PANCHROMATIC_MAX = 2047.0  # 11-bit WorldView-3 pan


@dataclass(frozen=True)
class Pair:
    """One labelled image on disk. ``key`` (``dataset/id``) is unique and names it in the split."""

    dataset: str
    id: str
    image: Path
    label: Path
    rule: str

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.id}"

    def shape(self) -> tuple[int, int]:
        """Height and width of the image, read from its header only."""
        if self.image.suffix.lower() in {".tif", ".tiff"}:
            import rasterio

            with rasterio.open(self.image) as src:
                return src.height, src.width
        width, height = Image.open(self.image).size
        return height, width

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The image ``(H, W, 3)`` uint8 and the mask ``(H, W)`` uint8: 1 road, 0 background,
        :data:`IGNORE` no data."""
        image, valid = _read_rgb(self.image)
        mask = _LABEL_RULES[self.rule](self.label, self.image)
        if mask.shape != image.shape[:2]:
            raise InputError(
                f"label {self.label} is {mask.shape[1]}x{mask.shape[0]} but image {self.image} is "
                f"{image.shape[1]}x{image.shape[0]}; fix or remove the pair"
            )
        if DATASETS[self.dataset].white_fill_nodata:
            valid &= ~white_fill(image.transpose(2, 0, 1), DATASETS[self.dataset].gsd_m)
        mask = mask.astype(np.uint8)
        mask[~valid] = IGNORE
        return image, mask


def _read_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image ``(H, W, 3)`` uint8 and where it holds data ``(H, W)`` bool (alpha > 0, not nodata)."""
    if path.suffix.lower() in {".tif", ".tiff"}:
        import rasterio

        with rasterio.open(path) as src:
            bands = src.read(list(range(1, min(src.count, 3) + 1)))
            valid = src.dataset_mask() > 0  # alpha, declared nodata or an internal mask
        if bands.dtype != np.uint8:
            bands = np.clip(bands.astype(np.float32) / PANCHROMATIC_MAX * 255, 0, 255).astype(np.uint8)
        if bands.shape[0] == 1:
            bands = np.repeat(bands, 3, axis=0)
        return np.ascontiguousarray(bands.transpose(1, 2, 0)), valid
    with Image.open(path) as source:
        rgba = np.array(source.convert("RGBA"))  # writable: torch.from_numpy needs it
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3] > 0


def _grey_threshold(label: Path, _image: Path) -> np.ndarray:
    return np.asarray(Image.open(label).convert("L")) >= 128


def _rgb_mean_threshold(label: Path, _image: Path) -> np.ndarray:
    return np.asarray(Image.open(label).convert("RGB")).mean(axis=2) >= 128


def _non_black(label: Path, _image: Path) -> np.ndarray:
    return np.asarray(Image.open(label).convert("RGB")).max(axis=2) > 0


def _red(label: Path, _image: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(label).convert("RGB"))
    return (rgb[..., 0] >= 128) & (rgb[..., 1] < 128)


def _raster_threshold(label: Path, _image: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(label) as src:
        return np.asarray(src.read(1) >= 128)


def _packed(label: Path, _image: Path) -> np.ndarray:
    """A mask written by :func:`training.pack.pack_pairs`: the values of :meth:`Pair.load` as they are."""
    return np.asarray(Image.open(label))


def _centrelines(label: Path, image: Path) -> np.ndarray:
    """Rasterise GeoJSON centrelines buffered by :data:`SPACENET_HALF_WIDTH_M` on the image's grid."""
    import rasterio
    import shapely
    from rasterio.features import rasterize
    from shapely.geometry import shape

    with rasterio.open(image) as src:
        height, width, affine, crs = src.height, src.width, src.transform, src.crs
    inv = ~affine
    radius_px = SPACENET_HALF_WIDTH_M / metres_per_pixel(affine, crs, height)

    def to_pixels(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f])

    features = json.loads(label.read_text())["features"]
    shapes = []
    for feature in features:
        if not feature.get("geometry"):
            continue
        geometry = shapely.transform(shape(feature["geometry"]), to_pixels)
        shapes.append((geometry.buffer(radius_px), 1))
    if not shapes:
        return np.zeros((height, width), bool)
    return rasterize(shapes, out_shape=(height, width), fill=0, dtype="uint8").astype(bool)


_LABEL_RULES = {
    "grey>=128": _grey_threshold,
    "rgb-mean>=128": _rgb_mean_threshold,
    "non-black": _non_black,
    "red": _red,
    "raster>=128": _raster_threshold,
    "centrelines": _centrelines,
    "packed": _packed,
}


def _pairs_in_folder(folder: Path) -> Iterator[Pair]:
    """The pairs whose image lies directly in ``folder`` (plus EPFL's images/ + groundtruth/)."""
    if (folder.parent / PACK_INDEX).is_file():
        for path in sorted(folder.glob(f"*{PACKED_MASK}")):
            ident = path.name.removesuffix(PACKED_MASK)
            yield Pair(folder.name, ident, folder / f"{ident}.jpg", path, "packed")
        return
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    for name, path in sorted(files.items()):
        stem = path.stem
        if name.endswith(("_sat.jpg", "_sat.png")):
            ident = stem.removesuffix("_sat")
            if f"{ident}_mask.png" in files:
                yield Pair("deepglobe", ident, path, files[f"{ident}_mask.png"], "rgb-mean>=128")
            elif f"{ident}.png" in files:
                yield Pair("deepglobe", ident, path, files[f"{ident}.png"], "grey>=128")
        elif name.endswith("_image.png") and f"{stem.removesuffix('_image')}_label_gt.png" in files:
            ident = stem.removesuffix("_image")
            yield Pair("ottawa", ident, path, files[f"{ident}_label_gt.png"], "non-black")
        elif name == "image.png" and "segment.png" in files:
            yield Pair("ottawa", folder.name, path, files["segment.png"], "red")
        elif path.suffix == ".jpg" and f"{stem}.png" in files:
            yield Pair("massachusetts", stem, path, files[f"{stem}.png"], "grey>=128")
        elif name == SOLARIS_PAIR[0] and SOLARIS_PAIR[1] in files:
            yield Pair("spacenet", "solaris_road_mask_input", path, files[SOLARIS_PAIR[1]], "raster>=128")
        elif name.startswith("RGB-PanSharpen_") and path.suffix == ".tif":
            ident = stem.removeprefix("RGB-PanSharpen_")
            for label_name in (f"{ident}.geojson", f"OSMroads_{ident}.geojson"):
                if label_name in files:
                    yield Pair("spacenet", ident, path, files[label_name], "centrelines")
                    break
    images, masks = folder / "images", folder / "masks"
    if folder.name == "tiles" and images.is_dir() and masks.is_dir():
        dataset = FOLDERS.get(folder.parent.name)
        if dataset is None:
            raise InputError(f"unknown set folder {folder.parent}; add it to training.data.FOLDERS")
        labels = {p.stem: p for p in masks.iterdir() if p.is_file()}
        for path in sorted(p for p in images.iterdir() if p.is_file()):
            if path.stem in labels:
                yield Pair(dataset, path.stem, path, labels[path.stem], DATASETS[dataset].rule)
    images, truth = folder / "images", folder / "groundtruth"
    if images.is_dir() and truth.is_dir():
        for path in sorted(images.glob("*.png")):
            if (truth / path.name).is_file():
                yield Pair("epfl", path.stem, path, truth / path.name, "grey>=128")


def find_pairs(*folders: Path) -> list[Pair]:
    """All labelled pairs under ``folders`` (searched recursively), sorted by key, keys unique."""
    pairs: dict[str, Pair] = {}
    for root in folders:
        if not Path(root).is_dir():
            raise InputError(f"data folder {root} does not exist")
        for folder in sorted([Path(root), *(p for p in Path(root).rglob("*") if p.is_dir())]):
            for pair in _pairs_in_folder(folder):
                pairs.setdefault(pair.key, pair)
    if not pairs:
        raise InputError(
            f"no labelled image pairs found under {', '.join(map(str, folders))}; see training/data.py "
            "for the layouts read"
        )
    return [pairs[key] for key in sorted(pairs)]


def split_pairs(
    pairs: list[Pair], val_fraction: float, seed: int, *, min_val: int = 1, val_keys: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Split by image, per dataset, into ``{"train": keys, "val": keys}``.

    Each dataset gives ``round(val_fraction * n)`` images to validation, at least ``min_val`` once it has
    ``3 * min_val`` images (so every dataset is measured and still learned from), at least one from three
    images, none below that. ``val_keys`` go to validation first (e.g. a previous model's validation
    images, so that two models compare on images neither trained on) and count towards their set's share.
    """
    by_dataset: dict[str, list[str]] = {}
    for pair in pairs:
        by_dataset.setdefault(pair.dataset, []).append(pair.key)
    fixed = set(val_keys)
    split: dict[str, list[str]] = {"train": [], "val": []}
    for dataset, keys in sorted(by_dataset.items()):
        n = len(keys)
        floor = min_val if n >= 3 * min_val else (1 if n >= 3 else 0)
        chosen = sorted(key for key in keys if key in fixed)
        rest = sorted(key for key in keys if key not in fixed)
        random.Random(f"{seed}:{dataset}").shuffle(rest)
        n_draw = max(0, max(floor, round(val_fraction * n)) - len(chosen))
        split["val"] += sorted(chosen + rest[:n_draw])
        split["train"] += sorted(rest[n_draw:])
    return split


def load_split(path: Path) -> dict[str, list[str]]:
    """Read ``split.json`` as written by training."""
    data = json.loads(path.read_text())
    return {"train": list(data["train"]), "val": list(data["val"])}


def channel_stats(images: Iterable[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every pixel of ``images`` (0-255 scale)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for image in images:
        pixels = image.reshape(-1, 3).astype(np.float64)
        total += pixels.sum(axis=0)
        squares += (pixels**2).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 1e-6))
    return [float(m) for m in mean], [float(s) for s in std]


def patch_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of a non-overlapping ``size`` grid covering the image."""
    return [(r, c) for r in range(0, height, size) for c in range(0, width, size)]


def cut_patch(array: np.ndarray, row: int, col: int, size: int, fill: int = 0) -> np.ndarray:
    """The ``size`` x ``size`` patch at (row, col) of an ``(H, W, ...)`` array, ``fill`` beyond it."""
    patch = array[row : row + size, col : col + size]
    if patch.shape[:2] == (size, size):
        return patch
    padding = [(0, size - patch.shape[0]), (0, size - patch.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(patch, padding, constant_values=fill)


class PatchDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """An epoch of random training patches: raw 0-255 float images ``(3, P, P)``, masks ``(1, P, P)``
    (1 road, 0 background, :data:`IGNORE` no data).

    Each item draws, from a generator seeded by ``seed``, the epoch and its index (so a resumed or
    distributed run draws the same patches): a dataset by ``set_weights`` (a set not named weighs 1), an
    image of it in proportion to its area, a crop of ``P x s`` pixels with ``s`` log-uniform in
    ``scale`` resized to ``P`` (multi-scale: the sets span 0.21-1 m a pixel), a place where at least
    ``min_valid`` of the crop is imagery (a few tries), then the paper's augmentations.
    ``samples`` items make an epoch; 0: as many as the non-overlapping patches of the training images.

    With ``preload`` the images are decoded once into memory (small data sets); without, each patch
    decodes its image from disk (DeepGlobe's 6226 images would take ~20 GB per process in memory).
    """

    def __init__(
        self,
        pairs: list[Pair],
        size: int,
        augment: AugmentConfig,
        seed: int,
        preload: bool,
        *,
        samples: int = 0,
        set_weights: Mapping[str, float] | None = None,
        scale: tuple[float, float] = (1.0, 1.0),
        min_valid: float = 0.25,
    ) -> None:
        self.pairs, self.size, self.augment, self.seed = pairs, size, augment, seed
        self.scale, self.min_valid = scale, min_valid
        self.loaded = [pair.load() for pair in pairs] if preload else None
        shapes = [image.shape[:2] for image, _ in self.loaded] if self.loaded else [p.shape() for p in pairs]
        self.samples = samples or sum(len(patch_origins(h, w, size)) for h, w in shapes)
        weights = set_weights or {}
        self.sets = sorted({pair.dataset for pair in pairs})
        self.members = [[i for i, p in enumerate(pairs) if p.dataset == name] for name in self.sets]
        self.set_probs = torch.tensor([float(weights.get(name, 1.0)) for name in self.sets])
        self.areas = [torch.tensor([float(h * w) for h, w in (shapes[i] for i in m)]) for m in self.members]
        self.epoch = 0

    def images(self) -> Iterator[np.ndarray]:
        """Every training image, once (for the normalisation statistics)."""
        for i in range(len(self.pairs)):
            yield self._arrays(i)[0]

    def _arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.loaded[i] if self.loaded is not None else self.pairs[i].load()

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, item)) & 0x7FFFFFFF)
        which = int(torch.multinomial(self.set_probs, 1, generator=generator))
        members = self.members[which]
        i = members[int(torch.multinomial(self.areas[which], 1, generator=generator))]
        image, mask = self._arrays(i)
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        crop = max(
            8, round(self.size * math.exp(low + (high - low) * float(torch.rand((), generator=generator))))
        )
        height, width = mask.shape
        for _ in range(4):
            row = int(torch.randint(0, max(height - crop, 0) + 1, (), generator=generator))
            col = int(torch.randint(0, max(width - crop, 0) + 1, (), generator=generator))
            mask_patch = cut_patch(mask, row, col, crop, fill=IGNORE)
            if np.count_nonzero(mask_patch != IGNORE) >= self.min_valid * crop * crop:
                break
        image_patch = torch.from_numpy(cut_patch(image, row, col, crop)).permute(2, 0, 1).float()
        mask_tensor = torch.from_numpy(mask_patch)[None].float()
        if crop != self.size:
            image_patch = F.interpolate(
                image_patch[None], size=(self.size, self.size), mode="bilinear", antialias=True
            )[0]
            mask_tensor = F.interpolate(mask_tensor[None], size=(self.size, self.size), mode="nearest")[0]
        return augment(image_patch, mask_tensor, self.augment, generator)
