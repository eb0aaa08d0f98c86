"""Reading and writing the roadnet metadata of an ONNX file with the ``onnx`` package (no session needed)."""

from __future__ import annotations

from pathlib import Path

import onnx

from roadnet.model_metadata import ModelMetadata


def read_metadata(path: Path) -> ModelMetadata:
    """The roadnet metadata of the ONNX file at ``path``."""
    proto = onnx.load(str(path), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})


def write_metadata(path: Path, metadata: ModelMetadata) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` with ``metadata``."""
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
