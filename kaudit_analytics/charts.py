"""Every Altair chart of the project: the activity aggregates and the compliance report.

One function per chart; each takes an already-aggregated ``pl.DataFrame`` (never raw
events: a frame over ``MAX_ROWS`` rows is refused) and returns an Altair chart whose data
is inlined in its spec. Importing this module registers and enables the ``kaudit`` theme.

Offline use (air-gapped clusters are common, so no chart may fetch a script):

* In JupyterLab, call ``enable_offline_rendering()`` once: each chart's output is then its
  Vega spec under ``application/vnd.vega.v5+json``, which JupyterLab's built-in renderer
  draws (a few kB per chart, data included). JupyterLab 4 bundles Vega 5 and Vega-Lite 5
  while altair 6 writes Vega-Lite 6, so ``to_vega`` compiles each chart with the installed
  altair's exact Vega-Lite version (vl-convert, in process); Vega 6 changed packaging, not
  the spec, so Vega 5 draws it. Altair's own choices each fail one way: its default
  renderer loads the libraries from a CDN, its ``mimetype`` renderer writes Vega-Lite 6
  that JupyterLab cannot draw, and its inline HTML stores ~0.9 MB of JavaScript per chart
  (an 8 MB notebook for ten charts).
* To a file, ``save_html(chart, path)`` writes one self-contained page (the libraries,
  from vl-convert, inlined once), and ``export_notebook(ipynb, html)`` writes an executed
  notebook as one page with the libraries inlined once, whatever the number of charts.
  (``chart.save(path, inline=True)`` also inlines the libraries, but pastes the spec
  unescaped into the script: a ``</script>`` inside the data, such as an attacker's user
  agent, would end it.)

The spec goes into the page as JSON with ``<``, ``>`` and ``&`` escaped, so strings from
the audit log cannot close the script element.

Examples
--------
>>> from kaudit_analytics import activity, charts
>>> cells = activity.activity_by_user_and_verb(activity.example_events()).collect()
>>> spec = charts.verb_user_heatmap(cells).to_dict()
>>> spec["mark"]["type"], sorted(spec["encoding"])
('rect', ['color', 'tooltip', 'x', 'y'])
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

import altair as alt
import polars as pl

from kaudit_analytics.exprs import ACTOR_KINDS, OTHER
from kaudit_analytics.schema import CODE, LEVELS, NAMESPACE, VERB, VERBS

__all__ = [
    "MAX_ROWS",
    "VEGA_MIME",
    "activity_dashboard",
    "enable_offline_rendering",
    "export_notebook",
    "hour_weekday_heatmap",
    "latency_distribution",
    "latency_percentiles_chart",
    "namespace_user_heatmap",
    "noisiest_traffic_chart",
    "policy_volume_chart",
    "report_findings_chart",
    "report_status_chart",
    "report_timeline_chart",
    "request_rate_timeline",
    "resource_verb_heatmap",
    "response_codes_chart",
    "rule_share_chart",
    "save_html",
    "suggestion_chart",
    "to_vega",
    "top_talkers_chart",
    "verb_user_heatmap",
]

#: Charts take aggregates: more rows than this means the caller forgot to aggregate.
MAX_ROWS = 5_000

Measure = Literal["requests", "events", "bytes"]

# Verbs in the order people read them: reads, writes, then anything else as it comes.
_VERB_ORDER = list(VERBS)
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_OUTCOME_DOMAIN = ["success", "denied", "client_error", "server_error", "unknown"]
_OUTCOME_RANGE = ["#4c956c", "#d1495b", "#edae49", "#7b2cbf", "#9e9e9e"]
_KIND_DOMAIN = list(ACTOR_KINDS)
_KIND_RANGE = ["#00798c", "#66a182", "#8d96a3", "#2e4057", "#edae49", "#d1495b", "#bdbdbd"]
_MEASURE_TITLE = {"requests": "requests", "events": "events", "bytes": "bytes logged"}
#: Axis numbers as people read them at a glance: 2M, 400k, 0 (tooltips keep every digit).
#: Each label on its own: an axis ``format`` would give every tick the largest one's prefix.
_SI_LABEL = "format(datum.value, '~s')"
_ACTOR_PICK = "actor_pick"


@alt.theme.register("kaudit", enable=True)
def kaudit_theme() -> alt.theme.ThemeConfig:
    """The project's look: quiet axes, one sequential scheme, readable labels."""
    return {
        "config": {
            "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
            "view": {"continuousWidth": 560, "continuousHeight": 280, "strokeWidth": 0},
            "axis": {
                "labelFontSize": 11,
                "titleFontSize": 12,
                "titleFontWeight": "normal",
                "gridColor": "#ececec",
                "domainColor": "#9e9e9e",
                "tickColor": "#9e9e9e",
                "labelLimit": 320,
            },
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal"},
            "title": {
                "fontSize": 15,
                "anchor": "start",
                "fontWeight": 600,
                "subtitleColor": "#616161",
            },
            "bar": {"color": "#00798c"},
            "line": {"color": "#00798c"},
            "area": {"color": "#00798c"},
        }
    }


