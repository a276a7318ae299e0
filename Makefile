PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test bench gpu-check lint docs wheel-check demo study studies install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the fast path on the project's machines: these wheels lie on local disk
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	# one thread per process: the suite is many small tensors and some multi-process tests
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

gpu-check: $(STAMP)
	# what only a CUDA device shows, in a few minutes: the report is runs/gpu_check.json and
	# the exit is non-zero on any failure; without CUDA it says so and exits 0
	$(BIN)/python -m benchmarks.gpu_check --out runs/gpu_check.json

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks setup.py docs/_hooks studies
	# mypy at the strictness stated in pyproject.toml [tool.mypy], over src/alignuniform
	$(BIN)/mypy

docs: $(STAMP)
	# strict: a broken reference, a missing page or an unreadable docstring fails the build
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "site/index.html"

wheel-check: $(STAMP)
	# sdist + wheel, twine check, the wheel in a fresh venv, used from outside the repository
	PYTHON=$(BIN)/python .ci/wheel_check.sh

demo: $(STAMP)
	# one torch thread: 3 min instead of 14 on a busy 2-core machine, and numbers that
	# repeat across machines (float sums depend on the thread count)
	OMP_NUM_THREADS=1 $(BIN)/alignuniform demo --out runs/demo

study: $(STAMP)
	# the MNIST-1D sweep (48 encoders) and its analysis; resumable: rerun to continue.
	# One torch thread per worker: faster on a busy machine, and reproducible numbers
	OMP_NUM_THREADS=1 $(BIN)/alignuniform sweep sweeps/mnist1d_study.yaml --out runs/mnist1d_study --threads 1

studies: $(STAMP)
	# every committed study's analysis.json and the Kendall heat maps, from the results.csv
	# files alone (studies/*/README.md say how each table was made)
	OMP_NUM_THREADS=1 $(BIN)/alignuniform sweep study studies
	# each study's own figures and tables (studies/*/analyze.py), from its results.csv
	# (a study still running has no results.csv yet: skipped)
	for script in studies/*/analyze.py; do \
		table=$$(dirname $$script)/results.csv; [ -f $$table ] || continue; \
		$(BIN)/python $$script $$table || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
