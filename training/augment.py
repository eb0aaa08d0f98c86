"""The paper's augmentations (section 4.1), in plain torch, applied to image and mask with one warp.

With probability ``p`` a patch gets all of: a random isotropic scale in [1/1.1, 1], a zoom in
[1/1.1, 1.1] drawn per axis (as Keras' ``zoom_range`` does; the paper names both, so "scale" is the
isotropic one and "zoom" the per-axis one), a shear in [-5, 5] degrees, and a colour jitter of
brightness, contrast and saturation by up to 10 %. The geometric part is one affine grid sampled
bilinearly for the image and nearest for the mask, black outside, so the two stay aligned; what the
warp brings in from outside the patch is no data in the mask.

Not in the paper, off unless a config sets ``dihedral``: every patch turned or mirrored by one of the
square's eight symmetries (models/weights/MODEL_CARD.md has what it did to a warm-started run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.metrics import IGNORE


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the paper's augmentations; ``p`` is the chance a patch is augmented at all."""

    p: float = 0.1
    scale: tuple[float, float] = (1 / 1.1, 1.0)
    zoom: tuple[float, float] = (1 / 1.1, 1.1)
    shear_deg: float = 5.0
    jitter: float = 0.1
    dihedral: bool = False  # every patch turned or mirrored at random, apart from ``p`` (not in the paper)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_affine(config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A random ``(2, 3)`` affine matrix (output -> input sampling coordinates, as ``affine_grid``)."""
    scale = _uniform(*config.scale, generator)
    zoom_x, zoom_y = _uniform(*config.zoom, generator), _uniform(*config.zoom, generator)
    shear = math.radians(_uniform(-config.shear_deg, config.shear_deg, generator))
    # Output pixels sample the input at coordinates divided by the magnification.
    magnify = torch.tensor([[scale * zoom_x, 0.0], [0.0, scale * zoom_y]])
    shear_matrix = torch.tensor([[1.0, math.tan(shear)], [0.0, 1.0]])
    linear = torch.linalg.inv(magnify @ shear_matrix)
    return torch.cat([linear, torch.zeros(2, 1)], dim=1)


def warp(image: torch.Tensor, mask: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``theta`` to ``image`` ``(3, H, W)`` (bilinear) and ``mask`` ``(1, H, W)`` (nearest)."""
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    # Shifted by one so that the zeros sampled outside the patch can be told apart: they become no data.
    shifted = F.grid_sample(mask[None] + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False)[
        0
    ]
    return image, torch.where(shifted == 0, float(IGNORE), shifted - 1)


def colour_jitter(image: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in [1 - amount, 1 + amount] (0-255 image)."""
    brightness, contrast, saturation = (_uniform(1 - amount, 1 + amount, generator) for _ in range(3))
    image = image * brightness
    image = (image - image.mean()) * contrast + image.mean()
    grey = image.mean(dim=0, keepdim=True)
    image = (image - grey) * saturation + grey
    return image.clamp(0, 255)


def dihedral(patch: torch.Tensor, symmetry: int) -> torch.Tensor:
    """One of the square's eight symmetries of ``patch`` ``(..., S, S)``: ``symmetry % 4`` quarter turns,
    then a transpose when ``symmetry >= 4`` (``benchmarks/orientation.py`` turns whole images with it)."""
    turned = torch.rot90(patch, symmetry % 4, dims=(-2, -1))
    return turned.transpose(-1, -2) if symmetry >= 4 else turned


def augment(
    image: torch.Tensor, mask: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """With ``config.dihedral``, turn or mirror image and mask together by one of the eight symmetries
    of the square, drawn uniformly; then with probability ``config.p``, warp image and mask together and
    jitter the image's colours."""
    if config.dihedral:
        symmetry = int(torch.randint(0, 8, (), generator=generator))
        image, mask = dihedral(image, symmetry).contiguous(), dihedral(mask, symmetry).contiguous()
    if float(torch.rand((), generator=generator)) >= config.p:
        return image, mask
    image, mask = warp(image, mask, random_affine(config, generator))
    return colour_jitter(image, config.jitter, generator), mask
