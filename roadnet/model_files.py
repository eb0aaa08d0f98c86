"""Where the road model is and what its metadata says, for the service and the worker alike.

Finding the model imports neither torch nor ONNX Runtime, so the API process can report on it
(``/healthz``) without loading the engine. Reading the metadata needs ONNX Runtime, imported only then:
the service does so once per model file, to check a job's options against the model it never runs.
The engine that runs the model is :mod:`worker.inference.model`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from roadnet.errors import ModelError
from roadnet.model_metadata import ModelMetadata
from roadnet.settings import get_settings

DEFAULT_MODEL_NAME = "roadnet-risnet.onnx"


def weights_dir() -> Path:
    """The folder of the shipped model weights, found without importing ``models`` (which imports torch)."""
    spec = importlib.util.find_spec("models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the roadnet 'models' package is not installed; reinstall roadnet (pip install .)")
    return Path(spec.submodule_search_locations[0]) / "weights"


def default_model_path() -> Path:
    """``ROADNET_MODEL_PATH`` when set, else the model that ships with roadnet."""
    return get_settings().model_path or weights_dir() / DEFAULT_MODEL_NAME


def read_metadata(path: Path | None = None) -> ModelMetadata:
    """The metadata of ``path`` (default: :func:`default_model_path`), without keeping a session: for the
    service, which checks a job's options against the model but never runs it."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; set ROADNET_MODEL_PATH to an exported model")
    return _read_metadata(path.resolve(), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _read_metadata(path: Path, mtime_ns: int) -> ModelMetadata:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own untyped errors for unreadable models
        raise ModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
    return ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
