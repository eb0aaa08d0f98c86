"""Which way do a set's labelled roads run? Per image, the share of road edge along each of four directions.

    .venv/bin/python benchmarks/road_directions.py [--dataset deepglobe] [--split models/weights/split.json]
        [--data ../shared/data]

Each label mask is smoothed (Gaussian, sigma 4 px) and the direction of its gradient, turned a quarter,
is the direction of the road edge there; the gradient magnitude weighs it. Bins of 45 degrees centred on
horizontal, the down-right diagonal (top left to bottom right, in image rows and columns), vertical and
the up-right diagonal. A model that finds roads along one diagonal only (``benchmarks/orientation.py``,
models/weights/MODEL_CARD.md "Which way is up") may have seen few along the other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from training.data import DATASETS
from training.evaluate import pairs_of_split

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = ("horizontal", "down-right", "vertical", "up-right")


def direction_shares(road: np.ndarray) -> np.ndarray:
    """Shares (summing to 1) of the road edge of boolean ``road`` along each of :data:`DIRECTIONS`."""
    smooth = ndimage.gaussian_filter(road.astype(np.float64), 4)
    gy, gx = np.gradient(smooth)
    magnitude = np.hypot(gx, gy)
    edge = magnitude > 0.01
    # Rows grow downwards, so an edge running top left to bottom right has an angle near 45 degrees.
    angle = (np.degrees(np.arctan2(gy[edge], gx[edge])) + 90) % 180
    bins = ((angle + 22.5) // 45).astype(int) % 4
    totals = np.bincount(bins, weights=magnitude[edge], minlength=4)
    return totals / max(totals.sum(), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="deepglobe", choices=sorted(DATASETS))
    parser.add_argument("--split", type=Path, default=REPO / "models" / "weights" / "split.json")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    print("part id " + " ".join(DIRECTIONS))
    for part in ("train", "val"):
        for pair in pairs_of_split([args.data], args.split, part):
            if pair.dataset == args.dataset:
                _, mask = pair.load()
                shares = direction_shares(mask == 1)
                print(part, pair.id, " ".join(f"{share:.2f}" for share in shares), flush=True)


if __name__ == "__main__":
    main()
