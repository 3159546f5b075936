"""Compliance reports: built once from the events, rendered as HTML, Markdown, JSON and evidence.

``build_report`` runs every control over a window and over the previous window of the same
length (the trend), collects once, and returns an immutable ``Report``. The renderers are pure
functions of that value, so the same events always give byte-identical files:

- ``to_html``: one self-contained page; the styles, the chart specs and the Vega JavaScript
  are inline, so it opens with no network (air-gapped shops).
- ``to_markdown``, ``to_json`` (a summary for machines), and the evidence as Parquet/CSV
  through ``write_report``.

``exit_code`` maps a report to the ``--fail-on`` policy of ``kaudit report``.

Examples
--------
>>> import datetime as dt
>>> from kaudit_analytics.report import build_report, to_json
>>> from kaudit_analytics.compliance import Window
>>> from kaudit_analytics.schema import empty_events
>>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
>>> report = build_report(empty_events().lazy(), Window(end - dt.timedelta(days=7), end))
>>> report.status_counts()
{'fail': 0, 'not assessable': 25, 'pass': 0}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import polars as pl
from markupsafe import Markup

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics._compliance_evidence import ACTOR_COL, LAST_COL
from kaudit_analytics.lake import scan

if TYPE_CHECKING:
    import altair as alt

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "FORMATS",
    "Assessment",
    "ControlRow",
    "Report",
    "ReportError",
    "assemble_report",
    "assess",
    "assessment",
    "baseline_rows",
    "build_report",
    "chart_specs",
    "charts",
    "control_table",
    "coverage_table",
    "daily_events",
    "exit_code",
    "parse_window",
    "report_from_lake",
    "summary",
    "to_html",
    "to_json",
    "to_markdown",
    "write_report",
]

EXIT_OK = 0
#: A control at or above the ``--fail-on`` severity failed.
EXIT_FINDINGS = 1
#: The report could not be made (bad option, missing lake, invalid policy).
EXIT_ERROR = 2

FORMATS: tuple[str, ...] = ("html", "md", "json")
#: Evidence rows per failing control shown in HTML and Markdown; the files hold them all.
SHOWN_EVIDENCE = 25

Trend = Literal["new", "up", "down", "same", "resolved", "-"]


class ReportError(ValueError):
    """A report cannot be made from what the user gave (window, formats, policy file)."""


# --------------------------------------------------------------------------- windows

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _instant(text: str, option: str) -> dt.datetime | dt.timedelta:
    match = _DURATION.match(text)
    if match:
        return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = (
            f"{option}: cannot read {text!r} as a date (2026-11-20), a timestamp "
            "(2026-11-20T08:00:00Z) or a duration (7d, 24h, 30m)"
        )
        raise ReportError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_window(since: str, until: str | None = None, *, now: dt.datetime) -> c.Window:
    """The report window from ``--since``/``--until`` text.

    Each is a date, a timestamp (naive means UTC) or a duration; a duration is counted back
    from ``until``, and ``until`` itself (default ``now``) back from ``now``.

    Raises
    ------
    ReportError
        When a value cannot be read or the window is empty.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.report import parse_window
    >>> now = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    >>> w = parse_window("7d", now=now)
    >>> w.since.isoformat(), w.until.isoformat()
    ('2026-11-20T06:00:00+00:00', '2026-11-27T06:00:00+00:00')
    >>> parse_window("2026-11-01", "2026-11-02", now=now).length
    datetime.timedelta(days=1)
    """
    end_value = _instant(until, "--until") if until else now
    end = now - end_value if isinstance(end_value, dt.timedelta) else end_value
    start_value = _instant(since, "--since")
    start = end - start_value if isinstance(start_value, dt.timedelta) else start_value
    try:
        return c.Window(start, end)
    except ValueError as error:
        raise ReportError(str(error)) from None


# --------------------------------------------------------------------------- assessing


@dataclass(frozen=True)
class Assessment:
    """Every control's result over one window, with the evidence behind the failures."""

    window: c.Window
    events: int
    results: tuple[c.ControlResult, ...]
    evidence: pl.DataFrame = field(compare=False, repr=False)


