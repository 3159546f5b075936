"""Controls over a window of events: their evidence, what the window can support, results.

``evidence`` and ``observations`` return LazyFrames; ``decide`` turns their (small)
collected results into ``ControlResult`` values; ``policy_coverage`` says which controls an
audit policy can support at all. ``kaudit_analytics.report`` is the edge that collects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import polars as pl

from kaudit_analytics import schema as s
from kaudit_analytics.compliance import evidence as ev
from kaudit_analytics.compliance.controls import CONTROLS, Control, Probe, Severity, Status
from kaudit_analytics.compliance.evidence import Context
from kaudit_analytics.compliance.settings import Settings
from kaudit_analytics.policy import RequestAttributes
from kaudit_analytics.window import Window

__all__ = [
    "EVIDENCE_SCHEMA",
    "ControlResult",
    "Coverage",
    "control_evidence",
    "decide",
    "evidence",
    "extra_columns",
    "finish",
    "observation_counts",
    "observations",
    "observations_from_counts",
    "order_evidence",
    "partials",
    "policy_coverage",
    "prepare",
]


# --------------------------------------------------------------------------- evidence

EVIDENCE_SCHEMA = pl.Schema(
    {
        "control": pl.String(),
        "severity": pl.String(),
        "when": pl.Datetime("us", "UTC"),
        "who": pl.String(),
        "what": pl.String(),
        "where": pl.String(),
        "outcome": pl.String(),
        "detail": pl.String(),
        s.CLUSTER: pl.String(),
        s.NAMESPACE: pl.String(),
        s.USER_AGENT: pl.String(),
        s.AUDIT_ID: pl.String(),
        s.SOURCE_FILE: pl.String(),
        s.SOURCE_LINE: pl.Int64(),
    }
)

_WHO = pl.concat_str(
    pl.col(s.USER).fill_null("<unknown>"),
    pl.when(pl.col(s.IMPERSONATED_USER).is_not_null()).then(
        pl.lit(" as ") + pl.col(s.IMPERSONATED_USER)
    ),
    ignore_nulls=True,
)
_WHAT = pl.concat_str(
    pl.col(s.VERB).fill_null("?"), pl.lit(" "), pl.col(s.REQUEST_URI).fill_null("?")
)
_OUTCOME = pl.concat_str(
    pl.col(s.CODE).cast(pl.String).fill_null("no code"),
    pl.when(pl.col(s.AUTHZ_DECISION).is_not_null()).then(
        pl.lit(" (") + pl.col(s.AUTHZ_DECISION) + pl.lit(")")
    ),
    ignore_nulls=True,
)


def prepare(
    events: pl.LazyFrame,
    window: Window | None = None,
    settings: Settings | None = None,
    extra: Iterable[str] = (),
) -> pl.LazyFrame:
    """The events of ``window`` as the controls read them, shared columns derived once.

    ``control_evidence``, ``evidence`` and ``observations`` call this themselves unless told
    the events are ``prepared``; a report prepares and collects one slice (a day) of the
    window at a time and runs every control's ``partial`` over it.

    Examples
    --------
    >>> from kaudit_analytics.compliance import prepare
    >>> from kaudit_analytics.schema import empty_events
    >>> "_actor" in prepare(empty_events().lazy()).collect_schema().names()
    True
    """
    return ev.prepare(events, window, settings, tuple(extra))


def extra_columns(controls: Iterable[Control]) -> tuple[str, ...]:
    """The event columns the controls read besides those ``prepare`` always keeps."""
    return tuple(dict.fromkeys(name for ctrl in controls for name in ctrl.reads))


def _prepared(
    events: pl.LazyFrame, ctx: Context, prepared: bool, extra: tuple[str, ...] = ()
) -> tuple[pl.LazyFrame, Context]:
    if prepared:
        return events, ctx
    baseline = (
        None
        if ctx.baseline is None
        else ev.baseline_rows(ev.prepare(ctx.baseline, None, ctx.settings))
    )
    rows = ev.prepare(events, ctx.window, ctx.settings, extra)
    return rows, dataclasses.replace(ctx, baseline=baseline)


def _as_evidence(found: pl.LazyFrame, ctrl: Control) -> pl.LazyFrame:
    return found.select(
        pl.lit(ctrl.id, dtype=pl.String).alias("control"),
        pl.lit(ctrl.severity, dtype=pl.String).alias("severity"),
        pl.col(s.REQUEST_TS).alias("when"),
        _WHO.alias("who"),
        _WHAT.alias("what"),
        pl.col(s.SOURCE_IPS).list.first().alias("where"),
        _OUTCOME.alias("outcome"),
        pl.col(ev.DETAIL),
        pl.col(s.CLUSTER).cast(pl.String),
        pl.col(s.NAMESPACE).cast(pl.String),
        pl.col(s.USER_AGENT),
        pl.col(s.AUDIT_ID),
        pl.col(s.SOURCE_FILE),
        pl.col(s.SOURCE_LINE),
    ).cast(EVIDENCE_SCHEMA)


def control_evidence(
    events: pl.LazyFrame, ctrl: Control, ctx: Context, *, prepared: bool = False
) -> pl.LazyFrame:
    """The findings of one control over the window's events, in ``EVIDENCE_SCHEMA``.

    Parameters
    ----------
    events
        The events table; rows outside ``ctx.window`` are ignored.
    ctrl
        The control.
    ctx
        The window, settings and (for first-seen controls) the baseline: the events of the
        period before, or, when ``prepared``, their ``baseline_rows``.
    prepared
        ``events`` already went through ``prepare`` (and ``ctx.baseline`` through
        ``baseline_rows``).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Context, Window, control, control_evidence
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> found = control_evidence(empty_events().lazy(), control("pod-exec"), Context(window))
    >>> found.collect().shape
    (0, 14)
    """
    rows, ctx = _prepared(events, ctx, prepared, ctrl.reads)
    return _as_evidence(ev.run(ctrl.evidence, rows, ctx), ctrl)


def evidence(
    events: pl.LazyFrame,
    ctx: Context,
    controls: Iterable[Control] = CONTROLS,
    *,
    prepared: bool = False,
) -> pl.LazyFrame:
    """All controls' findings, in catalogue order then time order.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Context, Window, evidence
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> evidence(empty_events().lazy(), Context(window)).collect().height
    0
    """
    controls = tuple(controls)
    rows, ctx = _prepared(events, ctx, prepared, extra_columns(controls))
    frames = [control_evidence(rows, c, ctx, prepared=True) for c in controls]
    if not frames:
        return pl.LazyFrame(schema=EVIDENCE_SCHEMA)
    return order_evidence(pl.concat(frames))


def partials(
    prepared: pl.LazyFrame, ctx: Context, controls: Iterable[Control] = CONTROLS
) -> dict[str, pl.LazyFrame]:
    """What one prepared slice of the window contributes to each control's findings.

    Collect these per slice (they are small), concatenate each control's over all slices,
    and ``finish`` them: the findings are those of the whole window, while only one slice of
    events was ever in memory.
    """
    return {ctrl.id: ctrl.evidence.partial(prepared, ctx) for ctrl in controls}


def finish(
    parts: Mapping[str, pl.LazyFrame], ctx: Context, controls: Iterable[Control] = CONTROLS
) -> pl.LazyFrame:
    """All controls' findings from their concatenated ``partials``, in report order.

    ``ctx.baseline`` is the ``baseline_rows`` of the previous window (or None).
    """
    frames = [_as_evidence(ctrl.evidence.final(parts[ctrl.id], ctx), ctrl) for ctrl in controls]
    if not frames:
        return pl.LazyFrame(schema=EVIDENCE_SCHEMA)
    return order_evidence(pl.concat(frames))


def order_evidence(found: pl.LazyFrame) -> pl.LazyFrame:
    """Findings in report order: catalogue order of the controls, then time order.

    ``evidence`` returns them so; an engine that gathers findings from several workers
    orders the union with this.

    Examples
    --------
    >>> from kaudit_analytics.compliance import EVIDENCE_SCHEMA, order_evidence
    >>> import polars as pl
    >>> order_evidence(pl.LazyFrame(schema=EVIDENCE_SCHEMA)).collect().width
    14
    """
    order = {c.id: i for i, c in enumerate(CONTROLS)}
    return (
        found.with_columns(
            pl.col("control").replace_strict(order, default=len(order)).alias("_order")
        )
        .sort("_order", "when", s.SOURCE_FILE, s.SOURCE_LINE, s.AUDIT_ID, "detail", nulls_last=True)
        .drop("_order")
    )


# --------------------------------------------------------------------------- assessability


def _level_rank(level: str) -> int:
    return s.LEVELS.index(level)


def observations(
    events: pl.LazyFrame,
    window: Window,
    controls: Iterable[Control] = CONTROLS,
    *,
    prepared: bool = False,
    settings: Settings | None = None,
) -> pl.LazyFrame:
    """One row saying what the window's events can support: a single pass over them.

    Columns: ``events``; ``stage:<Stage>`` (events per stage); for each control with a
    scope, ``<id>:scope`` (in-scope events), ``<id>:below`` (in-scope events logged below the
    control's level) and ``<id>:below_level`` (the highest such level, as a string).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window, observations
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> observations(empty_events().lazy(), window).collect()["events"].to_list()
    [0]
    """
    rows = events if prepared else ev.prepare(events, window, settings)
    counts = observation_counts(rows, controls, settings)
    return observations_from_counts(counts, controls, settings)


def _scoped(controls: Iterable[Control], settings: Settings) -> list[tuple[Control, pl.Expr]]:
    return [(ctrl, scope) for ctrl in controls if (scope := ctrl.scope_expr(settings)) is not None]


def observation_counts(
    prepared: pl.LazyFrame,
    controls: Iterable[Control] = CONTROLS,
    settings: Settings | None = None,
) -> pl.LazyFrame:
    """Prepared events counted (``_n``) per distinct value of the columns the scopes read.

    The first half of ``observations``, and additive: the counts of disjoint slices of the
    window, summed by the other columns, are the counts of the whole.

    Examples
    --------
    >>> from kaudit_analytics.compliance import observation_counts, prepare
    >>> from kaudit_analytics.schema import empty_events
    >>> "_n" in observation_counts(prepare(empty_events().lazy())).collect_schema().names()
    True
    """
    scoped = _scoped(controls, settings or Settings())
    # Count once per distinct combination of the columns the scopes read (a few thousand
    # rows even for millions of events), then evaluate every scope on those counts.
    keys = sorted({s.LEVEL, s.STAGE}.union(*(scope.meta.root_names() for _, scope in scoped)))
    return prepared.group_by(keys).agg(pl.len().cast(pl.Int64).alias("_n"))


def observations_from_counts(
    counts: pl.LazyFrame,
    controls: Iterable[Control] = CONTROLS,
    settings: Settings | None = None,
) -> pl.LazyFrame:
    """``observations`` from ``observation_counts`` (of the window, or of slices of it)."""
    n = pl.col("_n")
    level = pl.col(s.LEVEL).to_physical()
    columns: list[pl.Expr] = [n.sum().cast(pl.Int64).alias("events")]
    columns += [
        n.filter(pl.col(s.STAGE).cast(pl.String) == stage)
        .sum()
        .cast(pl.Int64)
        .alias(f"stage:{stage}")
        for stage in s.STAGES
    ]
    for ctrl, raw in _scoped(controls, settings or Settings()):
        scope = raw.fill_null(value=False)
        below = scope & (level < _level_rank(ctrl.level))
        columns += [
            n.filter(scope).sum().cast(pl.Int64).alias(f"{ctrl.id}:scope"),
            n.filter(below).sum().cast(pl.Int64).alias(f"{ctrl.id}:below"),
            level.filter(below).max().cast(pl.Int64).alias(f"{ctrl.id}:below_level"),
        ]
    return counts.select(columns)


# --------------------------------------------------------------------------- policy coverage

Support = Literal["full", "partial", "none"]


@dataclass(frozen=True)
class Coverage:
    """Whether an audit policy logs what a control needs."""

    control: str
    support: Support
    reason: str


class _AuditConfig(Protocol):
    @property
    def level(self) -> str: ...
    @property
    def omit_stages(self) -> frozenset[str]: ...


class _Policy(Protocol):
    def evaluate_request(self, attrs: Any, /) -> _AuditConfig: ...


def _probe_gap(ctrl: Control, probe: Probe, cfg: _AuditConfig) -> str | None:
    """Why the policy's decision for ``probe`` falls short of ``ctrl``, or None."""
    if cfg.level == "None":
        return f"{probe.describe()} is not logged at all"
    if _level_rank(cfg.level) < _level_rank(ctrl.level):
        return f"{probe.describe()} is logged at {cfg.level}; {ctrl.title} needs {ctrl.level}"
    omitted = sorted(set(ctrl.stages) & set(cfg.omit_stages))
    if omitted:
        return f"{probe.describe()} omits stage {', '.join(omitted)}, which {ctrl.title} needs"
    return None


def policy_coverage(
    policy: _Policy, controls: Iterable[Control] = CONTROLS
) -> tuple[Coverage, ...]:
    """Which controls an audit policy can support: each control's probes, evaluated.

    ``full`` when every probe is logged at the control's level with its stages, ``partial``
    when some are, ``none`` otherwise; the reason names the first probe that falls short.

    Parameters
    ----------
    policy
        A policy from ``kaudit_analytics.policy.load_policy``.
    controls
        The controls to check.

    Examples
    --------
    >>> from kaudit_analytics.policy import load_policy
    >>> from kaudit_analytics.compliance import policy_coverage
    >>> policy = load_policy(
    ...     "apiVersion: audit.k8s.io/v1\\nkind: Policy\\nrules:\\n- level: Metadata\\n"
    ... )
    >>> {c.control: c.support for c in policy_coverage(policy)}["privileged-pod"]
    'none'
    """
    rows = []
    for ctrl in controls:
        gaps = [
            _probe_gap(ctrl, probe, policy.evaluate_request(RequestAttributes(**vars(probe))))
            for probe in ctrl.probes
        ]
        short = [gap for gap in gaps if gap is not None]
        support: Support = "full" if not short else "partial" if len(short) < len(gaps) else "none"
        reason = short[0] if short else f"all {len(gaps)} probe request(s) logged as needed"
        rows.append(Coverage(ctrl.id, support, reason))
    return tuple(rows)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class ControlResult:
    """The outcome of one control over one window."""

    control: str
    status: Status
    findings: int
    #: The control's severity when it fails; None otherwise.
    severity: Severity | None
    #: Why it is not assessable, or what a pass or fail rests on.
    reason: str


def _unset(ctrl: Control, settings: Settings) -> str | None:
    """The reason a control that needs a setting is not assessable, or None."""
    for need in ctrl.requires:
        names = need.split("|")
        if not any(getattr(settings, name) for name in names):
            return f"set {' or '.join(names)} in the settings file to assess this control"
    return None


def _unassessable(
    ctrl: Control,
    observed: Mapping[str, Any],
    coverage: Coverage | None,
    baseline_events: int | None,
    settings: Settings,
) -> str | None:
    unset = _unset(ctrl, settings)
    if unset:
        return unset
    missing = [stage for stage in ctrl.stages if not observed.get(f"stage:{stage}")]
    if missing:
        return (
            f"no {', '.join(missing)} events in the window (the policy omits the stage); "
            f"{ctrl.title} needs them"
        )
    if ctrl.needs_baseline and not baseline_events:
        return "no events in the previous window to compare with"
    below = int(observed.get(f"{ctrl.id}:below") or 0)
    if below:
        scope = int(observed.get(f"{ctrl.id}:scope") or 0)
        level = s.LEVELS[int(observed[f"{ctrl.id}:below_level"])]
        share = "all" if below == scope else f"{below} of {scope}"
        return f"{share} {ctrl.scope_label} are logged at {level}; {ctrl.title} needs {ctrl.level}"
    if coverage is not None and coverage.support != "full":
        return f"under the given policy, {coverage.reason}"
    return None


def decide(
    controls: Iterable[Control],
    observed: Mapping[str, Any],
    findings: Mapping[str, int],
    *,
    coverage: Iterable[Coverage] = (),
    baseline_events: int | None = None,
    settings: Settings | None = None,
) -> tuple[ControlResult, ...]:
    """Each control's result from the window's observations and finding counts.

    Findings always fail a control (they are real, whatever else is missing); without any, a
    control passes only when what it needs was observed and, given a policy, is logged by it.

    Parameters
    ----------
    controls
        The controls, in report order.
    observed
        The one row of ``observations`` as a mapping.
    findings
        Finding count per control id (absent means none).
    coverage
        ``policy_coverage`` rows, when a policy was given.
    baseline_events
        How many events the comparison window holds (first-seen controls need some).
    settings
        The settings the controls ran with (allow-list controls need theirs set).

    Examples
    --------
    >>> from kaudit_analytics.compliance import control, decide
    >>> result, = decide([control("pod-exec")], {"events": 0}, {})
    >>> result.status, result.reason
    ('not assessable', 'no audit events in the window')
    """
    by_control = {row.control: row for row in coverage}
    tuned = settings or Settings()
    results = []
    for ctrl in controls:
        count = int(findings.get(ctrl.id, 0))
        total = int(observed.get("events") or 0)
        in_scope = int(observed.get(f"{ctrl.id}:scope") or 0) if ctrl.scope is not None else total
        gap = _unassessable(ctrl, observed, by_control.get(ctrl.id), baseline_events, tuned)
        if count:
            reason = f"{count} finding(s) in {in_scope} {ctrl.scope_label}"
            if gap:
                reason += f"; coverage is incomplete: {gap}"
            results.append(ControlResult(ctrl.id, "fail", count, ctrl.severity, reason))
        elif not total:
            results.append(
                ControlResult(ctrl.id, "not assessable", 0, None, "no audit events in the window")
            )
        elif gap:
            results.append(ControlResult(ctrl.id, "not assessable", 0, None, gap))
        else:
            reason = f"no findings in {in_scope} {ctrl.scope_label}"
            if not in_scope:
                # Nothing to look at: say what the pass rests on, so it is never silent.
                reason = (
                    f"no {ctrl.scope_label} in the window, and the given policy logs them"
                    if ctrl.id in by_control
                    else f"no {ctrl.scope_label} were logged in the window; give the audit "
                    "policy (--policy) to confirm they would be"
                )
            results.append(ControlResult(ctrl.id, "pass", 0, None, reason))
    return tuple(results)
