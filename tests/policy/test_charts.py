"""The policy-tuning charts: drawn from the library's aggregates, offline, with tooltips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from kaudit_analytics import charts
from kaudit_analytics.policy import Suggestion, catalog_policy, compare, suggest

_CACHE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def suggestion(sample_events: pl.LazyFrame) -> Suggestion:
    return suggest(sample_events, base=catalog_policy("kubernetes-docs"))


@pytest.fixture(scope="module")
def compared(sample_events: pl.LazyFrame) -> pl.DataFrame:
    policies = {name: catalog_policy(name) for name in ("gce", "cis-minimal")}
    return compare(policies, sample_events)


def _charts(
    compared: pl.DataFrame, found: Suggestion
) -> dict[str, Callable[[], alt.TopLevelMixin]]:
    return {
        "policy_volume_chart": lambda: charts.policy_volume_chart(compared),
        "noisiest_traffic_chart": lambda: charts.noisiest_traffic_chart(found.noisiest),
        "rule_share_chart": lambda: charts.rule_share_chart(found.after.by_rule),
        "suggestion_chart": lambda: charts.suggestion_chart(found.rules),
    }


NAMES = ["policy_volume_chart", "noisiest_traffic_chart", "rule_share_chart", "suggestion_chart"]


def _views(node: dict[str, Any]) -> list[dict[str, Any]]:
    children = [child for key in ("layer", "hconcat", "vconcat") for child in node.get(key, [])]
    return [view for child in children for view in _views(child)] if children else [node]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_policy_chart_renders_offline_with_tooltips(
    name: str, compared: pl.DataFrame, suggestion: Suggestion
) -> None:
    chart = _charts(compared, suggestion)[name]()
    spec = chart.to_dict()
    assert vlc.vegalite_to_svg(spec).startswith("<svg")
    for view in _views(spec):
        assert "tooltip" in {**spec.get("encoding", {}), **view.get("encoding", {})}


@pytest.mark.slow
def test_charts_draw_what_the_library_computed(
    compared: pl.DataFrame, suggestion: Suggestion
) -> None:
    volume = charts.policy_volume_chart(compared).to_dict()
    drawn = next(iter(volume["datasets"].values()))
    assert [row["policy"] for row in drawn] == ["observed", "gce", "cis-minimal"]
    share = charts.rule_share_chart(suggestion.after.by_rule).to_dict()
    rows = next(iter(share["datasets"].values()))
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    before_after = charts.suggestion_chart(suggestion.rules).to_dict()
    rows = next(iter(before_after["datasets"].values()))
    assert sum(row["bytes"] for row in rows if row["when"] == "after") == suggestion.after.bytes


def test_policy_charts_refuse_raw_events(sample_events: pl.LazyFrame) -> None:
    with pytest.raises(ValueError, match="aggregate"):
        charts.rule_share_chart(sample_events.collect())
