"""Run every notebook in ``notebooks/`` end to end on the bundled sample.

Two ways, each as people run them:

* as JupyterLab does after ``make demo``: the kernel's working directory is ``notebooks/``,
  nothing is injected, and the notebook's own defaults must find the demo lake and show
  data (``test_notebook_runs_with_its_own_defaults``);
* as papermill does: a cell injected after the ``parameters`` cell points ``lake`` at a lake
  ingested from ``data/sample`` (``test_notebook_runs_on_the_sample``).

Conventions every notebook follows (so that these tests can run them all):

* one code cell tagged ``parameters`` near the top, defining ``lake`` (a lake path);
* the notebook is committed without outputs or execution counts;
* ``metadata.kaudit.expected_charts`` lists the titles of the charts its outputs must
  contain (may be empty); charts are Vega specs for JupyterLab's own renderer, no script.

The kernel is ``python3`` of the interpreter running pytest (the repo venv, where ipykernel
is installed).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

import kaudit_analytics as ka
from kaudit_analytics.charts import VEGA_MIME
from kaudit_analytics.cli import main
from tests.paths import REPO

ROOT = REPO
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SAMPLE = ROOT / "data" / "sample"
CELL_TIMEOUT_S = 180
VEGA_SCHEMA = "https://vega.github.io/schema/vega/v5.json"
#: A chart output is its spec and its data: without the data, a few kB (the Vega libraries
#: inlined by altair's HTML renderers were 0.9 MB per chart).
MAX_SPEC_BYTES = 40_000

#: What each notebook's defaults must have found, checked in a cell run after the others.
SHOWS_DATA = {
    "compliance_report.ipynb": "assert report.events > 0, window",
    "explore.ipynb": "assert activity.summary(events).collect()['requests'].item() > 0",
    "policy_tuning.ipynb": "assert events.select('audit_id').collect().height > 0",
}


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("notebook-lake")
    stats = ka.ingest(SAMPLE, lake)
    assert stats.events_written > 0
    return lake


def _make_variable(name: str) -> str:
    """The value of ``NAME ?= value`` in the Makefile."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{name}\s*\??=\s*(\S+)", text, flags=re.M)
    assert match, name
    return match.group(1)


@pytest.fixture(scope="session")
def demo_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of notebooks/ next to build/demo-lake, as ``make demo`` leaves a clone."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    result = CliRunner().invoke(main, ["demo", "--lake", str(root / _make_variable("LAKE"))])
    assert result.exit_code == 0, result.output
    return root


# nbformat has no type annotations: its two calls are wrapped here, ignores in one place.
def read_notebook(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def code_cell(source: str, *, tags: list[str]) -> Any:
    return nbformat.v4.new_code_cell(source, metadata={"tags": tags})  # type: ignore[no-untyped-call]


def parameters_index(notebook: Any) -> int:
    tagged = [
        i
        for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def chart_specs(notebook: Any) -> list[dict[str, Any]]:
    """Every chart in the notebook's outputs: the Vega specs JupyterLab draws."""
    return [
        output["data"][VEGA_MIME]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if VEGA_MIME in output.get("data", {})
    ]


def titles(node: Any) -> set[str]:
    """Every title in a Vega spec: the chart's, and those of the views nested in it."""
    found: set[str] = set()
    if isinstance(node, dict):
        title = node.get("title")
        if isinstance(title, str):
            found.add(title)
        elif isinstance(title, dict) and isinstance(title.get("text"), str):
            found.add(title["text"])
        for value in node.values():
            found |= titles(value)
    elif isinstance(node, list):
        for value in node:
            found |= titles(value)
    return found


def execute(notebook: Any, cwd: Path) -> None:
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any failing cell


def check_outputs(notebook: Any, name: str) -> None:
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    expected = notebook.metadata.get("kaudit", {}).get("expected_charts", [])
    specs = chart_specs(notebook)
    rendered = set().union(*(titles(spec) for spec in specs)) if specs else set()
    missing = [title for title in expected if title not in rendered]
    assert not missing, f"charts missing from {name}'s outputs: {missing}"
    for spec in specs:
        assert spec["$schema"] == VEGA_SCHEMA
        without_data = {**spec, "data": [{**d, "values": []} for d in spec.get("data", [])]}
        assert len(json.dumps(without_data)) < MAX_SPEC_BYTES
    # Offline and light: no output loads or carries a script (JupyterLab draws the specs).
    scripts = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "<script" in json.dumps(output.get("data", {}))
    ]
    assert not scripts, (
        f"{len(scripts)} output(s) of {name} carry a script; call "
        "kaudit_analytics.charts.enable_offline_rendering() before showing charts"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = read_notebook(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    parameters_index(notebook)


def test_every_notebook_has_a_check_of_its_defaults() -> None:
    assert sorted(SHOWS_DATA) == [path.name for path in NOTEBOOKS]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_with_its_own_defaults(path: Path, demo_checkout: Path) -> None:
    """Run All in JupyterLab after ``make demo``: from notebooks/, with nothing injected."""
    copy = demo_checkout / "notebooks" / path.name
    notebook = read_notebook(copy)
    notebook.cells.append(code_cell(SHOWS_DATA[path.name], tags=["test-check"]))
    execute(notebook, copy.parent)
    check_outputs(notebook, path.name)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_the_sample(path: Path, sample_lake: Path) -> None:
    notebook = read_notebook(path)
    injected = code_cell(
        f"# Injected by tests/test_notebooks.py\nlake = {str(sample_lake)!r}",
        tags=["injected-parameters"],
    )
    notebook.cells.insert(parameters_index(notebook) + 1, injected)
    notebook.cells.append(code_cell(SHOWS_DATA[path.name], tags=["test-check"]))
    execute(notebook, path.parent)
    check_outputs(notebook, path.name)
