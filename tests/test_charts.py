from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from kaudit_analytics import activity, charts

EVENTS = activity.example_events()

# Each chart with the aggregate it is drawn from, as a notebook would call them.
CHARTS: dict[str, Callable[[], alt.TopLevelMixin]] = {
    "verb_user_heatmap": lambda: charts.verb_user_heatmap(
        activity.activity_by_user_and_verb(EVENTS).collect()
    ),
    "resource_verb_heatmap": lambda: charts.resource_verb_heatmap(
        activity.activity_by_resource_and_verb(EVENTS).collect(), measure="bytes"
    ),
    "namespace_user_heatmap": lambda: charts.namespace_user_heatmap(
        activity.activity_by_namespace_and_user(EVENTS).collect()
    ),
    "hour_weekday_heatmap": lambda: charts.hour_weekday_heatmap(
        activity.activity_by_hour_and_weekday(EVENTS).collect()
    ),
    "request_rate_timeline": lambda: charts.request_rate_timeline(
        activity.request_rate(EVENTS).collect()
    ),
    "latency_distribution": lambda: charts.latency_distribution(
        activity.latency_histogram(EVENTS).collect()
    ),
    "latency_percentiles_chart": lambda: charts.latency_percentiles_chart(
        activity.latency_percentiles(EVENTS, by="resource").collect()
    ),
    "top_talkers_chart": lambda: charts.top_talkers_chart(
        activity.top_talkers(EVENTS).collect(), measure="bytes"
    ),
    "response_codes_chart": lambda: charts.response_codes_chart(
        activity.response_codes(EVENTS).collect()
    ),
    "activity_dashboard": lambda: charts.activity_dashboard(
        activity.top_talkers(EVENTS).collect(),
        activity.activity_by_user_and_verb(EVENTS).collect(),
        activity.activity_by_namespace_and_user(EVENTS).collect(),
    ),
}


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_spec(name: str, json_snapshot: SnapshotAssertion) -> None:
    spec = CHARTS[name]().to_dict()
    assert spec == json_snapshot


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_compiles_and_renders_offline(name: str) -> None:
    # vl-convert runs the real Vega-Lite compiler and Vega renderer, no network.
    svg = vlc.vegalite_to_svg(CHARTS[name]().to_dict())
    assert svg.startswith("<svg")


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_every_view_has_tooltips(name: str) -> None:
    spec = CHARTS[name]().to_dict()

    def views(node: dict[str, Any]) -> list[dict[str, Any]]:
        children = [
            child
            for key in ("layer", "vconcat", "hconcat", "concat")
            for child in node.get(key, [])
        ]
        if not children:
            return [node]
        return [view for child in children for view in views(child)]

    for view in views(spec):
        encoding = {**spec.get("encoding", {}), **view.get("encoding", {})}
        assert "tooltip" in encoding, view


def test_theme_is_registered_and_enabled() -> None:
    assert alt.theme.active == "kaudit"
    spec = CHARTS["verb_user_heatmap"]().to_dict()
    assert spec["config"]["font"].startswith("system-ui")


def test_heatmap_sorts_verbs_reads_first() -> None:
    x = CHARTS["verb_user_heatmap"]().to_dict()["encoding"]["x"]
    assert x["sort"][:3] == ["get", "list", "watch"]


def test_charts_refuse_raw_events() -> None:
    raw = EVENTS.collect()
    with pytest.raises(ValueError, match="lacks column"):
        charts.verb_user_heatmap(raw)
    too_big = pl.DataFrame(
        {
            "actor": [f"u{i}" for i in range(charts.MAX_ROWS + 1)],
            "verb": "get",
            "requests": 1,
            "events": 1,
            "bytes": 1,
        }
    )
    with pytest.raises(ValueError, match="aggregate"):
        charts.verb_user_heatmap(too_big)


def test_dashboard_click_filters_both_heatmaps() -> None:
    spec = CHARTS["activity_dashboard"]().to_dict()
    assert spec["params"][0]["name"] == "actor_pick"
    heatmaps = spec["vconcat"][1]["hconcat"]
    assert [view["transform"] for view in heatmaps] == [[{"filter": {"param": "actor_pick"}}]] * 2


def test_chart_data_is_the_aggregate_only() -> None:
    cells = activity.activity_by_user_and_verb(EVENTS).collect()
    spec = charts.verb_user_heatmap(cells).to_dict()
    (rows,) = spec["datasets"].values()
    assert len(rows) == cells.height
    assert set(rows[0]) == set(cells.columns)


