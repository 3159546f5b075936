"""Evidence queries that look across the whole window: gaps, first-seen values, sequences.

Each keeps, per slice, only what the window-wide question needs (the first and last event of
each cluster, candidate rows, one row per distinct value) and answers it in ``final`` over
the partials of every slice, so a window of any length is assessed with flat memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from kaudit_analytics import schema as s
from kaudit_analytics.compliance import bodies
from kaudit_analytics.compliance.evidence import (
    EVIDENCE_INPUT,
    IP_COL,
    MACHINERY,
    ORDER,
    RBAC_CHANGE,
    ROLES,
    Context,
    EvidenceQuery,
    Tuned,
    first_of_groups,
    keep,
    requests,
    tuned,
)
from kaudit_analytics.compliance.settings import matches_any

__all__ = [
    "EveryEvent",
    "FirstSeen",
    "FollowedBy",
    "Gaps",
    "Incomplete",
    "RbacEscalation",
    "Union",
]


def _human_duration(delta: pl.Expr) -> pl.Expr:
    minutes = delta.dt.total_minutes()
    return pl.concat_str(
        (minutes // 60).cast(pl.String), pl.lit("h"), (minutes % 60).cast(pl.String), pl.lit("m")
    )


@dataclass(frozen=True)
class EveryEvent:
    """Every event (not only each request's last stage) matching ``predicate`` is a finding."""

    predicate: pl.Expr
    detail: pl.Expr

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx
        return events.filter(self.predicate).pipe(keep, self.detail)

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx
        return partials


@dataclass(frozen=True)
class Union:
    """Several queries whose findings are one control's."""

    parts: tuple[EvidenceQuery, ...]

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        frames = [
            part.partial(events, ctx).with_columns(pl.lit(i, dtype=pl.Int8).alias("_part"))
            for i, part in enumerate(self.parts)
        ]
        return pl.concat(frames, how="diagonal_relaxed")

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        names = partials.collect_schema().names()
        found = []
        for i, part in enumerate(self.parts):
            mine = partials.filter(pl.col("_part") == i).drop("_part")
            own = part.partial(_empty_prepared(), ctx).collect_schema().names()
            found.append(part.final(mine.select([n for n in own if n in names]), ctx))
        return pl.concat(found, how="vertical_relaxed")


def _empty_prepared() -> pl.LazyFrame:
    from kaudit_analytics.compliance.evidence import prepare

    return prepare(s.empty_events().lazy(), None)


@dataclass(frozen=True)
class Gaps:
    """Silences longer than ``gap_threshold`` in each cluster's stream, window edges included.

    A gap inside the stream points at the event that ended it; a silence between the last
    event and the window's end points at that last event. Per slice: the gaps inside it and
    its first and last event per cluster; over all slices: the gaps between slices.
    """

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        threshold = ctx.settings.gap_threshold
        indexed = events.with_row_index("_row")
        # Order three narrow columns, not the whole table; join the few rows back afterwards.
        order = indexed.select(s.CLUSTER, s.REQUEST_TS, "_row").sort(
            s.CLUSTER, s.REQUEST_TS, "_row", nulls_last=True
        )
        previous = pl.col(s.REQUEST_TS).shift(1).over(s.CLUSTER)
        marked = order.with_columns(
            (pl.col(s.REQUEST_TS) - previous).alias("_gap"),
            (pl.int_range(pl.len()).over(s.CLUSTER) == 0).alias("_first"),
            (pl.int_range(pl.len()).over(s.CLUSTER) == pl.len().over(s.CLUSTER) - 1).alias(
                "_lastrow"
            ),
        ).filter((pl.col("_gap") > threshold) | pl.col("_first") | pl.col("_lastrow"))
        return indexed.join(marked.drop(s.CLUSTER, s.REQUEST_TS), on="_row", how="inner").select(
            *EVIDENCE_INPUT,
            pl.col("_gap").fill_null(dt.timedelta(0)),
            pl.col("_first") & pl.col("_gap").is_null(),
            "_lastrow",
        )

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        threshold, window = ctx.settings.gap_threshold, ctx.window
        rows = partials.sort(s.CLUSTER, *ORDER, nulls_last=True)
        ts = pl.col(s.REQUEST_TS)
        edge_before = ts - ts.shift(1).over(s.CLUSTER).fill_null(pl.lit(window.since))
        before = (
            rows.with_columns(
                pl.when(pl.col("_first")).then(edge_before).otherwise(pl.col("_gap")).alias("_g")
            )
            .filter(pl.col("_g") > threshold)
            .with_columns(pl.lit("no events for {} before this one").alias("_text"))
        )
        after = (
            rows.filter(pl.col("_lastrow"))
            .group_by(s.CLUSTER)
            .agg(pl.all().sort_by(*ORDER).last())
            .with_columns((pl.lit(window.until) - ts).alias("_g"))
            .filter(pl.col("_g") > threshold)
            .with_columns(
                pl.lit("no events for {} after this one, up to the window's end").alias("_text")
            )
        )
        both = pl.concat([before, after], how="diagonal_relaxed")
        return both.pipe(
            keep, pl.col("_text").str.replace("{}", _human_duration(pl.col("_g")), literal=True)
        )


@dataclass(frozen=True)
class Incomplete:
    """Requests whose start was logged but whose completion never was.

    A request's furthest logged stage is its last one; when that is RequestReceived or
    ResponseStarted, no ResponseComplete or Panic followed. Requests received within
    ``stage_grace`` of the window's end, or of the cluster's last event in it, are left
    alone: a long watch completes after them (a stream that stopped is ``audit-gap``'s).
    """

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx
        from kaudit_analytics.compliance.evidence import FAILED_AUTHENTICATION

        candidates = requests(
            events,
            (pl.col(s.STAGE).to_physical() <= s.STAGES.index("ResponseStarted"))
            & pl.col(s.AUDIT_ID).is_not_null()
            & ~FAILED_AUTHENTICATION,
        ).select(*EVIDENCE_INPUT, pl.lit(value=False).alias("_edge"))
        last = pl.col(s.REQUEST_TS).arg_max().fill_null(0)
        ends = (
            events.group_by(s.CLUSTER)
            .agg(*[pl.col(name).get(last) for name in EVIDENCE_INPUT if name != s.CLUSTER])
            .select(*EVIDENCE_INPUT, pl.lit(value=True).alias("_edge"))
        )
        return pl.concat([candidates, ends])

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        grace = ctx.settings.stage_grace
        ends = (
            partials.filter(pl.col("_edge"))
            .group_by(s.CLUSTER)
            .agg(
                pl.min_horizontal(pl.col(s.REQUEST_TS).max(), pl.lit(ctx.window.until)).alias(
                    "_end"
                )
            )
        )
        return (
            partials.filter(~pl.col("_edge"))
            .join(ends, on=s.CLUSTER, how="inner", nulls_equal=True)
            .filter(pl.col(s.REQUEST_TS) < pl.col("_end") - grace)
            .pipe(
                keep,
                pl.format(
                    "last logged stage is {}; no ResponseComplete or Panic",
                    pl.col(s.STAGE).cast(pl.String),
                ),
            )
        )


#: How a first-seen value is spelled from the baseline's columns and from a prepared slice.
_VALUE_COLUMNS = {
    "user agent": (s.USER_AGENT,),
    "source IP": (IP_COL,),
    "address and user agent": (IP_COL, s.USER_AGENT),
    "user agent and decision": (s.USER_AGENT, s.AUTHZ_DECISION),
}


def _value(label: str) -> pl.Expr:
    columns = _VALUE_COLUMNS[label]
    return pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("-") for c in columns], separator=" | "
    )


