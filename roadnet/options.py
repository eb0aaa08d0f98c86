"""How to run the engine on a scene, and the blanks filled from the model.

The service resolves a job's options against the model's metadata at upload, so it refuses what the
worker would refuse; the worker resolves them again when it runs, against the model it loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from roadnet.errors import InputError
from roadnet.model_metadata import ModelMetadata

#: Fast mode: larger windows at a stride of three quarters of the window (the network is fully convolutional),
#: about (256 / 64)^2 / (1024 / 768)^2 = 9 times fewer pixels through the network than the paper's.
FAST_WINDOW = 1024
FAST_STRIDE = 768


@dataclass(frozen=True)
class InferenceOptions:
    """How to run the sliding window; None takes the model's metadata (or, for the batch, the model's
    :meth:`~worker.inference.model.RoadModel.batch_size`)."""

    window: int | None = None
    stride: int | None = None
    batch_size: int | None = None
    #: Probability at and above which a pixel is a road.
    threshold: float | None = None
    #: 1-based bands used as R, G, B (see :mod:`roadnet.scene`).
    bands: tuple[int, int, int] | None = None
    #: Larger windows and stride (:data:`FAST_WINDOW`, :data:`FAST_STRIDE`) where not given.
    fast: bool = False


def resolve_options(options: InferenceOptions, meta: ModelMetadata) -> InferenceOptions:
    """Fill the options' blanks (the batch size aside: it depends on where the model runs) from the model's
    metadata and fast mode; a stride over the window is an :class:`InputError`. The service calls it
    too, to refuse at upload what the worker would refuse."""
    window = options.window or (FAST_WINDOW if options.fast else meta.window)
    stride = options.stride or (FAST_STRIDE * window // FAST_WINDOW if options.fast else meta.stride)
    threshold = meta.threshold if options.threshold is None else options.threshold
    if stride > window:
        raise InputError(
            f"stride {stride} is larger than the window {window}, which would leave pixels between windows "
            "without a prediction; use a stride of at most the window"
        )
    return replace(options, window=window, stride=stride, threshold=threshold)
