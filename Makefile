# Two commands do everything on a fresh machine:
#   make demo   set up, then run LipschitzLR beside a baseline on MNIST (history + figure)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Datasets live in data/ (torchvision's layout, MNIST/raw/...; downloaded there once when missing) unless
# $$LIPSCHITZ_LR_DATA names another folder: make demo LIPSCHITZ_LR_DATA=/path. This project's own machines keep
# MNIST in ../shared/data, which is used when it is there and nothing else is set.
ifeq ($(origin LIPSCHITZ_LR_DATA),undefined)
ifneq ($(wildcard $(CURDIR)/../shared/data/MNIST/raw/train-images-idx3-ubyte),)
export LIPSCHITZ_LR_DATA := $(abspath $(CURDIR)/../shared/data)
endif
endif
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-slow lint bench docs notebooks clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m lipschitz_lr_paper_figures.demo --out runs/demo

# Both cores (pytest-xdist; at most 4 workers on a larger machine), a test file per worker at a time.
test: setup
	$(PY) -m pytest -n auto --maxprocesses=4 --dist loadfile

test-slow: setup
	$(PY) -m pytest -m slow -n auto --maxprocesses=4 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: setup
	$(PY) -c "from lipschitz_lr.options import options_markdown; print(options_markdown(), end='')" > docs/options.md

notebooks: setup
	$(PY) notebooks/execute.py

bench: setup
	$(PY) benchmarks/scheduler_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
