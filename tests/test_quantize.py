"""`roadnet quantize`: the INT8 and float16 copies of a real exported model, and how the worker picks them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx.helper import get_node_attr_value

from roadnet.cli import cli
from roadnet.model_metadata import ModelMetadata
from training.onnx_metadata import read_metadata
from training.quantize import calibration_patches, convert_fp16
from worker.inference.gpu import MAX_BATCH, gpu_batch_size
from worker.inference.model import file_for_provider, load_model, variant_path


@pytest.fixture(scope="module")
def quantized(tiny_onnx_model: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model with its INT8 sibling, written by the command line."""
    model = tmp_path_factory.mktemp("quantized") / "tiny.onnx"
    shutil.copy(tiny_onnx_model, model)
    data = str(shared_data / "epfl_roads")
    result = CliRunner().invoke(cli, ["quantize", str(model), "--int8", "--data", data])
    assert result.exit_code == 0, result.output
    return model


def test_int8_copy_is_static_qdq_per_channel_with_the_metadata(quantized: Path) -> None:
    int8 = variant_path(quantized, "int8")
    assert int8.name == "tiny.int8.onnx" and int8.is_file()
    graph = onnx.load(str(int8)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    # Per-channel weights: each int8 weight is dequantized with one scale per output channel (its axis).
    initializers = {init.name: init for init in graph.initializer}
    weights = [
        (initializers[node.input[0]], initializers[node.input[1]], get_node_attr_value(node, "axis"))
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers
        and initializers[node.input[0]].data_type == onnx.TensorProto.INT8
    ]  # fmt: skip
    assert weights and all(list(scale.dims) == [weight.dims[axis]] for weight, scale, axis in weights)
    source, copy = read_metadata(quantized), read_metadata(int8)
    assert copy.arch == source.arch and copy.mean == source.mean and copy.window == source.window
    assert copy.provenance["int8"] == {"source": "tiny.onnx", "calibration_patches": 48, "split": None}


def test_worker_runs_the_int8_copy_on_cpu_and_it_agrees_with_fp32(quantized: Path, shared_data: Path) -> None:
    assert file_for_provider(quantized, "CPUExecutionProvider") == variant_path(quantized, "int8")
    assert file_for_provider(quantized, "CUDAExecutionProvider") == quantized  # no fp16 copy here
    auto = load_model(quantized, threads=1, providers=["CPUExecutionProvider"])
    exact = load_model(quantized, threads=1, providers=["CPUExecutionProvider"], variants=False)
    assert auto.path.name == "tiny.int8.onnx" and exact.path.name == "tiny.onnx"
    windows = np.stack(calibration_patches([shared_data / "epfl_roads"], None, 256, count=4))
    fp32, int8 = exact.predict(windows), auto.predict(windows)
    assert int8.shape == fp32.shape == (4, 1, 256, 256)
    # Measured on this untrained tiny model: mean difference 0.013 (probabilities 0-1).
    assert float(np.abs(int8 - fp32).mean()) < 0.05


def test_calibration_patches_are_raw_training_patches(shared_data: Path, tmp_path: Path) -> None:
    split = tmp_path / "split.json"
    split.write_text('{"train": ["epfl/satImage_001"], "val": ["epfl/satImage_002"]}')
    patches = calibration_patches([shared_data / "epfl_roads"], split, 256, count=10)
    # One 400 x 400 training image: a 2 x 2 grid of 256-px patches, the edges black-filled.
    assert len(patches) == 4 and all(p.shape == (3, 256, 256) and p.dtype == np.float32 for p in patches)
    assert max(float(p.max()) for p in patches) > 200  # raw 0-255: normalisation is inside the graph


def test_fp16_copy_keeps_float32_io_and_the_metadata(tiny_onnx_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    shutil.copy(tiny_onnx_model, model)
    fp16 = convert_fp16(model)
    assert fp16 == variant_path(model, "fp16") == file_for_provider(model, "CUDAExecutionProvider")
    proto = onnx.load(str(fp16))
    io = [*proto.graph.input, *proto.graph.output]
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in io)
    conv_weights = {node.input[1] for node in proto.graph.node if node.op_type == "Conv"}
    assert conv_weights and all(
        init.data_type == onnx.TensorProto.FLOAT16
        for init in proto.graph.initializer
        if init.name in conv_weights
    )
    metadata = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    assert metadata.provenance["fp16"] == {"source": "tiny.onnx"}


def test_quantize_needs_a_choice_and_calibration_data(tiny_onnx_model: Path) -> None:
    runner = CliRunner()
    assert "--int8, --fp16 or both" in runner.invoke(cli, ["quantize", str(tiny_onnx_model)]).output
    assert "give --data" in runner.invoke(cli, ["quantize", str(tiny_onnx_model), "--int8"]).output


def test_gpu_batch_size_follows_free_memory() -> None:
    assert gpu_batch_size(256, free_bytes=0) == 1
    assert gpu_batch_size(256, free_bytes=80 * 1024**3) == MAX_BATCH
    small = gpu_batch_size(256, free_bytes=2 * 1024**3)
    assert 1 < small < MAX_BATCH
    assert gpu_batch_size(1024, free_bytes=2 * 1024**3) == max(1, small // 16)
