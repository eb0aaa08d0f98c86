"""Reading and writing the roadnet metadata of an ONNX file with the ``onnx`` package (no session needed)."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from roadnet.errors import ModelError
from roadnet.model_metadata import ModelMetadata


def load_onnx(path: Path, load_external_data: bool = True) -> onnx.ModelProto:
    """The ONNX model at ``path``; a file that is not one is a :class:`ModelError` naming it."""
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except DecodeError as exc:
        raise ModelError(f"{path} is not an ONNX model ({exc})") from exc


def metadata_of(proto: onnx.ModelProto) -> ModelMetadata:
    """The roadnet metadata of a loaded ONNX model."""
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})


def set_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the ``metadata_props`` of a loaded ONNX model with ``metadata``."""
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: Path) -> ModelMetadata:
    """The roadnet metadata of the ONNX file at ``path``."""
    return metadata_of(load_onnx(path, load_external_data=False))


def write_metadata(path: Path, metadata: ModelMetadata) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` with ``metadata``."""
    proto = load_onnx(path)
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))