def _data(frame: pl.DataFrame, required: tuple[str, ...]) -> pl.DataFrame:
    """Check the frame is a small aggregate with the columns a chart reads."""
    if frame.height > MAX_ROWS:
        msg = (
            f"a chart takes an aggregate of at most {MAX_ROWS} rows, got {frame.height}: "
            "aggregate the events first (kaudit_analytics.activity)"
        )
        raise ValueError(msg)
    missing = [name for name in required if name not in frame.columns]
    if missing:
        msg = f"the chart's frame lacks column(s) {', '.join(missing)}"
        raise ValueError(msg)
    # Vega-Lite reads enums and categoricals as plain strings.
    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))


def _measure_tooltips(measure: Measure) -> list[alt.Tooltip]:
    others = [name for name in ("requests", "events", "bytes") if name != measure]
    return [
        alt.Tooltip(f"{measure}:Q", title=_MEASURE_TITLE[measure], format=","),
        *(alt.Tooltip(f"{name}:Q", title=_MEASURE_TITLE[name], format=",") for name in others),
    ]


def _heatmap(
    frame: pl.DataFrame,
    *,
    x: tuple[str, str, list[str] | None],
    y: tuple[str, str],
    measure: Measure,
    title: str,
) -> alt.Chart:
    (x_field, x_title, x_order), (y_field, y_title) = x, y
    data = _data(frame, (x_field, y_field, "requests", "events", "bytes"))
    by_total = alt.EncodingSortField(field=measure, op="sum", order="descending")
    chart: alt.Chart = (
        alt.Chart(data, title=title)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X(f"{x_field}:N", title=x_title, sort=x_order or by_total).axis(labelAngle=-40),
            # The chart's title names the rows; an axis title would sit on the long labels.
            y=alt.Y(f"{y_field}:N", title=None, sort=by_total),
            color=alt.Color(f"{measure}:Q", title=_MEASURE_TITLE[measure]).scale(
                type="symlog", scheme="blues"
            ),
            tooltip=[
                alt.Tooltip(f"{y_field}:N", title=y_title),
                alt.Tooltip(f"{x_field}:N", title=x_title),
                *_measure_tooltips(measure),
            ],
        )
    )
    return chart


def verb_user_heatmap(cells: pl.DataFrame, *, measure: Measure = "requests") -> alt.Chart:
    """Verb x actor heatmap, from ``activity.activity_by_user_and_verb``.

    Actors are sorted by their total, verbs reads first then writes; the colour scale is
    symmetric-log so that one noisy controller does not wash out everyone else.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> cells = activity.activity_by_user_and_verb(activity.example_events()).collect()
    >>> charts.verb_user_heatmap(cells, measure="bytes").to_dict()["encoding"]["color"]["field"]
    'bytes'
    """
    return _heatmap(
        cells,
        x=(VERB, "verb", _VERB_ORDER),
        y=("actor", "actor"),
        measure=measure,
        title="Who does what",
    )


def resource_verb_heatmap(cells: pl.DataFrame, *, measure: Measure = "requests") -> alt.Chart:
    """Resource x verb heatmap, from ``activity.activity_by_resource_and_verb``.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> cells = activity.activity_by_resource_and_verb(activity.example_events()).collect()
    >>> charts.resource_verb_heatmap(cells).to_dict()["encoding"]["y"]["field"]
    'resource_key'
    """
    return _heatmap(
        cells,
        x=(VERB, "verb", _VERB_ORDER),
        y=("resource_key", "resource"),
        measure=measure,
        title="What is touched, and how",
    )


def namespace_user_heatmap(cells: pl.DataFrame, *, measure: Measure = "requests") -> alt.Chart:
    """Namespace x actor heatmap, from ``activity.activity_by_namespace_and_user``.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> cells = activity.activity_by_namespace_and_user(activity.example_events()).collect()
    >>> charts.namespace_user_heatmap(cells).to_dict()["encoding"]["x"]["field"]
    'actor'
    """
    return _heatmap(
        cells,
        x=("actor", "actor", None),
        y=(NAMESPACE, "namespace"),
        measure=measure,
        title="Who works where",
    )


def hour_weekday_heatmap(cells: pl.DataFrame, *, measure: Measure = "requests") -> alt.Chart:
    """Hour of day x weekday (UTC), from ``activity.activity_by_hour_and_weekday``.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> cells = activity.activity_by_hour_and_weekday(activity.example_events()).collect()
    >>> charts.hour_weekday_heatmap(cells).to_dict()["encoding"]["y"]["sort"]
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']
    """
    data = _data(cells, ("day", "hour", "requests", "events", "bytes"))
    chart: alt.Chart = (
        alt.Chart(data, title="When (UTC)")
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("hour:O", title="hour of day (UTC)").axis(labelAngle=0),
            y=alt.Y("day:O", title=None, sort=_WEEKDAYS),
            color=alt.Color(f"{measure}:Q", title=_MEASURE_TITLE[measure]).scale(
                type="symlog", scheme="blues"
            ),
            tooltip=[
                alt.Tooltip("day:O", title="day"),
                alt.Tooltip("hour:O", title="hour"),
                *_measure_tooltips(measure),
            ],
        )
    )
    return chart