def assess(
    events: pl.LazyFrame,
    ctx: c.Context,
    *,
    controls: Sequence[c.Control] = c.CONTROLS,
    coverage: Sequence[c.Coverage] = (),
    baseline_events: int | None = None,
    prepared: bool = False,
) -> Assessment:
    """Run the controls over ``ctx.window`` and collect: the edge of ``compliance``.

    The window's events are prepared and collected once, and every control's evidence query
    and the observations then run over that frame in one ``collect_all``.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Context, Window
    >>> from kaudit_analytics.report import assess
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> assess(empty_events().lazy(), Context(Window(day, day + dt.timedelta(days=1)))).events
    0
    """
    if not prepared:
        events = c.prepare(events, ctx.window).collect().lazy()
        baseline = None if ctx.baseline is None else c.prepare(ctx.baseline).collect().lazy()
        ctx = dataclasses.replace(ctx, baseline=baseline)
    found, observed = pl.collect_all(
        [
            c.evidence(events, ctx, controls, prepared=True),
            c.observations(events, ctx.window, controls, prepared=True),
        ]
    )
    return assessment(
        ctx.window,
        found,
        observed.row(0, named=True),
        controls=controls,
        coverage=coverage,
        baseline_events=baseline_events,
    )


def assessment(
    window: c.Window,
    found: pl.DataFrame,
    observed: Mapping[str, Any],
    *,
    controls: Sequence[c.Control] = c.CONTROLS,
    coverage: Sequence[c.Coverage] = (),
    baseline_events: int | None = None,
) -> Assessment:
    """The controls' results from collected evidence and the one row of ``observations``.

    What ``assess`` does once it has collected; an engine that computes the evidence and the
    observations elsewhere (``kaudit_analytics.spark``) decides the controls with this.
    """
    counts = dict(found.group_by("control").len().iter_rows())
    results = c.decide(
        controls, observed, counts, coverage=coverage, baseline_events=baseline_events
    )
    return Assessment(window, int(observed["events"]), results, found)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ControlRow:
    """One control in the report: its result now and in the previous window."""

    control: c.Control
    result: c.ControlResult
    previous: c.ControlResult

    @property
    def trend(self) -> Trend:
        """How the finding count moved since the previous window."""
        now, before = self.result, self.previous
        if now.status == "not assessable" or before.status == "not assessable":
            return "-"
        if now.findings and not before.findings:
            return "new"
        if before.findings and not now.findings:
            return "resolved"
        if now.findings > before.findings:
            return "up"
        if now.findings < before.findings:
            return "down"
        return "same"

    @property
    def frameworks(self) -> str:
        """The clauses, grouped by framework: ``PCI-DSS v4 10.2.1.2; SOC 2 CC6.1, CC7.2``."""
        grouped: dict[str, list[str]] = {}
        for clause in self.control.clauses:
            grouped.setdefault(clause.framework, []).append(clause.ref)
        return "; ".join(f"{name} {', '.join(refs)}" for name, refs in grouped.items())


@dataclass(frozen=True)
class Report:
    """A compliance report: immutable; every renderer reads only this."""

    title: str
    window: c.Window
    previous_window: c.Window
    settings: c.Settings
    rows: tuple[ControlRow, ...]
    events: int
    previous_events: int
    clusters: tuple[str, ...]
    policy_name: str | None = None
    coverage: tuple[c.Coverage, ...] = ()
    evidence: pl.DataFrame = field(compare=False, repr=False, default_factory=pl.DataFrame)
    #: Events and findings per UTC day of the window (the timeline chart).
    daily: pl.DataFrame = field(compare=False, repr=False, default_factory=pl.DataFrame)

    def status_counts(self) -> dict[str, int]:
        """Controls per status, every status present."""
        counts: dict[str, int] = dict.fromkeys(c.STATUSES, 0)
        for row in self.rows:
            counts[row.result.status] += 1
        return counts

    def findings_by_severity(self) -> dict[str, int]:
        """Findings per severity of the failing controls, worst first."""
        counts: dict[str, int] = dict.fromkeys(reversed(c.SEVERITIES), 0)
        for row in self.rows:
            if row.result.severity is not None:
                counts[row.result.severity] += row.result.findings
        return counts


def baseline_rows(prepared: pl.LazyFrame) -> pl.LazyFrame:
    """The human rows of a prepared window: all a later window's first-seen controls need."""
    return prepared.filter(pl.col(ACTOR_COL) == "human").select(
        s.CLUSTER, s.USER, s.USER_AGENT, s.SOURCE_IPS, ACTOR_COL, LAST_COL
    )


