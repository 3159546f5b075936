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
{'fail': 0, 'not assessable': 65, 'pass': 0}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import io
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.lake import describe, require_lake, scan

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "FORMATS",
    "Assessment",
    "ControlRow",
    "EmptyWindowError",
    "Report",
    "ReportError",
    "SliceParts",
    "assemble_report",
    "assess",
    "assessment",
    "build_report",
    "check_window",
    "control_table",
    "coverage_table",
    "daily_events",
    "day_slices",
    "exit_code",
    "merge_slices",
    "report_from_lake",
    "slice_parts",
    "tactic_table",
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
    #: Controls whose evidence query failed (a library error): id -> the error, in one line.
    errors: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SliceParts:
    """What one slice of a window contributes, collected: each control's partial findings,
    the observation counts, the baseline rows for the next window, events per day, and the
    controls whose query failed on it."""

    parts: Mapping[str, pl.DataFrame]
    counts: pl.DataFrame
    baseline: pl.DataFrame
    daily: pl.DataFrame
    errors: Mapping[str, str] = field(default_factory=dict)


#: The controls run over a slice already in memory with polars' in-memory engine: faster there
#: than the streaming one (5.8 s against 7.5 s for 65 controls over 488k events), and free of
#: the streaming engine's panic in string functions (issue 14).
_ENGINE: Literal["in-memory"] = "in-memory"


def _contiguous(frame: pl.DataFrame) -> pl.DataFrame:
    """One chunk per column. polars' streaming engine panics ("assertion failed: i <
    self.len()") evaluating a string function over a filtered frame whose columns hold several
    chunks, as a scan of several Parquet files gives (issue 14; reproduction in the branch
    notes); a contiguous frame avoids it, for one copy of a slice."""
    return frame.rechunk() if frame.n_chunks("all") != [1] * frame.width else frame


