#!/usr/bin/env bash
# Proves pyproject's lower bounds: a fresh virtual environment with every declared dependency at its
# floor (each `NAME>=X` of the runtime and of the train, gpkg and dev extras installed as `NAME==X`
# through a pip constraints file), then the runtime's and training's fast tests in it. Usage:
# scripts/min-deps.sh [pytest args]. torch's floor is the CPU build `make` installs (torch==2.13.0):
# PyPI's older Linux torch wheels pull multi-GB CUDA libraries, so no older one is declared. The dev extra's tools that no
# runtime test imports (ruff, mypy, playwright) are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${MIN_DEPS_VENV:-.min-deps}
TORCH=torch==2.13.0
TESTS=(tests/test_foundation.py tests/test_scene.py tests/test_sliding_window.py tests/test_inference.py
  tests/test_vectorize.py tests/test_apls.py tests/test_preview.py tests/test_tiles.py tests/test_service_api.py
  tests/test_models.py tests/test_training.py)

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$PYTHON" - > "$VENV/constraints.txt" <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as stream:
    project = tomllib.load(stream)["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["train"] + extras["gpkg"] + extras["dev"]:
    floor = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
    if floor and floor[1] != "torch":
        print(f"{floor[1]}=={floor[2]}")
PY
echo "floors: $(tr '\n' ' ' < "$VENV/constraints.txt")"
# --only-binary: a floor without a wheel for this Python is not a version users can install either.
# Not --quiet: when the floors conflict, pip's explanation is what to read.
"$VENV/bin/pip" install --quiet --only-binary=:all: "$TORCH"
"$VENV/bin/pip" install --progress-bar off --only-binary=:all: -c "$VENV/constraints.txt" \
  -e '.[train,gpkg]' pytest httpx rio-cogeo skan
"$VENV/bin/pip" install --quiet --no-deps gdal-utils  # GDAL's validate_gpkg.py, as in the Makefile
"$VENV/bin/pip" freeze --exclude-editable > "$VENV/installed.txt"
# -W ignore (over pyproject's filters; a test's own filterwarnings mark still applies): the suite makes
# FastAPI's and Starlette's warnings errors, but the Starlette a floor admits (0.38) warns about its own
# imports of newer python-multipart and anyio; here the question is whether the code works at the
# floors, not whether they are warning-free.
"$VENV/bin/python" -m pytest -p no:cacheprovider -W ignore "${TESTS[@]}" "$@"
