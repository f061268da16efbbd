# `make train` and `make test` are the only commands a new user needs: both set up the
# virtual environment on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch is installed first so lightning/kornia/torchmetrics do not pull a
# multi-GB CUDA build. GPU users: `make install TORCH=torch` (or their CUDA wheel spec).
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install train test lint bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,deploy]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m medsr.train experiment=quickstart

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/imresize.py
	$(PY) benchmarks/data_throughput.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/train_throughput.py

# The prepared GPU check (one CUDA GPU, <= 8 min): training speed vs a plain PyTorch loop,
# imresize on CUDA, tiled prediction, `pytest -m gpu`. Report: $(GPU_CHECK_OUT)/gpu_check.md
GPU_CHECK_OUT ?= outputs/gpu_check
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) outputs .pytest_cache