def _detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of a small frame that holds no reference to its source's buffers.

    A filter of string columns shares the source's data buffers (string views), so the
    few findings of a slice would keep the whole slice's strings alive, and memory would
    grow with every slice. One round trip through Arrow IPC copies just the rows kept.
    """
    sink = io.BytesIO()
    frame.write_ipc(sink)
    sink.seek(0)
    return pl.read_ipc(sink)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


#: What a query can raise that is the library's fault, not the user's: a polars error or
#: a panic inside polars (a BaseException, not an Exception).
_QUERY_ERRORS: tuple[type[BaseException], ...] = (
    pl.exceptions.PolarsError,
    pl.exceptions.PanicException,
)


def _collect_parts(
    queries: Mapping[str, pl.LazyFrame],
) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """Collect every query at once; when that fails, one by one, keeping each failure."""
    try:
        frames = pl.collect_all(list(queries.values()), engine=_ENGINE)
        return dict(zip(queries, frames, strict=True)), {}
    except _QUERY_ERRORS:
        pass
    done: dict[str, pl.DataFrame] = {}
    failed: dict[str, str] = {}
    for name, query in queries.items():
        try:
            done[name] = query.collect(engine=_ENGINE)
        except _QUERY_ERRORS as error:
            failed[name] = _one_line(error)
    return done, failed


def slice_parts(
    prepared: pl.LazyFrame,
    ctx: c.Context,
    controls: Sequence[c.Control] = c.CONTROLS,
) -> SliceParts:
    """Collect what one prepared slice contributes (``compliance.partials`` and the rest).

    A control whose query fails here (a polars error or panic) is left out and named in
    ``errors``; the other controls are not affected.
    """
    queries: dict[str, pl.LazyFrame] = {
        "_counts": c.observation_counts(prepared, controls, ctx.settings),
        "_baseline": c.baseline_rows(prepared),
        "_daily": daily_events(prepared, ctx.window),
        **c.partials(prepared, ctx, controls),
    }
    done, failed = _collect_parts(queries)
    shared = ("_counts", "_baseline", "_daily")
    broken = [name for name in shared if name in failed]
    if broken:
        raise ReportError(f"the window's events could not be counted: {failed[broken[0]]}")
    return SliceParts(
        parts={name: _detached(frame) for name, frame in done.items() if name not in shared},
        counts=_detached(done["_counts"]),
        baseline=_detached(done["_baseline"]),
        daily=done["_daily"],
        errors=failed,
    )


def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def merge_slices(
    slices: Sequence[SliceParts],
    ctx: c.Context,
    *,
    controls: Sequence[c.Control] = c.CONTROLS,
    coverage: Sequence[c.Coverage] = (),
    baseline_events: int | None = None,
) -> tuple[Assessment, pl.DataFrame, pl.DataFrame]:
    """The window's assessment from its slices, the window's baseline rows (for the next
    window) and its events per day. ``ctx.baseline`` holds the previous window's rows."""
    errors: dict[str, str] = {}
    for part in slices:
        errors.update(part.errors)
    empty = c.prepare(s.empty_events().lazy(), None, ctx.settings)
    queries: dict[str, pl.LazyFrame] = {}
    for ctrl in controls:
        if ctrl.id in errors:
            continue
        frames = [
            part.parts[ctrl.id]
            for part in slices
            if ctrl.id in part.parts and not part.parts[ctrl.id].is_empty()
        ]
        if frames:  # every query finds nothing in nothing: skip the ones with no partials
            queries[ctrl.id] = c.finish({ctrl.id: _concat(frames).lazy()}, ctx, [ctrl])
    found, failed = _collect_parts(queries)
    errors.update(failed)
    evidence = c.order_evidence(
        _concat([found[ctrl.id] for ctrl in controls if ctrl.id in found]).lazy()
        if found
        else pl.LazyFrame(schema=c.EVIDENCE_SCHEMA)
    ).collect()
    counts = _concat([part.counts for part in slices])
    if counts.is_empty():
        counts = c.observation_counts(empty, controls, ctx.settings).collect()
    keys = [name for name in counts.columns if name != "_n"]
    summed = counts.group_by(keys).agg(pl.col("_n").sum())
    observed = (
        c.observations_from_counts(summed.lazy(), controls, ctx.settings)
        .collect()
        .row(0, named=True)
    )
    baseline = _concat([part.baseline for part in slices])
    baseline = baseline.unique() if not baseline.is_empty() else c.baseline_rows(empty).collect()
    daily = _concat([part.daily for part in slices])
    if daily.is_empty():
        daily = daily_events(empty, ctx.window).collect()
    daily = daily.group_by("day").agg(pl.col("events").sum())
    result = assessment(
        ctx.window,
        evidence,
        observed,
        controls=controls,
        coverage=coverage,
        baseline_events=baseline_events,
        settings=ctx.settings,
        errors=errors,
    )
    return result, baseline, daily


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

    The window is assessed as one slice; ``build_report`` assesses a window day by day.
    ``ctx.baseline`` is the previous period's events (or, when ``prepared``, their
    ``compliance.baseline_rows``).

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
        extra = c.extra_columns(controls)
        events = _contiguous(c.prepare(events, ctx.window, ctx.settings, extra).collect()).lazy()
        baseline = (
            None
            if ctx.baseline is None
            else c.baseline_rows(c.prepare(ctx.baseline, None, ctx.settings)).collect().lazy()
        )
        ctx = dataclasses.replace(ctx, baseline=baseline)
    part = slice_parts(events, ctx, controls)
    result, _, _ = merge_slices(
        [part], ctx, controls=controls, coverage=coverage, baseline_events=baseline_events
    )
    return result


