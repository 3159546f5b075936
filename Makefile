# Everything a fresh clone needs: `make demo` and `make test` create the virtualenv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAKE   ?= build/demo-lake

.PHONY: demo test lint lab bench report sample browser java clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks,spark,sigma]"
	touch $(STAMP)

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
lab: demo
	$(BIN)/jupyter lab --notebook-dir=notebooks

## report: the compliance notebook on the bundled sample, as build/compliance_report.html
report: demo
	$(BIN)/papermill notebooks/compliance_report.ipynb build/compliance_report.ipynb \
	  -p lake $(abspath $(LAKE)) -p since 7d -p until 2024-09-13 --no-progress-bar
	$(BIN)/jupyter nbconvert --to html --no-input build/compliance_report.ipynb --output-dir build \
	  --HTMLExporter.require_js_url= --HTMLExporter.mathjax_url=  # no CDN scripts: it opens offline

## sample: rebuild the committed sample (data/sample) and its packaged copy
sample: $(STAMP)
	$(BIN)/python -c "from kaudit_analytics.sample import write_sample; \
	  write_sample('data/sample')"

## bench: the performance numbers in BENCHMARKS.md (large generated corpora; takes minutes)
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