def request_rate_timeline(rate: pl.DataFrame) -> alt.LayerChart:
    """Requests per bucket as an area, with 4xx and 5xx counts as lines over it.

    Takes ``activity.request_rate``; drag to pan and scroll to zoom along time.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> rate = activity.request_rate(activity.example_events()).collect()
    >>> [layer["mark"]["type"] for layer in charts.request_rate_timeline(rate).to_dict()["layer"]]
    ['area', 'line']
    """
    data = _data(rate, ("time", "requests", "client_errors", "server_errors", "bucket_seconds"))
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    base = alt.Chart(data, title="Request rate").encode(
        x=alt.X("time:T", title="time (UTC)"),
    )
    tooltip = [
        alt.Tooltip("time:T", title="from", format="%Y-%m-%d %H:%M"),
        alt.Tooltip("bucket_seconds:Q", title="bucket (s)"),
        alt.Tooltip("requests:Q", format=","),
        alt.Tooltip("client_errors:Q", title="4xx", format=","),
        alt.Tooltip("server_errors:Q", title="5xx", format=","),
    ]
    total = base.mark_area(opacity=0.35, interpolate="step-after").encode(
        y=alt.Y("requests:Q", title="requests per bucket"), tooltip=tooltip
    )
    errors = (
        base.transform_fold(["client_errors", "server_errors"], as_=["series", "count"])
        .transform_calculate(status="datum.series === 'client_errors' ? '4xx' : '5xx'")
        .mark_line(interpolate="step-after", strokeWidth=1.5)
        .encode(
            y="count:Q",
            color=alt.Color("status:N", title="errors").scale(
                domain=["4xx", "5xx"], range=["#edae49", "#7b2cbf"]
            ),
            tooltip=tooltip,
        )
    )
    layered: alt.LayerChart = (total + errors).add_params(zoom)
    return layered


def latency_distribution(histogram: pl.DataFrame) -> alt.Chart:
    """Latency histogram on a log axis, one colour per verb, from ``activity.latency_histogram``.

    Click a verb in the legend to show it alone.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> hist = activity.latency_histogram(activity.example_events()).collect()
    >>> charts.latency_distribution(hist).to_dict()["encoding"]["x"]["scale"]
    {'type': 'log'}
    """
    data = _data(histogram, (VERB, "bin_start_ms", "bin_end_ms", "requests"))
    pick = alt.selection_point(fields=[VERB], bind="legend")
    chart: alt.Chart = (
        alt.Chart(data, title="Latency of completed requests")
        # Bars spanning [bin_start, bin_end) need an explicit stack: with x and x2 set,
        # Vega-Lite would otherwise draw each as a horizontal hairline.
        .transform_stack(stack="requests", groupby=["bin_start_ms"], as_=["_y0", "_y1"])
        .mark_rect(opacity=0.85)
        .encode(
            x=alt.X("bin_start_ms:Q", title="latency (ms, log scale)").scale(type="log"),
            x2="bin_end_ms:Q",
            y=alt.Y("_y0:Q", title="requests"),
            y2="_y1:Q",
            color=alt.Color(f"{VERB}:N", title="verb", sort=_VERB_ORDER),
            opacity=alt.when(pick).then(alt.value(0.9)).otherwise(alt.value(0.1)),
            tooltip=[
                alt.Tooltip(f"{VERB}:N"),
                alt.Tooltip("bin_start_ms:Q", title="from ms", format=".3~f"),
                alt.Tooltip("bin_end_ms:Q", title="to ms", format=".3~f"),
                alt.Tooltip("requests:Q", format=","),
            ],
        )
        .add_params(pick)
    )
    return chart


def latency_percentiles_chart(percentiles: pl.DataFrame) -> alt.LayerChart:
    """p50-p99 range per key with the p90 marked, from ``activity.latency_percentiles``.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> pct = activity.latency_percentiles(activity.example_events()).collect()
    >>> len(charts.latency_percentiles_chart(pct).to_dict()["layer"])
    2
    """
    key = VERB if VERB in percentiles.columns else "resource_key"
    data = _data(percentiles, (key, "requests", "p50_ms", "p90_ms", "p99_ms", "max_ms"))
    base = alt.Chart(data, title="Latency percentiles (ms)").encode(
        y=alt.Y(
            f"{key}:N",
            title=None,
            sort=alt.EncodingSortField(field="p90_ms", op="max", order="descending"),
        ),
        tooltip=[
            alt.Tooltip(f"{key}:N"),
            alt.Tooltip("requests:Q", format=","),
            *(
                alt.Tooltip(f"{p}:Q", format=".1f")
                for p in ("p50_ms", "p90_ms", "p99_ms", "max_ms")
            ),
        ],
    )
    spread = base.mark_rule(strokeWidth=3, opacity=0.6).encode(
        x=alt.X("p50_ms:Q", title="ms (log scale): p50 to p99, dot at p90").scale(type="log"),
        x2="p99_ms:Q",
    )
    p90 = base.mark_point(filled=True, size=60).encode(x="p90_ms:Q")
    layered: alt.LayerChart = spread + p90
    return layered