def assessment(
    window: c.Window,
    found: pl.DataFrame,
    observed: Mapping[str, Any],
    *,
    controls: Sequence[c.Control] = c.CONTROLS,
    coverage: Sequence[c.Coverage] = (),
    baseline_events: int | None = None,
    settings: c.Settings | None = None,
    errors: Mapping[str, str] | None = None,
) -> Assessment:
    """The controls' results from collected evidence and the one row of ``observations``.

    What ``assess`` does once it has collected; an engine that computes the evidence and the
    observations elsewhere (``kaudit_analytics.spark``) decides the controls with this. A
    control named in ``errors`` is not assessable, with the error as its reason.
    """
    errors = dict(errors or {})
    counts = dict(found.group_by("control").len().iter_rows())
    results = c.decide(
        controls,
        observed,
        counts,
        coverage=coverage,
        baseline_events=baseline_events,
        settings=settings,
    )
    results = tuple(
        dataclasses.replace(
            result,
            status="not assessable",
            findings=0,
            severity=None,
            reason=f"the evidence query failed: {errors[result.control]}",
        )
        if result.control in errors
        else result
        for result in results
    )
    return Assessment(window, int(observed["events"]), results, found, errors)


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

    @property
    def attack(self) -> str:
        """The MITRE ATT&CK technique ids: ``T1609, T1611``."""
        return ", ".join(self.control.attack)

    @property
    def tactics(self) -> str:
        """The ATT&CK tactics, in kill-chain order: ``execution, privilege-escalation``."""
        return ", ".join(self.control.tactics)


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
    #: Controls whose evidence query failed (library errors), id -> error; they are not
    #: assessable and ``kaudit report`` exits 2 after writing the report.
    errors: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Where the settings came from (a file name), or None for the defaults.
    settings_name: str | None = None
    #: Sigma rules that could not be loaded or run: file -> reason.
    sigma_problems: Mapping[str, str] = field(default_factory=dict, compare=False)

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


def day_slices(window: c.Window) -> tuple[c.Window, ...]:
    """The window cut at UTC midnights: the slices a report assesses one at a time.

    Every stage of a request carries the request's own timestamp, so a request is never
    split across slices.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    >>> [w.since.isoformat() for w in day_slices(Window(start, start + dt.timedelta(days=1)))]
    ['2026-01-01T12:00:00+00:00', '2026-01-02T00:00:00+00:00']
    """
    cuts = [window.since]
    midnight = dt.datetime.combine(window.since.date(), dt.time(), tzinfo=dt.UTC)
    while (midnight := midnight + dt.timedelta(days=1)) < window.until:
        cuts.append(midnight)
    cuts.append(window.until)
    return tuple(c.Window(a, b) for a, b in itertools.pairwise(cuts))


def _slices(events: pl.LazyFrame, window: c.Window) -> list[c.Window]:
    """The window cut at whole hours into slices of at most ``SLICE_ROWS`` events (an hour
    with more is a slice of its own), leaving out the hours without events.

    One pass over the timestamps counts the events per hour. Every stage of a request
    carries the request's own timestamp, so a request is never split across slices.
    """
    last = (window.until - dt.timedelta(microseconds=1)).date()
    hours = (
        events.select(s.DATE, s.REQUEST_TS)
        .filter(pl.col(s.DATE).is_between(window.since.date(), last) & window.contains())
        .group_by(pl.col(s.REQUEST_TS).dt.truncate("1h").alias("_hour"))
        .agg(pl.len().alias("_n"))
        .sort("_hour")
        .collect()
    )
    cuts: list[c.Window] = []
    start: dt.datetime | None = None
    end, size = window.since, 0
    for hour, count in hours.iter_rows():
        if start is not None and size + count > SLICE_ROWS:
            cuts.append(c.Window(max(start, window.since), min(end, window.until)))
            start, size = None, 0
        start = hour if start is None else start
        end, size = hour + dt.timedelta(hours=1), size + count
    if start is not None:
        cuts.append(c.Window(max(start, window.since), min(end, window.until)))
    return cuts


def _slice_of(events: pl.LazyFrame, span: c.Window) -> pl.LazyFrame:
    # The date partition column lets a lake scan skip every other day's files.
    last = (span.until - dt.timedelta(microseconds=1)).date()
    return events.filter(pl.col(s.DATE).is_between(span.since.date(), last)).filter(span.contains())


#: Told after each slice: (what is being assessed, slices done, slices in it).
Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    del what, done, total


def _baseline_of(
    events: pl.LazyFrame, window: c.Window, settings: c.Settings, progress: Progress
) -> tuple[pl.DataFrame, int]:
    """The baseline rows and the event count of a window, one slice at a time."""
    rows, size = [], 0
    spans = _slices(events, window)
    if spans:  # a bar from the start of the first slice
        progress("baseline", 0, len(spans))
    for done, span in enumerate(spans, 1):
        prepared = c.prepare(_slice_of(events, span), span, settings)
        found, count = pl.collect_all([c.baseline_rows(prepared), prepared.select(pl.len())])
        rows.append(found)
        size += int(count.item())
        progress("baseline", done, len(spans))
    return _concat(rows).unique(), size


