"""The options of :func:`worker.vector.vectorize.vectorize_mask`, light to import (the CLI builds its options
from these fields without loading scikit-image).

Each field's ``help`` is its one description: ``roadnet vectorize`` makes an option of every field from
its name, type, default and help (:mod:`worker.vector.cli`), and a job's options fill the fields of the
same names (:func:`worker.runner.pipeline.engine_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TypeVar

from roadnet.errors import InputError

T = TypeVar("T", int, float)


def _option(default: T, help_text: str) -> T:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class VectorizeOptions:
    """Thresholds of the vectorisation (ground units: metres), and the block size (pixels)."""

    # Skeleton spurs where a road ends or widens are about half a road's width long.
    min_spur_m: float = _option(10.0, "Drop dead-end branches off a junction shorter than this (metres).")
    # Speckles and parking bays.
    min_fragment_m: float = _option(
        20.0, "Drop isolated pieces whose roads add up to less than this (metres)."
    )
    # Roads hidden under trees or shadows.
    max_gap_m: float = _option(
        15.0, "Join dead ends that line up when closer than this (metres); 0 turns it off."
    )
    max_gap_angle_deg: float = _option(
        30.0, "Largest angle between a dead end's direction and the bridge (degrees)."
    )
    end_direction_m: float = _option(10.0, "A dead end's direction is taken over its last this many metres.")
    simplify_m: float = _option(1.0, "Douglas-Peucker tolerance (metres); 0 keeps every skeleton pixel.")
    # Holes (cars, shadows) would make loops in the skeleton.
    fill_holes_m2: float = _option(20.0, "Fill holes in the mask smaller than this area (square metres).")
    block_size: int = _option(2048, "Vectorise blocks of this many pixels a side (bounds the memory).")
    # It must exceed half the widest road (or road-like blob) in pixels: 128 covers 250 px, 75 m at 0.3 m;
    # narrower overlaps add spurs and breaks where wider blobs cross a block border.
    block_overlap: int = _option(
        128, "Pixels read around each block; more than half the widest road in pixels."
    )

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self) if f.name.endswith("_m")):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 metres, got {getattr(self, name)}")
        if not 0 <= self.max_gap_angle_deg <= 180:
            raise InputError(f"max_gap_angle_deg must be between 0 and 180, got {self.max_gap_angle_deg}")
        if self.block_size < 64 or self.block_overlap < 8:
            raise InputError(
                f"block_size must be >= 64 and block_overlap >= 8 pixels, "
                f"got {self.block_size} and {self.block_overlap}"
            )
