"""The report as a value: every control over a window and the window before it, collected once.

``build_report`` runs every control over a window and over the previous window of the same
length (the trend), collects once, and returns an immutable ``Report``; ``render`` lays it
out. ``exit_code`` maps a report to the ``--fail-on`` policy of ``kaudit report``.

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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.compliance.evidence import ACTOR_COL, LAST_COL
from kaudit_analytics.lake import scan

if TYPE_CHECKING:
    pass

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
    "control_table",
    "coverage_table",
    "daily_events",
    "exit_code",
    "report_from_lake",
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