#: Events per slice: the controls run over one slice of the window at a time, so that peak
#: memory is that of a slice whatever the window's length; quiet hours are gathered into one
#: slice (each run has a fixed cost), and a busy hour is a slice of its own.
SLICE_ROWS = 500_000


def _assess_window(
    events: pl.LazyFrame,
    window: c.Window,
    ctx: c.Context,
    *,
    controls: Sequence[c.Control],
    coverage: Sequence[c.Coverage],
    baseline_events: int,
    progress: Callable[[int, int], None],
) -> tuple[Assessment, pl.DataFrame, pl.DataFrame, set[str]]:
    slices: list[SliceParts] = []
    clusters: set[str] = set()
    extra = c.extra_columns(controls)
    spans = _slices(events, window)
    if spans:
        progress(0, len(spans))
    for done, span in enumerate(spans, 1):
        frame = _contiguous(c.prepare(_slice_of(events, span), span, ctx.settings, extra).collect())
        clusters |= set(frame[s.CLUSTER].drop_nulls().unique().to_list())
        slices.append(slice_parts(frame.lazy(), ctx, controls))
        del frame
        progress(done, len(spans))
    result, baseline, daily = merge_slices(
        slices, ctx, controls=controls, coverage=coverage, baseline_events=baseline_events
    )
    return result, baseline, daily, clusters


