"""Faster copies of an exported model, written beside it for the worker to pick (``worker.inference.model``).

- INT8 for CPUs: ONNX Runtime's static quantization in QDQ format, weights int8 per output channel,
  activations uint8 with ranges calibrated on training patches. The exported graph takes raw 0-255
  RGB and normalises inside (``training.export.Normalized``), so the patches go in raw, exactly as the
  worker feeds windows; they come from the training images of the model's own split (``split.json``
  beside it), never the validation ones its score is measured on.
- float16 for CUDA: every weight and activation float16, input and output kept float32 so the worker's
  code does not change. (TensorRT needs no such file: it builds float16 engines from the float32 one.)

Both keep the model's roadnet metadata and add what was done to its provenance.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from roadnet.model_metadata import INPUT_NAME, ModelMetadata
from training.onnx_metadata import read_metadata, write_metadata
from worker.inference.model import variant_path

log = logging.getLogger(__name__)

#: Calibration patches: enough for stable activation ranges, few enough that calibration (which runs
#: the graph with every activation as an output) stays within a few GB of memory.
CALIBRATION_PATCHES = 48
CALIBRATION_BATCH = 8
CALIBRATION_SEED = 0


def _with_provenance(metadata: ModelMetadata, source: Path, variant: str, **details: Any) -> ModelMetadata:
    return replace(metadata, provenance={**metadata.provenance, variant: {"source": source.name, **details}})


def calibration_patches(
    data: list[Path], split: Path | None, window: int, count: int = CALIBRATION_PATCHES
) -> list[np.ndarray]:
    """``count`` raw 0-255 float32 patches ``(3, window, window)`` drawn (seeded) from the training images
    of ``split`` under ``data`` (every image found when ``split`` is None), on each image's patch grid."""
    from training.data import cut_patch, patch_origins
    from training.evaluate import pairs_of_split

    pairs = pairs_of_split(data, split, "train")
    grid = [(i, r, c) for i, pair in enumerate(pairs) for r, c in patch_origins(*pair.shape(), window)]
    chosen = sorted(random.Random(CALIBRATION_SEED).sample(grid, min(count, len(grid))))
    patches = []
    for i in sorted({i for i, _, _ in chosen}):
        image, _ = pairs[i].load()
        for _, r, c in (entry for entry in chosen if entry[0] == i):
            patches.append(cut_patch(image, r, c, window).transpose(2, 0, 1).astype(np.float32))
    return patches


def quantize_int8(
    model: Path,
    data: list[Path],
    *,
    split: Path | None = None,
    out: Path | None = None,
    patches: int = CALIBRATION_PATCHES,
) -> Path:
    """Write the INT8 copy of ``model`` (default ``M.int8.onnx`` beside ``M.onnx``); return its path.

    ``split`` defaults to ``split.json`` beside the model when it is there. Needs the ``train`` extra.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = out or variant_path(model, "int8")
    metadata = read_metadata(model)
    if split is None and model.with_name("split.json").is_file():
        split = model.with_name("split.json")
    samples = calibration_patches(data, split, metadata.window, patches)

    class Patches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = (
                np.stack(samples[i : i + CALIBRATION_BATCH])
                for i in range(0, len(samples), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="roadnet-quantize-") as tmp:
        # Shape inference and graph optimisation first (batch norms folded into convolutions), as
        # ONNX Runtime's quantization guide asks; its symbolic shape inference cannot follow the
        # dynamic height and width through the networks' padding, ONNX's own inference can.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Patches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    details = {"calibration_patches": len(samples), "split": split.name if split else None}
    write_metadata(out, _with_provenance(metadata, model, "int8", **details))
    log.info("wrote %s (%d calibration patches)", out, len(samples))
    return out


def convert_fp16(model: Path, *, out: Path | None = None) -> Path:
    """Write the float16 copy of ``model`` (default ``M.fp16.onnx``), input and output float32; return
    its path. Needs ``onnx`` (the ``train`` extra) but no torch."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = out or variant_path(model, "fp16")
    metadata = read_metadata(model)
    converted = convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    onnx.save(converted, str(out))
    write_metadata(out, _with_provenance(metadata, model, "fp16"))
    log.info("wrote %s", out)
    return out
