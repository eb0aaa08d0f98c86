# Two entry points for a fresh Linux machine with Python 3.11: `make serve` and `make test`.
# Both work in a local virtual environment (.venv); nothing is installed system-wide except,
# for the tests, the Debian packages they drive (redis-server, chromium) when they are missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: serve test lint min-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The runtime install: service, worker and ONNX Runtime; no torch.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The development install: torch pinned to the CPU build first, so the `train` extra's range is
# already satisfied and no multi-GB CUDA build is pulled. Then GDAL's GeoPackage validator for the tests
# (osgeo_utils.samples.validate_gpkg, pure Python over sqlite3) with --no-deps: gdal-utils declares the
# GDAL bindings, which build from source against a system libgdal, and the validator does not need them.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev]'
	$(BIN)/pip install --quiet --no-deps 'gdal-utils>=3.8'
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/roadnet serve

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(VENV)/.dev lint
	bash scripts/install-system-deps.sh
	$(BIN)/pytest $(PYTEST_ARGS)

# Every declared dependency at its lower bound, in .min-deps/, running the runtime's fast tests.
min-deps:
	bash scripts/min-deps.sh

clean:
	rm -rf $(VENV) .min-deps .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
