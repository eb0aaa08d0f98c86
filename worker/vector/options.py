"""The options of :func:`worker.vector.vectorize.vectorize_mask`, light to import (the CLI builds its options
from these defaults without loading scikit-image)."""

from __future__ import annotations

from dataclasses import dataclass

from roadnet.errors import InputError


@dataclass(frozen=True)
class VectorizeOptions:
    """Thresholds of the vectorisation (ground units: metres), and the block size (pixels)."""

    #: Dead-end branches off a junction shorter than this are dropped (skeleton spurs where a road
    #: ends or widens are about half a road's width long).
    min_spur_m: float = 10.0
    #: Connected pieces whose roads add up to less than this are dropped (speckles, parking bays).
    min_fragment_m: float = 20.0
    #: Dead ends closer than this that line up are joined (roads hidden under trees or shadows).
    max_gap_m: float = 15.0
    #: A gap is bridged only if the bridge leaves each dead end within this angle of its direction.
    max_gap_angle_deg: float = 30.0
    #: A dead end's direction is measured over this last length of its segment.
    end_direction_m: float = 10.0
    #: Douglas-Peucker tolerance of the output lines.
    simplify_m: float = 1.0
    #: Holes in the mask smaller than this area are filled before skeletonising.
    fill_holes_m2: float = 20.0
    #: Blocks of this many pixels a side are vectorised one at a time (bounds the memory).
    block_size: int = 2048
    #: Pixels read around each block so the skeleton near its border is the whole scene's. It must exceed
    #: half the widest road (or road-like blob) in pixels: 128 covers 250 px, 75 m at 0.3 m; narrower
    #: overlaps add spurs and breaks where wider blobs cross a block border.
    block_overlap: int = 128

    def __post_init__(self) -> None:
        for name in ("min_spur_m", "min_fragment_m", "max_gap_m", "end_direction_m", "simplify_m"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 metres, got {getattr(self, name)}")
        if not 0 <= self.max_gap_angle_deg <= 180:
            raise InputError(f"max_gap_angle_deg must be between 0 and 180, got {self.max_gap_angle_deg}")
        if self.block_size < 64 or self.block_overlap < 8:
            raise InputError(
                f"block_size must be >= 64 and block_overlap >= 8 pixels, "
                f"got {self.block_size} and {self.block_overlap}"
            )