@pytest.mark.slow
def test_save_html_inlines_the_libraries(tmp_path: Path) -> None:
    page = charts.save_html(CHARTS["activity_dashboard"](), tmp_path / "board.html")
    html = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html
    assert "<script src=" not in html
    assert "vegaEmbed" in html
    assert "alice@example.com" in html
    assert len(html) > 500_000  # vega + vega-lite + vega-embed are in the page


def notebook_output(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """What a notebook cell stores for ``chart`` once ``enable_offline_rendering`` ran."""
    previous = alt.renderers.active
    charts.enable_offline_rendering()
    try:
        bundle = chart._repr_mimebundle_()
    finally:
        alt.renderers.enable(previous)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_notebook_output_is_a_vega_spec_jupyterlab_draws(name: str) -> None:
    data = notebook_output(CHARTS[name]())
    assert set(data) == {charts.VEGA_MIME, "text/plain"}
    spec = data[charts.VEGA_MIME]
    assert spec["$schema"] == "https://vega.github.io/schema/vega/v5.json"
    assert spec["marks"]
    text = json.dumps(data)
    assert "<script" not in text
    assert "cdn.jsdelivr.net" not in text
    assert len(text) < 40_000  # the spec and its data; altair's inline HTML was 0.9 MB


def test_to_vega_keeps_the_data_and_the_interactions() -> None:
    spec = CHARTS["activity_dashboard"]().to_dict()
    vega = charts.to_vega(spec)
    values = {d["name"]: d["values"] for d in vega["data"] if "values" in d}
    assert sorted(map(len, values.values())) == sorted(map(len, spec["datasets"].values()))
    signals = {signal["name"] for signal in vega.get("signals", [])}
    assert "actor_pick" in signals  # the click that filters the heatmaps
    assert charts.VEGA_MIME == "application/vnd.vega.v5+json"


def test_chart_data_cannot_close_the_script(tmp_path: Path) -> None:
    hostile = "</script><script>window.pwned = 1</script><!--"
    cells = activity.activity_by_user_and_verb(EVENTS).collect()
    cells = cells.with_columns(pl.lit(hostile).alias("actor"))
    chart = charts.verb_user_heatmap(cells)
    # In a notebook the data is JSON that JupyterLab draws as text: no page to break.
    assert hostile in json.dumps(notebook_output(chart))
    html = charts.save_html(chart, tmp_path / "hostile.html").read_text(encoding="utf-8")
    assert hostile not in html
    assert html.count("<script") == html.count("</script>") == 2
    assert "\\u003c/script\\u003e" in html


def _executed_notebook(names: list[str], markdown: str = "# Charts") -> Any:
    """A notebook whose outputs are the given charts, as a kernel would have stored them."""
    nbformat = pytest.importorskip("nbformat")
    cells = [nbformat.v4.new_markdown_cell(markdown)]
    for number, name in enumerate(names, start=1):
        cell = nbformat.v4.new_code_cell(f"charts.{name}(...)", execution_count=number)
        cell.outputs = [
            nbformat.v4.new_output(
                "execute_result", data=notebook_output(CHARTS[name]()), execution_count=number
            )
        ]
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.slow
def test_export_notebook_inlines_the_libraries_once(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    names = ["hour_weekday_heatmap", "response_codes_chart", "activity_dashboard"]
    source = tmp_path / "charts.ipynb"
    nbformat.write(_executed_notebook(names), source)
    html = charts.export_notebook(source, tmp_path / "charts.html").read_text(encoding="utf-8")
    assert html.count("if (!window.vegaEmbed)") == 1  # the libraries, once
    assert len(html) > 500_000
    assert html.count('class="kaudit-chart"') == len(names)
    assert "<script src=" not in html
    assert "cdn" not in html.lower()
    assert "hour_weekday_heatmap" not in html  # outputs only, by default
    with_code = charts.export_notebook(source, tmp_path / "code.html", show_code=True)
    assert "hour_weekday_heatmap" in with_code.read_text(encoding="utf-8")


@pytest.mark.slow
def test_export_notebook_without_charts_carries_no_library(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    source = tmp_path / "text.ipynb"
    nbformat.write(_executed_notebook([], markdown="# Nothing to draw"), source)
    html = charts.export_notebook(source, tmp_path / "text.html").read_text(encoding="utf-8")
    assert "vegaEmbed" not in html
    assert "Nothing to draw" in html


# --------------------------------------------------------------------------- legibility


def _visible_labels(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each axis's drawn labels, from the scenegraph Vega renders (hidden ones left out)."""
    axes: list[list[dict[str, Any]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("role") == "axis-label":
                axes.append(
                    [i for i in node.get("items", []) if i.get("opacity", 1) and i.get("text")]
                )
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(vlc.vegalite_to_scenegraph(spec))
    return axes


def _box(label: dict[str, Any]) -> tuple[float, float, float, float]:
    # Text width as a browser's sans-serif draws it, generously: 0.62 em per character.
    size = float(label.get("fontSize", 10))
    width = 0.62 * size * len(str(label["text"])) + 2
    left = label["x"] - {"center": width / 2, "right": width}.get(label.get("align", "left"), 0)
    top = label["y"] - {"middle": size / 2, "bottom": size}.get(label.get("baseline", "top"), 0)
    return left, left + width, top, top + size


def overlapping_labels(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Pairs of axis labels that a reader sees drawn over each other."""
    pairs = []
    for labels in _visible_labels(spec):
        if any(label.get("angle", 0) for label in labels):
            continue  # slanted labels run along their own lines
        boxes = [(_box(label), str(label["text"])) for label in labels]
        for i, (a, text_a) in enumerate(boxes):
            for b, text_b in boxes[i + 1 :]:
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    pairs.append((text_a, text_b))
    return pairs


BUSY = 2_000_000  # a busy cluster's counts: millions of requests, gigabytes
BUSY_CHARTS: dict[str, Callable[[], alt.TopLevelMixin]] = {
    "top_talkers_busy": lambda: charts.top_talkers_chart(
        activity.top_talkers(EVENTS).collect().with_columns(pl.col("requests") * BUSY)
    ),
    "top_talkers_bytes_busy": lambda: charts.top_talkers_chart(
        activity.top_talkers(EVENTS).collect().with_columns(pl.col("bytes") * BUSY),
        measure="bytes",
    ),
    "response_codes_busy": lambda: charts.response_codes_chart(
        activity.response_codes(EVENTS).collect().with_columns(pl.col("requests") * BUSY)
    ),
    "response_codes_many": lambda: charts.response_codes_chart(
        pl.DataFrame(
            {
                "code": [200, 201, 204, 301, 304, 400, 401, 403, 404, 409, 422, 429, 500, 503],
                "outcome": "success",
                "requests": [10**k for k in range(14)],
            },
            schema_overrides={"code": pl.Int16},
        )
    ),
}


@pytest.mark.parametrize("name", sorted({**CHARTS, **BUSY_CHARTS}))
def test_no_axis_labels_overlap(name: str) -> None:
    chart = {**CHARTS, **BUSY_CHARTS}[name]()
    assert overlapping_labels(chart.to_dict()) == []


def test_the_overlap_check_can_fail() -> None:
    crowded = (
        alt.Chart(pl.DataFrame({"code": [str(c) for c in range(200, 230)], "n": 1}))
        .mark_bar()
        .encode(x=alt.X("code:N").axis(labelAngle=0), y="n:Q")
        .properties(width=alt.Step(12))
    )
    assert overlapping_labels(crowded.to_dict())


def test_top_talkers_draw_no_other_bar_and_say_how_much_it_is() -> None:
    # Everyone else together made ten times the requests of the busiest actor.
    other = pl.col("actor") == activity.OTHER
    talkers = (
        activity.top_talkers(EVENTS, top=1)
        .collect()
        .with_columns(pl.when(other).then(pl.col("requests") * 10 * BUSY).otherwise(BUSY))
    )
    spec = charts.top_talkers_chart(talkers).to_dict()
    (rows,) = spec["datasets"].values()
    assert activity.OTHER not in {row["actor"] for row in rows}
    rest = talkers.filter(pl.col("actor") == activity.OTHER)["requests"].item()
    assert spec["title"]["subtitle"] == f"Everyone else: {rest:,} requests."
    # The axis ends near the largest drawn bar, not at the other bucket's total.
    (axis,) = [
        item
        for labels in _visible_labels(spec)
        for item in labels
        if str(item["text"]).endswith("M")
    ][-1:]
    assert rest > 10 * BUSY
    assert float(str(axis["text"]).removesuffix("M")) * 1e6 <= BUSY


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium to run the JavaScript")
def test_exported_pages_draw_every_chart_without_network(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    names = ["hour_weekday_heatmap", "response_codes_chart", "activity_dashboard"]
    source = tmp_path / "charts.ipynb"
    nbformat.write(_executed_notebook(names), source)
    page = charts.export_notebook(source, tmp_path / "charts.html")
    saved = charts.save_html(CHARTS["request_rate_timeline"](), tmp_path / "saved.html")
    assert CHROMIUM is not None
    for path, expected in ((page, len(names)), (saved, 1)):
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
                "--virtual-time-budget=10000",
                "--dump-dom",
                path.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert dom.count('class="marks"') == expected, path.name
