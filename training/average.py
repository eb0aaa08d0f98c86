"""Weight averaging of exported models: one ONNX file whose every weight is the weighted mean of theirs.

The paper averages the snapshots of one run (:mod:`training.ensemble`), in PyTorch, before export.
This averages models that were exported already, whose checkpoints may be gone: two defaults where
one was trained from the other (``init_from``) lie in one basin, and their average can keep what each
does best at the inference cost of one (a "model soup"), where prediction averaging pays for both.

An exported file has no batch norms left: the exporter folds each into the convolution before it, so
the average is taken over the folded weights, that is over the function each layer computes, and no
statistics need recomputing. The files must be the same graph (architecture, kwargs, node for node)
with the same input normalisation. Shapes can be checked; a common ancestry cannot: the channels of
two unrelated networks do not line up and their average is noise, so score the result (``roadnet
evaluate``) before shipping it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from roadnet.errors import InputError, ModelError
from roadnet.model_metadata import ModelMetadata
from training.onnx_metadata import load_onnx, metadata_of, set_metadata

#: Metadata fields that must agree for an average to mean anything.
_SAME = ("arch", "model_kwargs", "mean", "std", "window")


Signature = tuple[list[tuple[str, tuple[str, ...]]], dict[str, tuple[int, ...]]]


def _graph_signature(model: onnx.ModelProto) -> Signature:
    """Every node's operation and inputs, and every initializer's shape."""
    nodes = [(node.op_type, tuple(node.input)) for node in model.graph.node]
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return nodes, shapes


def average_models(
    paths: Sequence[Path], out: Path, weights: Sequence[float] | None = None, threshold: float | None = None
) -> ModelMetadata:
    """Write to ``out`` the weighted mean (``weights``, normalised; equal when None) of the exported
    models at ``paths``; return its metadata: the first model's, with ``threshold`` (default: the
    weighted mean of theirs), the weighted mean ``gsd_m`` and a provenance naming every input."""
    if len(paths) < 2:
        raise InputError("averaging needs at least two models")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise InputError(f"give one non-negative weight per model ({len(paths)}), not {weights}")
    share = np.asarray(weights, dtype=np.float64) / sum(weights)

    models = [load_onnx(path) for path in paths]
    metas = [metadata_of(model) for model in models]
    for path, meta, model in zip(paths[1:], metas[1:], models[1:], strict=True):
        for name in _SAME:
            if getattr(meta, name) != getattr(metas[0], name):
                raise ModelError(
                    f"{path} differs from {paths[0]} in {name} "
                    f"({getattr(meta, name)!r} vs {getattr(metas[0], name)!r}): "
                    "only models of one network can be averaged"
                )
        if _graph_signature(model) != _graph_signature(models[0]):
            raise ModelError(
                f"{path} is not the same graph as {paths[0]}: export both with one roadnet version"
            )

    arrays = [{i.name: numpy_helper.to_array(i) for i in model.graph.initializer} for model in models]
    merged = models[0]
    for init in merged.graph.initializer:
        first = arrays[0][init.name]
        if not np.issubdtype(first.dtype, np.floating):  # shapes and indices, equal in every graph
            continue
        mean = sum(s * a[init.name].astype(np.float64) for s, a in zip(share, arrays, strict=True))
        init.CopyFrom(numpy_helper.from_array(np.asarray(mean, dtype=first.dtype), init.name))

    gsds = [meta.gsd_m for meta in metas if meta.gsd_m is not None]
    metadata = ModelMetadata(
        arch=metas[0].arch,
        mean=metas[0].mean,
        std=metas[0].std,
        window=metas[0].window,
        stride=metas[0].stride,
        threshold=threshold if threshold is not None else float(share @ [m.threshold for m in metas]),
        model_kwargs=metas[0].model_kwargs,
        provenance={
            "averaged": [
                {"file": path.name, "weight": float(s), "provenance": meta.provenance}
                for path, s, meta in zip(paths, share, metas, strict=True)
            ]
        },
        gsd_m=round(float(share @ gsds), 3) if len(gsds) == len(metas) else None,
    )
    set_metadata(merged, metadata)
    onnx.checker.check_model(merged)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(out))
    return metadata