def daily_events(events: pl.LazyFrame, window: c.Window) -> pl.LazyFrame:
    """Events per UTC ``day`` of the window (additive over slices of the events)."""
    return (
        events.filter(window.contains())
        .group_by(pl.col(s.REQUEST_TS).dt.date().alias("day"))
        .agg(pl.len().cast(pl.Int64).alias("events"))
    )


def _daily_findings(found: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    per_day = found.group_by(pl.col("when").dt.date().alias("day")).agg(
        pl.len().cast(pl.Int64).alias("findings")
    )
    return (
        daily.join(per_day, on="day", how="full", coalesce=True)
        .with_columns(pl.col("events", "findings").fill_null(0))
        .sort("day")
    )


def build_report(
    events: pl.LazyFrame,
    window: c.Window,
    *,
    policy: Any = None,
    policy_name: str | None = None,
    settings: c.Settings | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
    title: str = "Kubernetes audit compliance report",
) -> Report:
    """Assess every control over ``window`` and the previous window, and build the report.

    ``events`` should cover three window lengths back from ``window.until``: the previous
    window is the trend's, and the one before it is the previous window's baseline for the
    first-seen controls. Everything is collected in one ``collect_all``.

    Parameters
    ----------
    events
        The events table (e.g. ``kaudit_analytics.scan(lake)``).
    window
        The report window.
    policy
        A policy from ``kaudit_analytics.policy.load_policy``: adds the coverage matrix, and
        controls the policy cannot support become not assessable when they have no findings.
    policy_name
        How the report names the policy (its file name).
    settings
        Thresholds and working hours.
    controls
        The controls to run.
    title
        The report's title.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> build_report(empty_events().lazy(), w).events
    0
    """
    settings = settings or c.Settings()
    previous = window.previous()
    coverage = c.policy_coverage(policy, controls) if policy is not None else ()
    # One window in memory at a time, oldest first: each window's humans are the next
    # window's baseline for the first-seen controls, and nothing else is carried over.
    oldest = c.prepare(events, previous.previous())
    baseline, size = pl.collect_all([baseline_rows(oldest), oldest.select(pl.len())])
    assessments = []
    for span in (previous, window):
        frame = c.prepare(events, span).collect()
        ctx = c.Context(span, settings, baseline=baseline.lazy())
        assessments.append(
            assess(
                frame.lazy(),
                ctx,
                controls=controls,
                coverage=coverage,
                baseline_events=int(size.item()),
                prepared=True,
            )
        )
        baseline, size = (
            baseline_rows(frame.lazy()).collect(),
            pl.DataFrame({"len": [frame.height]}),
        )
        clusters = tuple(frame[s.CLUSTER].drop_nulls().unique().sort().to_list())
        daily = daily_events(frame.lazy(), span).collect()
        del frame
    before, now = assessments
    return assemble_report(
        before,
        now,
        clusters=clusters,
        daily=daily,
        settings=settings,
        controls=controls,
        coverage=coverage,
        policy_name=policy_name,
        title=title,
    )


def assemble_report(
    before: Assessment,
    now: Assessment,
    *,
    clusters: tuple[str, ...],
    daily: pl.DataFrame,
    settings: c.Settings,
    controls: Sequence[c.Control] = c.CONTROLS,
    coverage: tuple[c.Coverage, ...] = (),
    policy_name: str | None = None,
    title: str = "Kubernetes audit compliance report",
) -> Report:
    """The report from the previous and the current window's assessments.

    ``daily`` holds the current window's events per UTC ``day`` (``events`` column).
    """
    rows = tuple(
        ControlRow(ctrl, result, prior)
        for ctrl, result, prior in zip(controls, now.results, before.results, strict=True)
    )
    return Report(
        title=title,
        window=now.window,
        previous_window=before.window,
        settings=settings,
        rows=rows,
        events=now.events,
        previous_events=before.events,
        clusters=clusters,
        policy_name=policy_name,
        coverage=coverage,
        evidence=now.evidence,
        daily=_daily_findings(now.evidence, daily),
    )


def report_from_lake(
    lake: str | os.PathLike[str],
    window: c.Window,
    *,
    policy_path: str | os.PathLike[str] | None = None,
    cluster: str | list[str] | None = None,
    settings: c.Settings | None = None,
) -> Report:
    """``build_report`` over a lake: scans three window lengths back and loads the policy.

    Raises
    ------
    kaudit_analytics.lake.LakeError
        When the lake folder does not exist.
    kaudit_analytics.policy.PolicyError
        When the policy file is not a valid audit policy.
    """
    policy = None
    if policy_path is not None:
        from kaudit_analytics.policy import load_policy

        policy = load_policy(Path(policy_path))
    events = scan(
        lake, cluster=cluster, since=window.previous().previous().since, until=window.until
    )
    name = Path(policy_path).name if policy_path is not None else None
    return build_report(events, window, policy=policy, policy_name=name, settings=settings)


def exit_code(report: Report, fail_on: c.Severity | None) -> int:
    """``EXIT_FINDINGS`` when a control of severity ``fail_on`` or worse failed, else 0.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, exit_code
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> exit_code(build_report(empty_events().lazy(), w), "low")
    0
    """
    if fail_on is None:
        return EXIT_OK
    failing = any(c.severity_at_least(row.result.severity, fail_on) for row in report.rows)
    return EXIT_FINDINGS if failing else EXIT_OK


# --------------------------------------------------------------------------- charts

_STATUS_COLORS = {"fail": "#c0392b", "not assessable": "#7f8c8d", "pass": "#27ae60"}
_SEVERITY_COLORS = {
    "critical": "#7b1e1e",
    "high": "#c0392b",
    "medium": "#e67e22",
    "low": "#f1c40f",
    "info": "#95a5a6",
}


def _control_frame(report: Report) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "control": [row.control.id for row in report.rows],
            "title": [row.control.title for row in report.rows],
            "status": [row.result.status for row in report.rows],
            "severity": [row.control.severity for row in report.rows],
            "findings": [row.result.findings for row in report.rows],
            "previous": [row.previous.findings for row in report.rows],
        },
        schema={
            "control": pl.String,
            "title": pl.String,
            "status": pl.String,
            "severity": pl.String,
            "findings": pl.Int64,
            "previous": pl.Int64,
        },
    )


