# Everything a fresh clone needs: `make demo` and `make test` create the virtualenv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAKE   ?= build/demo-lake

.PHONY: demo test lint lab bench report clean wheel-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks]"
	touch $(STAMP)

## demo: load the bundled sample into $(LAKE) and show what it holds
demo: $(STAMP)
	$(BIN)/kaudit demo --lake $(LAKE)

## test: lint, type-check and run every test (notebooks included)
test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## lab: JupyterLab on notebooks/, with this project's kernel
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

## bench: the performance numbers in BENCHMARKS.md (large generated corpora; takes minutes)
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