@dataclass(frozen=True)
class FirstSeen:
    """Per identity, values (``label``) seen in the window but never in the baseline.

    ``known_only`` limits the findings to identities the baseline knows (a person's new
    agent); otherwise an identity never seen before is new with every value. ``what`` names,
    in the detail, the kind of request the value was first seen on.
    """

    predicate: Tuned
    label: str
    what: Tuned | None = None
    known_only: bool = False

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        rows = requests(events, tuned(self.predicate, ctx.settings)).with_columns(
            _value(self.label).alias("_value"),
            (pl.lit("request") if self.what is None else tuned(self.what, ctx.settings)).alias(
                "_what"
            ),
        )
        keys = [s.CLUSTER, s.USER, "_value"]
        return first_of_groups(rows, keys, [pl.len().alias("_n"), pl.col("_what").first()])

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        if ctx.baseline is None:
            return partials.head(0).pipe(keep, pl.lit(None, dtype=pl.String))
        seen = ctx.baseline.select(
            pl.col(s.CLUSTER).cast(pl.String), pl.col(s.USER), _value(self.label).alias("_value")
        ).unique()
        keys = [s.CLUSTER, s.USER, "_value"]
        merged = first_of_groups(
            partials.with_columns(pl.col(s.CLUSTER).cast(pl.String)),
            keys,
            [pl.col("_n").sum(), pl.col("_what").first()],
        )
        if self.known_only:
            known = seen.select(s.CLUSTER, s.USER).unique()
            merged = merged.join(known, on=[s.CLUSTER, s.USER], how="semi", nulls_equal=True)
        return merged.join(seen, on=keys, how="anti", nulls_equal=True).pipe(
            keep,
            pl.format(
                "new {} for this identity: {} (first on a {}; {} request(s))",
                pl.lit(self.label),
                pl.col("_value"),
                pl.col("_what"),
                pl.col("_n"),
            ),
        )


def _role_kind() -> pl.Expr:
    return (
        pl.when(pl.col(s.RESOURCE) == "roles").then(pl.lit("Role")).otherwise(pl.lit("ClusterRole"))
    )


