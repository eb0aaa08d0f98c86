"""Losses (section 4.2) and the paper's metric: IoU per image, averaged (mIoU), plus pooled scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

DICE_EPS = 1.0
IGNORE = 255  # mask value of no-data pixels (outside the imagery): every loss and metric skips them


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = DICE_EPS) -> torch.Tensor:
    """Equation 3: ``-2 Σ s r / (Σ s + Σ r + eps)`` over every pixel of the batch that is not
    :data:`IGNORE` (in [-1, 0])."""
    valid = target != IGNORE
    prob, target = prob * valid, target * valid
    return -2 * (prob * target).sum() / (prob.sum() + target.sum() + eps)


def bce_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on probabilities (the paper's baseline loss), over pixels not :data:`IGNORE`."""
    valid = (target != IGNORE).float()
    per_pixel = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), target * valid, reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


LOSSES = {"dice": soft_dice_loss, "bce": bce_loss}


@dataclass
class Scores:
    """Running sums over whole images: per-image IoUs, pooled confusion counts, the loss's sums.

    Sums (not means) so that several processes' scores add up (``as_tensor`` / ``from_tensor``).
    """

    iou_sum: float = 0.0
    images: int = 0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    prob_target: float = 0.0  # Σ s r, Σ s, Σ r over all images: the validation dice loss, pooled
    prob: float = 0.0
    target: float = 0.0
    per_image: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, prob: np.ndarray, mask: np.ndarray, threshold: float) -> float:
        """Score one image's probability ``(H, W)`` against its mask; return its IoU.

        An image with neither a road nor a predicted road scores IoU 1 (nothing to find, nothing found).
        Pixels whose mask is :data:`IGNORE` count nowhere.
        """
        valid = mask != IGNORE
        pred, truth = (prob >= threshold) & valid, mask == 1
        prob = prob * valid
        tp = float(np.count_nonzero(pred & truth))
        fp = float(np.count_nonzero(pred & ~truth))
        fn = float(np.count_nonzero(~pred & truth))
        iou = tp / (tp + fp + fn) if tp + fp + fn else 1.0
        self.iou_sum += iou
        self.images += 1
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        self.prob_target += float((prob * truth).sum())
        self.prob += float(prob.sum())
        self.target += float(truth.sum())
        self.per_image[key] = iou
        return iou

    def summary(self) -> dict[str, float]:
        """mIoU, pooled IoU, precision, recall and the pooled soft-dice loss (eq. 3)."""
        return {
            "miou": self.iou_sum / max(self.images, 1),
            "iou": self.tp / max(self.tp + self.fp + self.fn, 1.0),
            "precision": self.tp / max(self.tp + self.fp, 1.0),
            "recall": self.tp / max(self.tp + self.fn, 1.0),
            "loss": -2 * self.prob_target / (self.prob + self.target + DICE_EPS),
            "images": float(self.images),
        }

    def as_tensor(self) -> torch.Tensor:
        """The sums as a float64 tensor (for ``all_reduce``)."""
        values = [
            self.iou_sum,
            self.images,
            self.tp,
            self.fp,
            self.fn,
            self.prob_target,
            self.prob,
            self.target,
        ]
        return torch.tensor(values, dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> Scores:
        """Sums from :meth:`as_tensor` (per-image IoUs are not carried)."""
        v = values.tolist()
        return cls(v[0], int(v[1]), v[2], v[3], v[4], v[5], v[6], v[7])


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 ... 0.90


class ThresholdSweep:
    """mIoU at each of :data:`THRESHOLDS`, to choose the exported model's threshold on validation images."""

    def __init__(self) -> None:
        self.iou_sums = torch.zeros(len(THRESHOLDS), dtype=torch.float64)
        self.images = 0

    def add(self, prob: np.ndarray, mask: np.ndarray) -> None:
        """Score one image's probability ``(H, W)`` against its mask at every threshold."""
        valid, truth = mask != IGNORE, mask == 1
        for i, threshold in enumerate(THRESHOLDS):
            pred = (prob >= threshold) & valid
            union = np.count_nonzero(pred | truth)
            self.iou_sums[i] += np.count_nonzero(pred & truth) / union if union else 1.0
        self.images += 1

    def best(self) -> tuple[float, float]:
        """The threshold with the highest mIoU, and that mIoU."""
        miou = self.iou_sums / max(self.images, 1)
        index = int(miou.argmax())
        return THRESHOLDS[index], float(miou[index])