def top_talkers_chart(talkers: pl.DataFrame, *, measure: Measure = "requests") -> alt.Chart:
    """Horizontal bars of the heaviest actors, coloured by kind, from ``activity.top_talkers``.

    The ``"(other)"`` row (everyone past the top N, often more than any one actor) is not a
    bar: it would set the axis and has no kind to colour it. Its total is in the subtitle.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> talkers = activity.top_talkers(activity.example_events(), top=2).collect()
    >>> spec = charts.top_talkers_chart(talkers, measure="bytes").to_dict()
    >>> spec["encoding"]["x"]["field"], spec["title"]["subtitle"]
    ('bytes', 'Everyone else: 700 bytes logged.')
    """
    data = _data(talkers, ("actor", "actor_kind", "requests", "events", "bytes"))
    rest = data.filter(pl.col("actor") == OTHER)[measure].sum()
    subtitle = f"Everyone else: {rest:,} {_MEASURE_TITLE[measure]}." if rest else ""
    chart: alt.Chart = (
        alt.Chart(
            data.filter(pl.col("actor") != OTHER),
            title=alt.Title(
                f"Top talkers by {_MEASURE_TITLE[measure]}", subtitle=subtitle or alt.Undefined
            ),
        )
        .mark_bar()
        .encode(
            x=alt.X(f"{measure}:Q", title=_MEASURE_TITLE[measure]).axis(
                labelExpr=_SI_LABEL, tickCount=6, labelOverlap=True, labelFlush=True
            ),
            y=alt.Y("actor:N", title=None, sort=None),
            color=alt.Color("actor_kind:N", title="kind").scale(
                domain=_KIND_DOMAIN, range=_KIND_RANGE
            ),
            tooltip=[
                alt.Tooltip("actor:N"),
                alt.Tooltip("actor_kind:N", title="kind"),
                *_measure_tooltips(measure),
                *(
                    alt.Tooltip(f"{name}:Q", format=",")
                    for name in ("writes", "denied")
                    if name in data.columns
                ),
            ],
        )
    )
    return chart


def _decades(largest: Any) -> list[int]:
    """Ticks at 0, 1, 10, 100 … up to ``largest``: a log-like axis whose labels never crowd."""
    top = int(largest or 0)
    return [0, *(10**k for k in range(len(str(top)) if top else 0))]


def response_codes_chart(codes: pl.DataFrame) -> alt.Chart:
    """Requests per response code, coloured by outcome, from ``activity.response_codes``.

    Counts span orders of magnitude (millions of 200s, a handful of 500s): the axis is
    logarithmic, and each code gets a bar wide enough for its label.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> codes = activity.response_codes(activity.example_events()).collect()
    >>> charts.response_codes_chart(codes).to_dict()["encoding"]["color"]["field"]
    'outcome'
    """
    data = _data(codes, (CODE, "outcome", "requests")).with_columns(
        pl.col(CODE).cast(pl.String).fill_null("(none)")
    )
    chart: alt.Chart = (
        alt.Chart(data, title="Response codes")
        .mark_bar()
        .encode(
            x=alt.X(f"{CODE}:N", title="HTTP status", sort="ascending").axis(labelAngle=0),
            y=alt.Y("requests:Q", title="requests (log scale)")
            .scale(type="symlog")
            .axis(values=_decades(data["requests"].max()), labelExpr=_SI_LABEL),
            color=alt.Color("outcome:N").scale(domain=_OUTCOME_DOMAIN, range=_OUTCOME_RANGE),
            tooltip=[
                alt.Tooltip(f"{CODE}:N"),
                alt.Tooltip("outcome:N"),
                alt.Tooltip("requests:Q", format=","),
            ],
        )
        .properties(width=alt.Step(40))
    )
    return chart