@dataclass(frozen=True)
class RbacEscalation:
    """RBAC writes that grant more than they should, read from bodies.

    A role is flagged for wildcard verbs, resources or API groups, or for granting
    ``escalate``, ``bind`` or ``impersonate`` - in the request body, in a JSON Patch's
    operations on its rules, or in the response object (the role as stored) when it was
    logged; a binding for binding a privileged role (``settings.privileged_roles``) or the
    group system:masters, or a role flagged anywhere in the window (a role written before the
    window is not known here). ``outcome`` chooses the succeeded or the refused writes.
    """

    outcome: pl.Expr
    exclude: Tuned = MACHINERY

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        body = pl.concat_str(
            [
                bodies.as_fragment(pl.col(s.REQUEST_OBJECT).fill_null("")),
                pl.col(s.RESPONSE_OBJECT).fill_null(""),
            ],
            separator="\n",
        )
        bound = pl.col(s.REQUEST_OBJECT).str.json_path_match("$.roleRef.name")
        privileged = pl.when(matches_any(bound, st.privileged_roles)).then(
            pl.format("binds {}", bound)
        )
        flags = pl.concat_str(
            [
                pl.when(pl.col(s.RESOURCE).is_in(ROLES)).then(
                    bodies.flag_names(bodies.ESCALATION_FLAGS, body)
                ),
                pl.when(~pl.col(s.RESOURCE).is_in(ROLES)).then(
                    bodies.flag_names(bodies.ESCALATION_FLAGS[-1:], body)
                ),
                privileged,
            ],
            separator=", ",
            ignore_nulls=True,
        ).str.strip_chars(", ")
        name = pl.coalesce(
            pl.col(s.NAME), pl.col(s.REQUEST_OBJECT).str.json_path_match("$.metadata.name")
        )
        return (
            requests(events, RBAC_CHANGE & self.outcome & ~tuned(self.exclude, st))
            .with_columns(
                flags.fill_null("").alias("_flags"),
                bound.alias("_bound"),
                pl.col(s.REQUEST_OBJECT).str.json_path_match("$.roleRef.kind").alias("_bound_kind"),
                pl.when(pl.col(s.RESOURCE).is_in(ROLES)).then(name).alias("_role"),
                pl.when(pl.col(s.RESOURCE).is_in(ROLES)).then(_role_kind()).alias("_role_kind"),
            )
            .select(*EVIDENCE_INPUT, "_flags", "_bound", "_bound_kind", "_role", "_role_kind")
        )

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        flagged = (
            partials.filter(pl.col("_role").is_not_null() & (pl.col("_flags") != ""))
            .select(
                pl.col(s.CLUSTER).cast(pl.String),
                pl.col("_role").alias("_bound"),
                pl.col("_role_kind").alias("_bound_kind"),
                pl.lit(value=True).alias("_risky"),
            )
            .unique()
        )
        binds_risky = pl.when(pl.col("_risky").fill_null(value=False)).then(
            pl.format("binds flagged {} {}", pl.col("_bound_kind"), pl.col("_bound"))
        )
        detail = pl.concat_str(
            [pl.when(pl.col("_flags") != "").then(pl.col("_flags")), binds_risky],
            separator=", ",
            ignore_nulls=True,
        )
        return (
            partials.with_columns(pl.col(s.CLUSTER).cast(pl.String))
            .join(flagged, on=[s.CLUSTER, "_bound", "_bound_kind"], how="left", nulls_equal=False)
            .with_columns(detail.alias("_detail"))
            .filter(pl.col("_detail") != "")
            .pipe(keep, pl.col("_detail"))
        )


@dataclass(frozen=True)
class FollowedBy:
    """A ``then`` request by the same identity within ``settings.sequence_window`` after a
    ``first`` request: one finding per ``then`` request, pointing at it."""

    first: Tuned
    then: Tuned
    first_label: str

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        first, then = tuned(self.first, st), tuned(self.then, st)
        return requests(events, first | then).select(
            *EVIDENCE_INPUT,
            first.fill_null(value=False).alias("_is_first"),
            then.fill_null(value=False).alias("_is_then"),
            pl.format("{} {}", pl.col(s.VERB), pl.col(s.REQUEST_URI)).alias("_what"),
        )

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        rows = partials.with_columns(pl.col(s.CLUSTER).cast(pl.String)).sort(s.REQUEST_TS)
        firsts = rows.filter(pl.col("_is_first")).select(
            s.CLUSTER,
            s.USER,
            pl.col(s.REQUEST_TS).alias("_at"),
            pl.col(s.REQUEST_TS).alias("_first_ts"),
            pl.col("_what").alias("_first_what"),
        )
        thens = rows.filter(pl.col("_is_then"))
        joined = thens.join_asof(
            firsts.sort("_at"),
            left_on=s.REQUEST_TS,
            right_on="_at",
            by=[s.CLUSTER, s.USER],
            strategy="backward",
            tolerance=ctx.settings.sequence_window,
            check_sortedness=False,
        )
        gap = (pl.col(s.REQUEST_TS) - pl.col("_first_ts")).dt.total_seconds()
        return joined.filter(pl.col("_first_ts").is_not_null()).pipe(
            keep,
            pl.format("{}s after {}: {}", gap, pl.lit(self.first_label), pl.col("_first_what")),
        )
