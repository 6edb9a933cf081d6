# The two README commands: `make demo` (cyclr's main job) and `make test` (the whole suite).
# Each creates .venv on first use and installs pinned versions (constraints.txt pins torch==2.13.0).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test fuzz lint typecheck docs dist bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[bench]'
	touch $@

$(VENV)/.test-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[all,dev]'
	touch $@ $(VENV)/.demo-installed

# cyclr's main job: `cyclr bench` on the bundled digits task (no flags, no downloads).
demo: $(VENV)/.demo-installed
	$(BIN)/cyclr bench

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks examples tools
	$(BIN)/ruff format --check src tests benchmarks examples tools

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

# The documentation site into build/site (tests/test_docs.py builds it with --strict and runs its examples).
docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The release check: sdist and wheel build without warnings, pass `twine check --strict`, and import.
dist: $(VENV)/.test-installed
	PY=$(abspath $(BIN))/python bash tools/check_dist.sh

# Tests read the staged data sets beside the checkout and never download anything.
test: export CYCLR_DATA_DIR := $(or $(CYCLR_DATA_DIR),$(abspath ../shared/data))
test: export CYCLR_OFFLINE := 1
# The main run uses Keras' TensorFlow backend; the Keras tests run again on JAX and torch.
test: $(VENV)/.test-installed lint typecheck dist
	$(BIN)/python -m pytest -n 2 -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_keras.py tests/test_finder_keras.py tests/test_keras_adaptive.py
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_keras.py tests/test_finder_keras.py tests/test_keras_adaptive.py

# Broad random exploration (not in CI): fresh hypothesis examples, 10x each test's count.
fuzz: export CYCLR_DATA_DIR := $(or $(CYCLR_DATA_DIR),$(abspath ../shared/data))
fuzz: export CYCLR_OFFLINE := 1
fuzz: export HYPOTHESIS_PROFILE := fuzz
fuzz: $(VENV)/.test-installed
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider $(FUZZ_TESTS)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_keras.py -k random

FUZZ_TESTS := tests/test_parity_torch.py tests/test_parity_backends.py tests/test_jax.py tests/test_golden.py \
	tests/test_finder.py tests/test_keras.py tests/test_edges_fuzz.py tests/test_controllers.py tests/test_space.py

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/keras_overhead.py --backend tensorflow
	$(BIN)/python benchmarks/keras_overhead.py --backend jax
	$(BIN)/python benchmarks/harness_throughput.py
	$(BIN)/python benchmarks/engine_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build/site