def activity_dashboard(
    talkers: pl.DataFrame,
    by_user_and_verb: pl.DataFrame,
    by_namespace_and_user: pl.DataFrame,
    *,
    measure: Measure = "requests",
) -> alt.VConcatChart:
    """Top talkers over two heatmaps; click an actor's bar to filter both heatmaps to them.

    Shift-click adds actors, a click on empty space shows everyone again.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> events = activity.example_events()
    >>> board = charts.activity_dashboard(
    ...     activity.top_talkers(events).collect(),
    ...     activity.activity_by_user_and_verb(events).collect(),
    ...     activity.activity_by_namespace_and_user(events).collect(),
    ... )
    >>> [p["name"] for p in board.to_dict()["params"]]
    ['actor_pick']
    """
    pick = alt.selection_point(name=_ACTOR_PICK, fields=["actor"], on="click", clear="dblclick")
    bars = (
        top_talkers_chart(talkers, measure=measure)
        .add_params(pick)
        .encode(opacity=alt.when(pick).then(alt.value(1.0)).otherwise(alt.value(0.3)))
    )
    verbs = verb_user_heatmap(by_user_and_verb, measure=measure).transform_filter(pick)
    places = namespace_user_heatmap(by_namespace_and_user, measure=measure).transform_filter(pick)
    board: alt.VConcatChart = alt.vconcat(bars, alt.hconcat(verbs, places)).resolve_scale(
        color="independent"
    )
    return board


# --------------------------------------------------------------------------- compliance report

_STATUS_COLORS = {"fail": "#c0392b", "not assessable": "#7f8c8d", "pass": "#27ae60"}
_SEVERITY_COLORS = {
    "critical": "#7b1e1e",
    "high": "#c0392b",
    "medium": "#e67e22",
    "low": "#f1c40f",
    "info": "#95a5a6",
}


def report_status_chart(counts: pl.DataFrame) -> alt.TopLevelMixin:
    """Controls per result (``status``, ``controls``): a compliance report's first chart."""
    data = _data(counts, ("status", "controls"))
    chart: alt.TopLevelMixin = (
        alt.Chart(data, title="Controls by result")
        .mark_bar()
        .encode(
            x=alt.X("controls:Q", title="controls"),
            y=alt.Y("status:N", sort=list(_STATUS_COLORS), title=None),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=list(_STATUS_COLORS), range=list(_STATUS_COLORS.values())),
                legend=None,
            ),
            tooltip=["status:N", "controls:Q"],
        )
        .properties(width=360, height=90)
    )
    return chart


def report_findings_chart(controls: pl.DataFrame) -> alt.TopLevelMixin:
    """Findings per control, in the frame's order, with a tick for the previous window.

    ``controls`` has one row per control: ``control``, ``title``, ``status``, ``severity``,
    ``findings``, ``previous``; a control that is not assessable draws no bar.
    """
    data = _data(
        controls, ("control", "title", "status", "severity", "findings", "previous")
    ).with_columns(
        pl.when(pl.col("status") == "not assessable")
        .then(None)
        .otherwise(pl.col("findings"))
        .alias("findings")
    )
    base = alt.Chart(data, title="Findings per control (tick: previous window)").encode(
        y=alt.Y("control:N", sort=data["control"].to_list(), title=None)
    )
    bars = base.mark_bar().encode(
        x=alt.X("findings:Q", title="findings"),
        color=alt.Color(
            "severity:N",
            scale=alt.Scale(domain=list(_SEVERITY_COLORS), range=list(_SEVERITY_COLORS.values())),
        ),
        tooltip=["control:N", "title:N", "status:N", "findings:Q", "previous:Q"],
    )
    ticks = base.mark_tick(color="#2c3e50", thickness=2).encode(x="previous:Q")
    chart: alt.TopLevelMixin = alt.layer(bars, ticks).properties(width=420, height=alt.Step(16))
    return chart


def report_timeline_chart(daily: pl.DataFrame) -> alt.TopLevelMixin:
    """Events and findings per UTC day (``day``, ``events``, ``findings``), one row each."""
    data = _data(daily, ("day", "events", "findings")).unpivot(
        index="day", on=["events", "findings"], variable_name="series"
    )
    data = data.with_columns(pl.col("day").cast(pl.String))
    chart: alt.TopLevelMixin = (
        alt.Chart(data, title="Events and findings per day (UTC)")
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("series:N", title=None),
            row=alt.Row("series:N", title=None),
            tooltip=["day:T", "series:N", "value:Q"],
        )
        .resolve_scale(y="independent")
        .properties(width=520, height=110)
    )
    return chart


# --------------------------------------------------------------------------- rendering

_RENDERER = "kaudit"
#: The MIME type JupyterLab's built-in renderer draws (Vega 5; Vega 6 changed no spec).
VEGA_MIME = "application/vnd.vega.v5+json"
_VEGA_SCHEMA = "https://vega.github.io/schema/vega/v5.json"
_VEGALITE_MIME = re.compile(r"^application/vnd\.vegalite\.v\d+\+json$")


@cache
def _vl_version() -> str:
    """The Vega-Lite version of the installed altair's schema, as vl-convert names it."""
    version: str = import_module("altair.utils._importers").vl_version_for_vl_convert()
    return version


