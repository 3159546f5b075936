# Everything a fresh clone needs: `make demo` and `make test` create the virtualenv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAKE   ?= build/demo-lake

.PHONY: demo test lint lab bench report sample browser java clean

# The first run installs everything (a few minutes): each step says what it does, and pip
# shows what it fetches.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "kaudit-analytics needs Python 3.11 or newer; '$(PYTHON)' is" \
	    "$$($(PYTHON) --version 2>&1 || echo 'not installed'): run make PYTHON=python3.12 $(MAKECMDGOALS)"; \
	  exit 1; }
	@echo "==> Creating the virtualenv $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> Updating pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> Installing kaudit-analytics and its dependencies (polars, DuckDB, JupyterLab,"
	@echo "    PySpark, pySigma ...): about 1 GB, 2 to 4 minutes on a first run"
	$(BIN)/python -m pip install --progress-bar on -e ".[dev,notebooks,spark,sigma]"
	@touch $(STAMP)
	@echo "==> $(VENV) is ready"

## demo: load the bundled sample into $(LAKE) and show what it holds
demo: $(STAMP)
	$(BIN)/kaudit demo --lake $(LAKE)

## test: lint, type-check and run every test (notebooks included)
test: $(STAMP) lint browser java
	$(BIN)/python -m pytest

# The report's browser test needs Chromium; install it where we can (root with apt), else the
# test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the browser test will be skipped"; }

# The Spark engine's tests need a Java 17+ runtime; install it where we can (root with apt), else
# those tests skip and say why.
java:
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null) || \
	  echo "java not installed: the Spark tests will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check kaudit_analytics tests bench
	$(BIN)/ruff format --check kaudit_analytics tests bench
	$(BIN)/mypy

## lab: JupyterLab on notebooks/, with this project's kernel and the demo lake loaded
# Containers run as root, which JupyterLab refuses unless told; LAB_ARGS adds options
# (e.g. LAB_ARGS="--ip=0.0.0.0 --no-browser" to reach it from outside a container).
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: demo
	@echo "==> JupyterLab on notebooks/ (the demo lake is $(LAKE)); Ctrl-C twice to stop"
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ROOT) $(LAB_ARGS)

## report: the compliance notebook on the bundled sample, as build/compliance_report.html
report: demo
	$(BIN)/papermill notebooks/compliance_report.ipynb build/compliance_report.ipynb \
	  -p lake $(abspath $(LAKE)) -p since 7d -p until 2024-09-13 --no-progress-bar
	@# One page, the Vega libraries inlined once, no CDN script: it opens offline.
	$(BIN)/python -c "from kaudit_analytics.charts import export_notebook; \
	  export_notebook('build/compliance_report.ipynb', 'build/compliance_report.html')"

## sample: rebuild the committed sample (data/sample) and its packaged copy
sample: $(STAMP)
	$(BIN)/python -c "from kaudit_analytics.sample import write_sample; \
	  write_sample('data/sample')"

## bench: the performance numbers in BENCHMARKS.md (large generated corpora; takes minutes)
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
