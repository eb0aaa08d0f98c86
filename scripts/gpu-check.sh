#!/usr/bin/env bash
# The GPU checks in one go: `scripts/gpu-check.sh OUT_DIR [--dry-run]`, from any folder.
#
# 1. a virtual environment of its own (GPU_CHECK_DIR, default .gpu-check/ in the repository) that sees
#    the system's packages, so a GPU machine's preinstalled torch is reused instead of downloaded;
#    roadnet with its training extra, then ONNX Runtime swapped for onnxruntime-gpu with CUDA and cuDNN
#    as pip packages, and the TensorRT libraries for the same CUDA major version (README "GPU inference");
# 2. `pytest -m gpu tests/test_gpu.py`: fails unless CUDA and TensorRT really run the model, and agree
#    with the CPU;
# 3. `benchmarks/bench_inference.py --gpu`: CPU fp32, CUDA fp32, CUDA fp16, TensorRT: windows/s,
#    km^2/min at 0.5 m and stride 64, validation mIoU.
#
# OUT_DIR receives bench_gpu.json, bench.log, pytest-gpu.log and .xml, setup.log, nvidia-smi.txt and
# summary.json (each step's exit status and seconds); the script exits 1 when any step failed.
# Nothing is downloaded but packages, through pip as configured (PIP_INDEX_URL, PIP_FIND_LINKS and
# PIP_NO_INDEX work for a machine with a mirror or a folder of wheels). The labelled data comes from
# ROADNET_SHARED_DATA (default ../shared/data beside the repository). TORCH overrides the torch
# requirement (default: any torch, the system's if there is one).
#
# --dry-run, for a machine without a GPU: keeps the CPU onnxruntime, only collects the GPU tests, and
# runs the benchmark's code path with every configuration on the CPU on two validation images.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || ( $# -eq 2 && $2 != --dry-run ) ]]; then
    echo "usage: $0 OUT_DIR [--dry-run]" >&2
    exit 2
fi
OUT=$(realpath -m "$1")
DRY_RUN=$([[ ${2:-} == --dry-run ]] && echo 1 || echo 0)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${GPU_CHECK_DIR:-$REPO/.gpu-check}
VENV=$WORK/venv
PY=$VENV/bin/python
mkdir -p "$OUT" "$WORK"
export ROADNET_DATA_DIR=$WORK/data PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
STARTED=$SECONDS
declare -A STATUS SECONDS_OF

step() {  # step NAME LOG COMMAND...: run (stopping at its first error), log, time; the next step runs anyway
    local name=$1 log=$2 began=$SECONDS rc
    shift 2
    echo "[gpu-check +$((SECONDS - STARTED))s] $name (log: $log)"
    set +e
    (set -e; "$@") > >(tee -a "$log") 2>&1
    rc=$?
    set -e
    STATUS[$name]=$rc
    SECONDS_OF[$name]=$((SECONDS - began))
}

setup() {
    [[ -x $PY ]] || python3 -m venv --system-site-packages "$VENV"
    "$PY" -m pip install --quiet "${TORCH:-torch}"
    "$PY" -m pip install --quiet -e "$REPO[train]" pytest
    ((DRY_RUN)) && return
    # onnxruntime and onnxruntime-gpu write the same package folder: remove one before adding the other.
    "$PY" -m pip uninstall --quiet -y onnxruntime || true
    "$PY" -m pip install --quiet "onnxruntime-gpu[cuda,cudnn]"
    local cuda
    cuda=$("$PY" -c "
import importlib.metadata as m, re
print(max(re.findall(r'-cu(\d+)', ' '.join(m.requires('onnxruntime-gpu') or [])) or ['12']))")
    "$PY" -m pip install --quiet "tensorrt-cu${cuda}-libs"
}

gpu_libraries() {  # TensorRT's libraries, where ONNX Runtime's TensorRT provider looks for them
    local libs
    libs=$("$PY" -c "import os, tensorrt_libs; print(os.path.dirname(tensorrt_libs.__file__))")
    export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

gpu_tests() {
    cd "$REPO"
    if ((DRY_RUN)); then
        "$PY" -m pytest -m gpu --collect-only -q tests/test_gpu.py
    else
        "$PY" -m pytest -m gpu -p no:cacheprovider tests/test_gpu.py --junitxml "$OUT/pytest-gpu.xml"
    fi
}

benchmark() {
    cd "$REPO"
    local args=(--gpu --json "$OUT/bench_gpu.json")
    ((DRY_RUN)) && args+=(--cpu-only --val-images 2 --seconds 1)
    "$PY" benchmarks/bench_inference.py "${args[@]}"
}

providers() {
    "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
}

{ nvidia-smi || echo "no nvidia-smi"; } >"$OUT/nvidia-smi.txt" 2>&1
rm -f "$OUT/setup.log" "$OUT/pytest-gpu.log" "$OUT/bench.log"
step setup "$OUT/setup.log" setup
if ((!DRY_RUN && STATUS[setup] == 0)); then gpu_libraries; fi
step providers "$OUT/setup.log" providers
step gpu_tests "$OUT/pytest-gpu.log" gpu_tests
step benchmark "$OUT/bench.log" benchmark

summary="{\"dry_run\": $DRY_RUN, \"seconds\": $((SECONDS - STARTED)), \"steps\": {"
for name in setup providers gpu_tests benchmark; do
    summary+="\"$name\": {\"exit_status\": ${STATUS[$name]}, \"seconds\": ${SECONDS_OF[$name]}}, "
done
echo "${summary%, }}}" | tee "$OUT/summary.json"
for name in setup providers gpu_tests benchmark; do
    ((STATUS[$name] == 0)) || exit 1
done