@cache
def _vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script, wrapped so it can run again safely."""
    # vl-convert is imported only when drawing: loading logs never needs it.
    bundle: str = import_module("vl_convert").javascript_bundle(vl_version=_vl_version())
    # The bundle starts with top-level ``const`` declarations and ends by setting
    # window.vegaEmbed: run it inside a function, and only once per window.
    return f"if (!window.vegaEmbed) {{ (function () {{\n{bundle}\n}})(); }}"


def to_vega(spec: dict[str, Any]) -> dict[str, Any]:
    """Compile a Vega-Lite spec (``chart.to_dict()``) into the Vega spec JupyterLab draws.

    JupyterLab's own renderer knows Vega-Lite up to v5 and Vega v5, while altair writes
    Vega-Lite v6. The installed altair's exact Vega-Lite version (through vl-convert, no
    network) compiles the chart to Vega, which Vega-Lite 6 targets as Vega 6 and which
    Vega 5 draws: Vega 6 changed packaging, not the spec. Selections, tooltips and zoom
    are Vega signals and survive the compilation.

    Examples
    --------
    >>> from kaudit_analytics import activity, charts
    >>> codes = activity.response_codes(activity.example_events()).collect()
    >>> vega = charts.to_vega(charts.response_codes_chart(codes).to_dict())
    >>> vega["$schema"], [mark["type"] for mark in vega["marks"]]
    ('https://vega.github.io/schema/vega/v5.json', ['rect'])
    """
    vega: dict[str, Any] = import_module("vl_convert").vegalite_to_vega(
        spec, vl_version=_vl_version()
    )
    return {**vega, "$schema": _VEGA_SCHEMA}


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _embed_html(
    spec: dict[str, Any], embed_options: dict[str, Any], div_id: str, *, bundle: bool
) -> str:
    """A chart's element and the script that draws it (after the bundle, if ``bundle``)."""
    mode = "vega" if "marks" in spec or "signals" in spec else "vega-lite"
    options = {"mode": mode, **embed_options}
    library = f'<script type="text/javascript">\n{_vega_bundle()}\n</script>\n' if bundle else ""
    return (
        f'<div id="{div_id}" class="kaudit-chart"></div>\n'
        f"{library}"
        '<script type="text/javascript">\n'
        "(function (spec, embedOpt) {\n"
        f'  var el = document.getElementById("{div_id}");\n'
        "  window.vegaEmbed(el, spec, embedOpt).catch(console.error);\n"
        f"}})({_script_json(spec)}, {_script_json(options)});\n"
        "</script>"
    )


def _jupyter_renderer(spec: dict[str, Any], **metadata: Any) -> tuple[dict[str, Any], Any]:
    """The chart as Vega JSON for JupyterLab's own renderer: no script in the notebook."""
    vega = to_vega(spec)
    title = spec.get("title")
    name = title.get("text") if isinstance(title, dict) else title
    bundle = {VEGA_MIME: vega, "text/plain": f"<kaudit chart{f': {name}' if name else ''}>"}
    options = metadata.get("embed_options") or {}
    return bundle, ({VEGA_MIME: {"embed_options": options}} if options else {})


alt.renderers.register(_RENDERER, _jupyter_renderer)


def enable_offline_rendering() -> None:
    """Draw charts in JupyterLab with its own Vega renderer: nothing is fetched, nothing inlined.

    Each chart's output is its Vega spec (see ``to_vega``), a few kB with its data, where
    altair's HTML renderers store a script per chart (or fetch one from a CDN). A notebook
    exported to HTML (``export_notebook``) carries the Vega libraries once per page.

    Examples
    --------
    >>> import altair as alt
    >>> from kaudit_analytics import charts
    >>> charts.enable_offline_rendering()
    >>> alt.renderers.active
    'kaudit'
    >>> _ = alt.renderers.enable("default")
    """
    alt.renderers.enable(_RENDERER)


def save_html(chart: alt.TopLevelMixin, path: str | Path, **embed_options: Any) -> Path:
    """Write ``chart`` as a standalone HTML page that works offline (JS inlined).

    The page is deterministic: the same chart gives the same bytes.

    Parameters
    ----------
    chart
        Any Altair chart.
    path
        The ``.html`` file to write.
    embed_options
        Passed to vega-embed (e.g. ``actions=False``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from kaudit_analytics import activity, charts
    >>> rate = activity.request_rate(activity.example_events()).collect()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     page = charts.save_html(charts.request_rate_timeline(rate), Path(tmp) / "rate.html")
    ...     "cdn.jsdelivr.net" in page.read_text()
    False
    """
    spec = chart.to_dict()
    div_id = "kaudit-" + hashlib.sha256(_script_json(spec).encode()).hexdigest()[:16]
    body = _embed_html(spec, embed_options, div_id, bundle=True)
    page = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        "<title>kaudit chart</title>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
    target = Path(path)
    target.write_text(page, encoding="utf-8")
    return target