def build_report(
    events: pl.LazyFrame,
    window: c.Window,
    *,
    policy: Any = None,
    policy_name: str | None = None,
    settings: c.Settings | None = None,
    settings_name: str | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
    title: str = "Kubernetes audit compliance report",
    progress: Progress | None = None,
) -> Report:
    """Assess every control over ``window`` and the previous window, and build the report.

    ``events`` should cover three window lengths back from ``window.until``: the previous
    window is the trend's, and the one before it is the previous window's baseline for the
    first-seen controls. Each window is assessed one slice at a time (whole hours, at most
    ``SLICE_ROWS`` events): only one slice of events is in memory at once, and what the
    window-wide controls need (bursts, gaps, first-seen values) is carried from slice to
    slice as small partial results.

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
        Thresholds, allow-lists and working hours (``compliance.load_settings``).
    settings_name
        How the report names the settings (their file name).
    controls
        The controls to run (e.g. ``CONTROLS`` plus ``compliance.sigma`` rules).
    title
        The report's title.
    progress
        Called after each slice with what is being assessed (``"baseline"``,
        ``"previous window"``, ``"window"``), the slices done and the slices in it.

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
    tell = progress or _no_progress
    baseline, size = _baseline_of(events, previous.previous(), settings, tell)
    assessments = []
    clusters: set[str] = set()
    daily = pl.DataFrame()
    for what, span in (("previous window", previous), ("window", window)):
        ctx = c.Context(span, settings, baseline=baseline.lazy() if size else None)
        result, baseline, daily, clusters = _assess_window(
            events,
            span,
            ctx,
            controls=controls,
            coverage=coverage,
            baseline_events=size,
            progress=functools.partial(tell, what),
        )
        size = result.events
        assessments.append(result)
    before, now = assessments
    return assemble_report(
        before,
        now,
        clusters=tuple(sorted(clusters)),
        daily=daily,
        settings=settings,
        settings_name=settings_name,
        controls=controls,
        coverage=tuple(coverage),
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
    settings_name: str | None = None,
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
        settings_name=settings_name,
        rows=rows,
        events=now.events,
        previous_events=before.events,
        clusters=clusters,
        policy_name=policy_name,
        coverage=coverage,
        evidence=now.evidence,
        daily=_daily_findings(now.evidence, daily),
        errors={**before.errors, **now.errors},
    )


class EmptyWindowError(ReportError):
    """The report window holds no events: collection stopped, or a filter matches nothing."""


def _span_text(lake: str | os.PathLike[str]) -> str:
    overview = describe(lake)
    if not overview.events:
        return f"the lake at {lake} holds no events at all"
    first = overview.first.strftime("%Y-%m-%d %H:%M") if overview.first else "?"
    last = overview.last.strftime("%Y-%m-%d %H:%M") if overview.last else "?"
    return (
        f"the lake holds {overview.events:,} events from {first} to {last} UTC in "
        f"cluster(s) {', '.join(overview.clusters)}"
    )


def check_window(
    report: Report, lake: str | os.PathLike[str], cluster: str | list[str] | None
) -> Report:
    """The report, or ``EmptyWindowError`` when its window holds no events.

    A scheduled report over an empty window means collection stopped or a filter is wrong:
    the error says which, with the span the lake actually holds.
    """
    if report.events:
        return report
    wanted = [cluster] if isinstance(cluster, str) else list(cluster or [])
    known = describe(lake).clusters
    unknown = [name for name in wanted if name not in known]
    if unknown:
        near = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        msg = (
            f"no cluster named {unknown[0]!r} in the lake{hint}; it holds "
            f"{', '.join(known) or 'no clusters'}"
        )
        raise EmptyWindowError(msg)
    since = report.window.since.strftime("%Y-%m-%d %H:%M")
    until = report.window.until.strftime("%Y-%m-%d %H:%M")
    msg = f"no events between {since} and {until} UTC: {_span_text(lake)}"
    raise EmptyWindowError(msg)


def report_from_lake(
    lake: str | os.PathLike[str],
    window: c.Window,
    *,
    policy_path: str | os.PathLike[str] | None = None,
    cluster: str | list[str] | None = None,
    settings: c.Settings | None = None,
    settings_name: str | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
    progress: Progress | None = None,
) -> Report:
    """``build_report`` over a lake: scans three window lengths back and loads the policy.

    Raises
    ------
    kaudit_analytics.lake.LakeError
        When the folder does not exist or holds no lake.
    EmptyWindowError
        When the window holds no events (with the lake's actual span in the message).
    kaudit_analytics.policy.PolicyError
        When the policy file is not a valid audit policy.
    """
    require_lake(lake)
    policy = None
    if policy_path is not None:
        from kaudit_analytics.policy import load_policy

        policy = load_policy(Path(policy_path))
    events = scan(
        lake, cluster=cluster, since=window.previous().previous().since, until=window.until
    )
    name = Path(policy_path).name if policy_path is not None else None
    built = build_report(
        events,
        window,
        policy=policy,
        policy_name=name,
        settings=settings,
        settings_name=settings_name,
        controls=controls,
        progress=progress,
    )
    return check_window(built, lake, cluster)


def exit_code(report: Report, fail_on: c.Severity | None) -> int:
    """``EXIT_FINDINGS`` when a control of severity ``fail_on`` or worse failed, else 0;
    ``EXIT_ERROR`` when a control's evidence query failed (the report is still complete for
    every other control).

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
    if report.errors:
        return EXIT_ERROR
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
                "attack": row.attack,
                "tactics": row.tactics,
                "excludes": row.control.excludes,
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
            "attack": pl.String,
            "tactics": pl.String,
            "excludes": pl.String,
        },
    )


def tactic_table(report: Report) -> pl.DataFrame:
    """Controls and findings per MITRE ATT&CK tactic, in kill-chain order.

    A control counts under each tactic of its techniques.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, tactic_table
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> tactic_table(build_report(empty_events().lazy(), w)).columns
    ['tactic', 'controls', 'failing', 'findings', 'failing_controls']
    """
    rows = []
    for tactic in c.TACTICS:
        mine = [row for row in report.rows if tactic in row.control.tactics]
        if not mine:
            continue
        failing = [row for row in mine if row.result.status == "fail"]
        rows.append(
            {
                "tactic": tactic,
                "controls": len(mine),
                "failing": len(failing),
                "findings": sum(row.result.findings for row in mine),
                "failing_controls": ", ".join(row.control.id for row in failing),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "tactic": pl.String,
            "controls": pl.Int64,
            "failing": pl.Int64,
            "findings": pl.Int64,
            "failing_controls": pl.String,
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