def _status_chart(report: Report) -> alt.TopLevelMixin:
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it

    counts = report.status_counts()
    data = pl.DataFrame({"status": list(counts), "controls": list(counts.values())})
    chart: alt.TopLevelMixin = (
        alt.Chart(data, title="Controls by result")
        .mark_bar()
        .encode(
            x=alt.X("controls:Q", title="controls"),
            y=alt.Y("status:N", sort=list(c.STATUSES), title=None),
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


def _findings_chart(report: Report) -> alt.TopLevelMixin:
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it

    data = _control_frame(report).with_columns(
        pl.when(pl.col("status") == "not assessable")
        .then(None)
        .otherwise(pl.col("findings"))
        .alias("findings")
    )
    order = [row.control.id for row in report.rows]
    base = alt.Chart(data, title="Findings per control (tick: previous window)").encode(
        y=alt.Y("control:N", sort=order, title=None)
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


def _timeline_chart(report: Report) -> alt.TopLevelMixin:
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it

    data = report.daily.unpivot(index="day", on=["events", "findings"], variable_name="series")
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


def charts(report: Report) -> dict[str, alt.TopLevelMixin]:
    """The report's charts by name, built from its small aggregated frames.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, charts
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> sorted(charts(build_report(empty_events().lazy(), w)))
    ['findings', 'status', 'timeline']
    """
    return {
        "status": _status_chart(report),
        "findings": _findings_chart(report),
        "timeline": _timeline_chart(report),
    }


def chart_specs(report: Report) -> dict[str, dict[str, Any]]:
    """The charts as Vega-Lite specs, in the project's ``kaudit`` theme (what the HTML embeds).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, chart_specs
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> chart_specs(build_report(empty_events().lazy(), w))["status"]["mark"]["type"]
    'bar'
    """
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it

    from kaudit_analytics import charts as _charts  # registers the "kaudit" theme

    del _charts
    with alt.theme.enable("kaudit"):
        return {name: chart.to_dict() for name, chart in charts(report).items()}


def control_table(report: Report) -> pl.DataFrame:
    """One row per control: result now and before, trend, reason, frameworks.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, control_table
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> control_table(build_report(empty_events().lazy(), w)).columns[:4]
    ['control', 'title', 'severity', 'status']
    """
    return pl.DataFrame(
        [
            {
                "control": row.control.id,
                "title": row.control.title,
                "severity": row.control.severity,
                "status": row.result.status,
                "findings": row.result.findings,
                "previous": row.previous.findings,
                "trend": row.trend,
                "reason": row.result.reason,
                "frameworks": row.frameworks,
            }
            for row in report.rows
        ],
        schema={
            "control": pl.String,
            "title": pl.String,
            "severity": pl.String,
            "status": pl.String,
            "findings": pl.Int64,
            "previous": pl.Int64,
            "trend": pl.String,
            "reason": pl.String,
            "frameworks": pl.String,
        },
    )


def coverage_table(report: Report) -> pl.DataFrame:
    """The policy coverage matrix: one row per control (empty without a policy).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, coverage_table
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> coverage_table(build_report(empty_events().lazy(), w)).shape
    (0, 3)
    """
    return pl.DataFrame(
        [dataclasses.asdict(row) for row in report.coverage],
        schema={"control": pl.String, "support": pl.String, "reason": pl.String},
    )


# --------------------------------------------------------------------------- JSON


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def summary(report: Report) -> dict[str, Any]:
    """The machine-readable summary (what ``to_json`` writes)."""
    return {
        "title": report.title,
        "window": {"since": _iso(report.window.since), "until": _iso(report.window.until)},
        "previous_window": {
            "since": _iso(report.previous_window.since),
            "until": _iso(report.previous_window.until),
        },
        "clusters": list(report.clusters),
        "events": report.events,
        "previous_events": report.previous_events,
        "policy": report.policy_name,
        "status_counts": report.status_counts(),
        "findings_by_severity": report.findings_by_severity(),
        "controls": [
            {
                "id": row.control.id,
                "title": row.control.title,
                "severity": row.control.severity,
                "status": row.result.status,
                "findings": row.result.findings,
                "reason": row.result.reason,
                "previous_status": row.previous.status,
                "previous_findings": row.previous.findings,
                "trend": row.trend,
                "level": row.control.level,
                "clauses": [str(clause) for clause in row.control.clauses],
            }
            for row in report.rows
        ],
        "coverage": [dataclasses.asdict(row) for row in report.coverage],
    }


def to_json(report: Report) -> str:
    """The summary as indented JSON with sorted keys (stable across runs).

    Examples
    --------
    >>> import datetime as dt, json
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, to_json
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> doc = json.loads(to_json(build_report(empty_events().lazy(), w)))
    >>> doc["window"]
    {'since': '2026-11-26T00:00:00Z', 'until': '2026-11-27T00:00:00Z'}
    """
    return json.dumps(summary(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- Markdown


def _md(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _evidence_rows(report: Report, control_id: str) -> tuple[list[dict[str, Any]], int]:
    rows = report.evidence.filter(pl.col("control") == control_id)
    shown = rows.head(SHOWN_EVIDENCE).with_columns(
        pl.col("when").dt.strftime("%Y-%m-%d %H:%M:%S%.6fZ")
    )
    return shown.to_dicts(), rows.height


def to_markdown(report: Report) -> str:
    """The report as Markdown: summary, control table, findings, coverage.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, to_markdown
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> to_markdown(build_report(empty_events().lazy(), w)).splitlines()[0]
    '# Kubernetes audit compliance report'
    """
    out = [f"# {_md(report.title)}", ""]
    out += [
        f"- Window: {_iso(report.window.since)} to {_iso(report.window.until)} "
        f"(previous: {_iso(report.previous_window.since)} to {_iso(report.previous_window.until)})",
        f"- Clusters: {_md(', '.join(report.clusters)) or 'none'}",
        f"- Events: {report.events} (previous window: {report.previous_events})",
        f"- Audit policy: {_md(report.policy_name) if report.policy_name else 'not given'}",
        "- Controls: "
        + ", ".join(f"{count} {status}" for status, count in report.status_counts().items()),
        "",
        "## Controls",
        "",
        "| Control | Severity | Result | Findings | Previous | Trend | Frameworks |",
        "|---|---|---|---:|---:|---|---|",
    ]
    out += [
        f"| {_md(row.control.title)} (`{row.control.id}`) | {row.control.severity} | "
        f"{row.result.status} | {row.result.findings} | {row.previous.findings} | {row.trend} | "
        f"{_md(row.frameworks)} |"
        for row in report.rows
    ]
    out += ["", "## Results", ""]
    out += [
        f"- **{row.control.id}** ({row.result.status}): {_md(row.result.reason)}"
        for row in report.rows
    ]
    for row in report.rows:
        if row.result.status != "fail":
            continue
        shown, total = _evidence_rows(report, row.control.id)
        out += ["", f"## Findings: {_md(row.control.title)} ({total}, {row.control.severity})", ""]
        out += [_md(row.control.detects), ""]
        out += [
            "| When | Who | What | Where | Outcome | Detail | Source |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['when']} | {_md(r['who'])} | {_md(r['what'])} | {_md(r['where'])} | "
            f"{_md(r['outcome'])} | {_md(r['detail'])} | "
            f"{_md(r['source_file'])}:{r['source_line']} |"
            for r in shown
        ]
        if total > len(shown):
            out += ["", f"{total - len(shown)} more in evidence.csv / evidence.parquet."]
    if report.coverage:
        out += ["", f"## Policy coverage ({_md(report.policy_name)})", ""]
        out += ["| Control | Support | Reason |", "|---|---|---|"]
        out += [
            f"| `{row.control}` | {row.support} | {_md(row.reason)} |" for row in report.coverage
        ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML


def _asset(name: str) -> str:
    return resources.files("kaudit_analytics").joinpath("data", "report", name).read_text("utf-8")


@cache
def _vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one inline script, from vl-convert (no network)."""
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it
    import vl_convert

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    # The stub marks ``snippet`` required; at run time it defaults to exporting vegaEmbed.
    bundle = vl_convert.javascript_bundle(vl_version=major_minor)  # type: ignore[call-arg]
    return bundle.replace("</script", "<\\/script")


def _script_json(value: object) -> str:
    # JSON that cannot end the <script> element or open a comment: "<", ">" and "&" become
    # \u escapes, which mean the same characters to JSON.parse.
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    env.filters["iso"] = _iso
    return env


def to_html(report: Report, *, vega_bundle: str | None = None) -> str:
    """One self-contained HTML page: styles, chart specs and Vega inline; no network.

    Parameters
    ----------
    report
        The report.
    vega_bundle
        The JavaScript that defines ``vegaEmbed``; default: vl-convert's bundle for the
        installed altair's Vega-Lite version.
    """
    bundle = _vega_bundle() if vega_bundle is None else vega_bundle
    specs = chart_specs(report)
    failing = []
    for row in report.rows:
        if row.result.status == "fail":
            shown, total = _evidence_rows(report, row.control.id)
            failing.append({"row": row, "evidence": shown, "total": total})
    template = _environment().from_string(_asset("report.html.j2"))
    return template.render(
        report=report,
        rows=report.rows,
        failing=failing,
        counts=report.status_counts(),
        severities=report.findings_by_severity(),
        # Trusted, not user text: our stylesheet, the vl-convert bundle, and JSON whose "</"
        # is escaped; everything that comes from events goes through autoescaping.
        css=Markup(_asset("report.css")),  # noqa: S704
        bundle=Markup(bundle),  # noqa: S704
        bundle_sha256=hashlib.sha256(bundle.encode()).hexdigest(),
        specs=Markup(_script_json(specs)),  # noqa: S704
        chart_names=list(specs),
    )


# --------------------------------------------------------------------------- files


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        msg = f"unknown format {unknown[0]!r}: choose from {', '.join(FORMATS)}"
        raise ReportError(msg)
    return chosen


def write_report(
    report: Report, out: str | os.PathLike[str], formats: Iterable[str] = FORMATS
) -> tuple[Path, ...]:
    """Write the chosen renderings plus ``evidence.parquet`` and ``evidence.csv`` into ``out``.

    Returns the paths written, in a fixed order.

    Raises
    ------
    ReportError
        When a format is unknown or ``out`` cannot be created.
    """
    chosen = _formats(formats)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the output folder {folder}: {error.strerror}"
        raise ReportError(msg) from None
    renderers = {
        "html": ("report.html", to_html),
        "md": ("report.md", to_markdown),
        "json": ("summary.json", to_json),
    }
    written = []
    for name in chosen:
        filename, render = renderers[name]
        path = folder / filename
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    parquet, csv = folder / "evidence.parquet", folder / "evidence.csv"
    report.evidence.write_parquet(parquet, compression="zstd", statistics=False)
    report.evidence.with_columns(pl.col("when").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(
        csv
    )
    return (*written, parquet, csv)