# A page of the notebook: nbconvert's JupyterLab look, with the Vega libraries once in the
# head and none of the template's CDN scripts (require.js, MathJax, Mermaid).
_NOTEBOOK_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js -%}
{{ super() }}
{%- if resources.kaudit_charts %}
<script type="text/javascript">
{{ resources.kaudit_vega_bundle }}
</script>
{%- endif %}
{%- endblock html_head_js -%}
"""


def _chart_spec(data: dict[str, Any]) -> dict[str, Any] | None:
    """The Vega (or Vega-Lite) spec of one output, if it is a chart."""
    if VEGA_MIME in data:
        spec: dict[str, Any] = data[VEGA_MIME]
        return spec
    return next((value for mime, value in data.items() if _VEGALITE_MIME.match(mime)), None)


def export_notebook(notebook: str | Path, target: str | Path, *, show_code: bool = False) -> Path:
    """Write an executed notebook as one HTML page that draws its charts offline.

    The Vega libraries are inlined once in the page's head (about 0.9 MB), and each chart
    output becomes an element drawn from its spec; nothing is fetched from a network.

    Parameters
    ----------
    notebook
        The ``.ipynb`` file, with outputs (e.g. written by papermill).
    target
        The ``.html`` file to write.
    show_code
        Keep the code cells; by default the page shows outputs and text only.
    """
    nbformat = import_module("nbformat")
    nbconvert = import_module("nbconvert")
    jinja2 = import_module("jinja2")
    document = nbformat.read(str(notebook), as_version=4)
    charts = 0
    for cell in document.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            spec = _chart_spec(data)
            if spec is not None:
                charts += 1
                # text/html ranks above every image and text: the page draws the chart.
                data["text/html"] = _embed_html(spec, {}, f"kaudit-chart-{charts}", bundle=False)
    exporter = nbconvert.HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"kaudit-notebook.html.j2": _NOTEBOOK_TEMPLATE})],
        template_file="kaudit-notebook.html.j2",
        exclude_input=not show_code,
        exclude_input_prompt=not show_code,
        exclude_output_prompt=True,
    )
    resources = {"kaudit_charts": charts, "kaudit_vega_bundle": _vega_bundle() if charts else ""}
    html, _ = exporter.from_notebook_node(document, resources=resources)
    path = Path(target)
    path.write_text(html, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- audit policy tuning

#: Audit levels from quietest to loudest, and their colours.
_LEVEL_DOMAIN = list(LEVELS)
_LEVEL_RANGE = ["#bdbdbd", "#66a182", "#edae49", "#d1495b"]
_OBSERVED = "observed"


def policy_volume_chart(compared: pl.DataFrame) -> alt.HConcatChart:
    """Events and bytes each candidate policy would write, the observed traffic first (grey),
    from ``policy.compare``.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics import charts
    >>> compared = pl.DataFrame({"policy": ["observed", "gce"], "events": [10, 6],
    ...                          "bytes": [9000, 4000], "modelled_bytes": [0, 300]})
    >>> spec = charts.policy_volume_chart(compared).to_dict()
    >>> [c["encoding"]["x"]["field"] for c in spec["hconcat"]]
    ['events', 'bytes']
    """
    data = _data(compared, ("policy", "events", "bytes", "modelled_bytes"))
    order = data["policy"].to_list()
    extra = [
        alt.Tooltip(f"{name}:Q", format=",.2f")
        for name in ("gb_per_day", "usd_per_month")
        if name in data.columns
    ]
    base = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("policy:N", sort=order, title=None),
            color=alt.condition(
                alt.datum.policy == _OBSERVED, alt.value("#9e9e9e"), alt.value("#00798c")
            ),
            tooltip=[
                alt.Tooltip("policy:N"),
                alt.Tooltip("events:Q", format=","),
                alt.Tooltip("bytes:Q", format=","),
                alt.Tooltip("modelled_bytes:Q", title="of which modelled", format=","),
                *extra,
            ],
        )
    )
    events = base.encode(x=alt.X("events:Q", title="events")).properties(
        title="Events per policy", width=260
    )
    size = base.encode(x=alt.X("bytes:Q", title="bytes logged")).properties(
        title="Bytes per policy", width=260
    )
    return alt.hconcat(events, size)


def noisiest_traffic_chart(noisiest: pl.DataFrame) -> alt.Chart:
    """The noisiest traffic groups under a base policy, coloured by what a suggestion does
    with each (the move, or kept), from ``Suggestion.noisiest``.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics import charts
    >>> noisiest = pl.DataFrame({"kind": ["node"], "verb": ["update"], "target": ["leases"],
    ...     "level": ["Metadata"], "events": [5], "bytes": [900], "action": ["heartbeats: None"]})
    >>> charts.noisiest_traffic_chart(noisiest).to_dict()["encoding"]["color"]["field"]
    'change'
    """
    data = _data(noisiest, ("kind", "verb", "target", "level", "events", "bytes", "action"))
    data = data.with_columns(
        pl.concat_str("verb", pl.lit(" "), "target", pl.lit(" ("), "kind", pl.lit(")")).alias(
            "traffic"
        ),
        pl.col("action").str.split(":").list.first().alias("change"),
    )
    chart: alt.Chart = (
        alt.Chart(data, title="Noisiest traffic under the base policy")
        .mark_bar()
        .encode(
            x=alt.X("bytes:Q", title="bytes logged"),
            y=alt.Y("traffic:N", title=None, sort=None),
            color=alt.Color("change:N", title="suggestion"),
            tooltip=[
                alt.Tooltip("traffic:N"),
                alt.Tooltip("level:N", title="level under the base"),
                alt.Tooltip("action:N", title="suggestion"),
                alt.Tooltip("events:Q", format=","),
                alt.Tooltip("bytes:Q", format=","),
            ],
        )
        .properties(height=alt.Step(14))
    )
    return chart


def rule_share_chart(by_rule: pl.DataFrame) -> alt.Chart:
    """Each rule's share of the bytes a policy writes, coloured by level, from
    ``VolumeEstimate.by_rule`` (one row per rule × level × stage).

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics import charts
    >>> by_rule = pl.DataFrame({"rule": [0, 0, 1], "level": ["Metadata"] * 3,
    ...     "stage": ["ResponseComplete", "ResponseStarted", "ResponseComplete"],
    ...     "events": [2, 1, 1], "bytes": [300, 100, 600]})
    >>> spec = charts.rule_share_chart(by_rule).to_dict()
    >>> [row["share"] for row in spec["datasets"].popitem()[1]]
    [0.4, 0.6]
    """
    data = _data(by_rule, ("rule", "level", "events", "bytes"))
    total = max(int(data["bytes"].sum()), 1)
    data = (
        data.group_by("rule", "level")
        .agg(pl.col("events").sum(), pl.col("bytes").sum())
        .sort("rule", nulls_last=True)
        .with_columns(
            (pl.col("bytes") / total).alias("share"),
            pl.when(pl.col("rule").is_null())
            .then(pl.lit("no rule"))
            .otherwise(pl.lit("rule ") + pl.col("rule").cast(pl.String))
            .alias("name"),
        )
    )
    chart: alt.Chart = (
        alt.Chart(data, title="Each rule's share of the bytes logged")
        .mark_bar()
        .encode(
            x=alt.X("share:Q", title="share of bytes", axis=alt.Axis(format="%")),
            y=alt.Y("name:N", title=None, sort=data["name"].to_list()),
            color=alt.Color("level:N").scale(domain=_LEVEL_DOMAIN, range=_LEVEL_RANGE),
            tooltip=[
                alt.Tooltip("name:N", title="rule"),
                alt.Tooltip("level:N"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("events:Q", format=","),
                alt.Tooltip("bytes:Q", format=","),
            ],
        )
        .properties(height=alt.Step(16))
    )
    return chart


def suggestion_chart(rules: pl.DataFrame) -> alt.Chart:
    """Bytes before (under the base) and after, per rule of a suggested policy, from
    ``Suggestion.rules``.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics import charts
    >>> rules = pl.DataFrame({"rule": [0, 1], "origin": ["added (heartbeats)", "base rule 0"],
    ...     "level": ["None", "Metadata"], "matches": ["update leases", "anything"],
    ...     "bytes_before": [900, 500], "bytes_after": [0, 400]})
    >>> sorted(charts.suggestion_chart(rules).to_dict()["encoding"])
    ['color', 'tooltip', 'x', 'y', 'yOffset']
    """
    data = _data(rules, ("rule", "origin", "level", "matches", "bytes_before", "bytes_after"))
    data = data.with_columns(
        pl.concat_str(
            pl.lit("rule "), pl.col("rule").cast(pl.String), pl.lit(": "), "origin"
        ).alias("name")
    )
    long = data.unpivot(
        index=["name", "level", "matches"],
        on=["bytes_before", "bytes_after"],
        variable_name="when",
        value_name="bytes",
    ).with_columns(pl.col("when").str.strip_prefix("bytes_"))
    chart: alt.Chart = (
        alt.Chart(long, title="Bytes per rule: under the base and under the suggestion")
        .mark_bar()
        .encode(
            x=alt.X("bytes:Q", title="bytes logged"),
            y=alt.Y("name:N", title=None, sort=data["name"].to_list()),
            yOffset=alt.YOffset("when:N", sort=["before", "after"]),
            color=alt.Color("when:N", title=None, sort=["before", "after"]).scale(
                range=["#9e9e9e", "#00798c"]
            ),
            tooltip=[
                alt.Tooltip("name:N", title="rule"),
                alt.Tooltip("matches:N"),
                alt.Tooltip("level:N"),
                alt.Tooltip("when:N"),
                alt.Tooltip("bytes:Q", format=","),
            ],
        )
        .properties(height=alt.Step(9))
    )
    return chart
