PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test bench lint demo study install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the fast path on the project's machines: these wheels lie on local disk
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	# one thread per process: the suite is many small tensors and some multi-process tests
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

demo: $(STAMP)
	# one torch thread: 3 min instead of 14 on a busy 2-core machine, and numbers that
	# repeat across machines (float sums depend on the thread count)
	OMP_NUM_THREADS=1 $(BIN)/alignuniform demo --out runs/demo

study: $(STAMP)
	# the MNIST-1D sweep (48 encoders) and its analysis; resumable: rerun to continue.
	# One torch thread per worker: faster on a busy machine, and reproducible numbers
	OMP_NUM_THREADS=1 $(BIN)/alignuniform sweep sweeps/mnist1d_study.yaml --out runs/mnist1d_study --threads 1

clean:
	rm -rf $(VENV) build src/*.egg-info
