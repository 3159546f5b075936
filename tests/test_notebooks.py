"""Run every notebook in ``notebooks/`` end to end on the bundled sample.

Conventions every notebook follows (so that this one test can run them all):

* one code cell tagged ``parameters`` near the top, defining ``lake`` (a lake path); the test
  injects a cell right after it that points ``lake`` at a lake ingested from ``data/sample``;
* the notebook is committed without outputs or execution counts;
* ``metadata.kaudit.expected_charts`` lists the titles of the Vega-Lite charts its outputs
  must contain (may be empty).

The kernel is ``python3`` of the interpreter running pytest (the repo venv, where ipykernel
is installed), with ``notebooks/`` as the working directory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import kaudit_analytics as ka
from tests.paths import REPO

ROOT = REPO
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SAMPLE = ROOT / "data" / "sample"
CELL_TIMEOUT_S = 180
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/"


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("notebook-lake")
    stats = ka.ingest(SAMPLE, lake)
    assert stats.events_written > 0
    return lake


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
    """Every Vega-Lite spec in the notebook's outputs (HTML embeds or the JSON MIME type)."""
    specs: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for mime, payload in data.items():
                if mime.startswith("application/vnd.vegalite"):
                    specs.append(payload)
                elif mime == "text/html" and VEGA_LITE_SCHEMA in payload:
                    # Altair's HTML templates pass the spec as a JSON object literal, either
                    # ``const spec = {...};`` (inline) or ``})({...}, embedOpt)`` (universal).
                    for match in re.finditer(r"(?:const spec = |\}\)\()(?=\{)", payload):
                        spec, _ = decoder.raw_decode(payload, match.end())
                        if VEGA_LITE_SCHEMA in str(spec.get("$schema", "")):
                            specs.append(spec)
    return specs


def titles(spec: dict[str, Any]) -> set[str]:
    """Titles of a spec and of every view inside it."""
    found: set[str] = set()
    title = spec.get("title")
    if isinstance(title, str):
        found.add(title)
    elif isinstance(title, dict) and isinstance(title.get("text"), str):
        found.add(title["text"])
    for key in ("layer", "vconcat", "hconcat", "concat"):
        for child in spec.get(key, []):
            found |= titles(child)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = read_notebook(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    parameters_index(notebook)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_the_sample(path: Path, sample_lake: Path) -> None:
    notebook = read_notebook(path)
    injected = code_cell(
        f"# Injected by tests/test_notebooks.py\nlake = {str(sample_lake)!r}",
        tags=["injected-parameters"],
    )
    notebook.cells.insert(parameters_index(notebook) + 1, injected)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any failing cell

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
    assert not missing, f"charts missing from {path.name}'s outputs: {missing}"
    for spec in specs:
        assert spec["$schema"].startswith(VEGA_LITE_SCHEMA + "v6")
        assert all(len(rows) <= 5_000 for rows in spec.get("datasets", {}).values())
    # Offline: no output may fetch a script from a CDN.
    html = [
        output.get("data", {}).get("text/html", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    ]
    online = [page for page in html if "cdn.jsdelivr.net" in page]
    assert not online, (
        f"{len(online)} output(s) of {path.name} load vega from a CDN; call "
        "kaudit_analytics.charts.enable_offline_rendering() before showing charts"
    )
