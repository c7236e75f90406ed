# Two commands do everything on a fresh machine:
#   make demo   set up, then run LipschitzLR beside a baseline on MNIST (history + figure)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Data directory in torchvision's layout (MNIST/raw/...). Override: make demo LIPSCHITZ_LR_DATA=/path
export LIPSCHITZ_LR_DATA ?= $(abspath $(CURDIR)/../shared/data)
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-slow lint bench docs notebooks clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m lipschitz_lr_paper_figures.demo --data-dir "$(LIPSCHITZ_LR_DATA)" --out runs/demo

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

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
