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


def test_save_html_inlines_the_libraries(tmp_path: Path) -> None:
    page = charts.save_html(CHARTS["activity_dashboard"](), tmp_path / "board.html")
    html = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html
    assert "<script src=" not in html
    assert "vegaEmbed" in html
    assert "alice@example.com" in html
    assert len(html) > 500_000  # vega + vega-lite + vega-embed are in the page


def offline_html(chart: alt.TopLevelMixin) -> str:
    previous = alt.renderers.active
    charts.enable_offline_rendering()
    try:
        bundle = chart._repr_mimebundle_()
    finally:
        alt.renderers.enable(previous)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data is not None
    html: str = data["text/html"]
    return html


def test_offline_renderer_has_no_cdn() -> None:
    html = offline_html(CHARTS["hour_weekday_heatmap"]())
    assert "cdn.jsdelivr.net" not in html
    assert "<script src=" not in html
    assert json.dumps("Mon") in html


def test_chart_data_cannot_close_the_script() -> None:
    hostile = "</script><script>window.pwned = 1</script><!--"
    cells = activity.activity_by_user_and_verb(EVENTS).collect()
    cells = cells.with_columns(pl.lit(hostile).alias("actor"))
    html = offline_html(charts.verb_user_heatmap(cells))
    assert hostile not in html
    assert html.count("<script") == html.count("</script>") == 2
    assert "\\u003c/script\\u003e" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium to run the JavaScript")
def test_many_charts_draw_in_one_window_without_network(tmp_path: Path) -> None:
    # Notebook outputs share one window: every chart must draw, not only the first.
    names = ["hour_weekday_heatmap", "response_codes_chart", "activity_dashboard"]
    outputs = "".join(f"<div>{offline_html(CHARTS[name]())}</div>" for name in names)
    saved = charts.save_html(CHARTS["request_rate_timeline"](), tmp_path / "saved.html")
    page = tmp_path / "outputs.html"
    page.write_text(f"<html><body>{outputs}</body></html>", encoding="utf-8")
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
