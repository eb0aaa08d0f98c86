"""What an exported road model says about itself: the contract between training's export and inference.

The ONNX file's ``metadata_props`` hold these fields as strings under keys ``roadnet.<field>``
(lists and dicts as JSON). The model's input ``image`` is float32 ``(N, 3, H, W)`` raw 0-255 RGB:
normalisation by ``mean``/``std`` is the graph's first operation, recorded here for provenance. The
output ``probability`` is ``(N, 1, H, W)`` in [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from roadnet.errors import ModelError

PREFIX = "roadnet."
INPUT_NAME = "image"
OUTPUT_NAME = "probability"


@dataclass(frozen=True)
class ModelMetadata:
    """Architecture, inference defaults and provenance of an exported model."""

    arch: str
    mean: list[float]
    std: list[float]
    window: int = 256
    stride: int = 64
    threshold: float = 0.5
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    gsd_m: float | None = None  # the ground resolution (metres per pixel) it was trained at, on average

    def to_props(self) -> dict[str, str]:
        """The fields as ONNX ``metadata_props`` (all strings)."""
        return {
            PREFIX + key: value if isinstance(value, str) else json.dumps(value)
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Read the fields back; a model without them raises :class:`ModelError`."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = props.get(PREFIX + f.name)
            if raw is None:
                continue
            values[f.name] = raw if f.name == "arch" else json.loads(raw)
        missing = {"arch", "mean", "std"} - values.keys()
        if missing:
            raise ModelError(
                f"the model lacks roadnet metadata {sorted(PREFIX + m for m in missing)}; "
                "export it with `roadnet export`"
            )
        return cls(**values)
