"""The traffic a policy is tuned on: a window of a lake, how long it spans, one policy at a time.

Rates (bytes a day, cost a month) are extrapolated from the span the traffic covers, so the
span goes with every rate (``Span.describe``): a 50-second capture says it is 50 seconds.
Traffic of clusters logged under different audit policies cannot be replayed as one (each
request is replayed from what *its* policy kept); ``policy_conflicts`` finds such clusters
from the levels and stages they observed, and ``checked_traffic`` refuses to mix them unless
asked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from kaudit_analytics.policy.rules import PolicyError
from kaudit_analytics.schema import (
    API_GROUP,
    CLUSTER,
    CODE,
    LEVEL,
    NAMESPACE,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    STAGE,
    STAGE_TS,
    SUBRESOURCE,
    USER,
    VERB,
)

__all__ = [
    "DAY_SECONDS",
    "MixedPoliciesError",
    "Span",
    "checked_traffic",
    "observed_span",
    "policy_conflicts",
    "span_parts",
]

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Span:
    """From the first request received to the last event written (UTC), as observed.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.policy import Span
    >>> start = dt.datetime(2026, 11, 27, 5, 10, 15, tzinfo=dt.UTC)
    >>> span = Span(start, start + dt.timedelta(seconds=50))
    >>> span.seconds, span.extrapolated, round(span.per_day(750_000) / 1e9, 2)
    (50.0, True, 1.3)
    >>> span.describe()
    'observed 50 s (2026-11-27 05:10:15Z to 05:11:05Z); daily rates are extrapolated from 50 s'
    """

    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def seconds(self) -> float:
        """Length in seconds (0 for no events or a single instant)."""
        if self.start is None or self.end is None:
            return 0.0
        return max((self.end - self.start).total_seconds(), 0.0)

    @property
    def hours(self) -> float:
        """Length in hours."""
        return self.seconds / 3600

    @property
    def extrapolated(self) -> bool:
        """Shorter than a day: daily and monthly figures are extrapolated from it."""
        return self.seconds < DAY_SECONDS

    def per_day(self, value: float) -> float:
        """``value`` observed over the span, as a daily rate (0 when the span is empty)."""
        return value * DAY_SECONDS / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One sentence to print next to every rate."""
        if self.start is None or self.end is None:
            return "no events observed: no rate can be given"
        length = _duration(self.seconds)
        same_day = self.start.date() == self.end.date()
        end = self.end.strftime("%H:%M:%SZ" if same_day else "%Y-%m-%d %H:%M:%SZ")
        text = f"observed {length} ({self.start:%Y-%m-%d %H:%M:%S}Z to {end})"
        if self.seconds == 0:
            return text + "; a single instant: no rate can be given"
        if self.extrapolated:
            return text + f"; daily rates are extrapolated from {length}"
        return text


def _duration(seconds: float) -> str:
    """``50 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY_SECONDS:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY_SECONDS:.1f} days"


def span_parts(events: pl.LazyFrame) -> pl.LazyFrame:
    """First request received and last event written, as one row (``start``, ``end``):
    additive over slices (the min of the starts, the max of the ends)."""
    last = pl.coalesce(pl.col(STAGE_TS), pl.col(REQUEST_TS))
    return events.select(pl.col(REQUEST_TS).min().alias("start"), last.max().alias("end"))


def observed_span(events: pl.LazyFrame | pl.DataFrame) -> Span:
    """The ``Span`` of an events table.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.policy import observed_span
    >>> from kaudit_analytics.testing import events_frame
    >>> t = dt.datetime(2024, 9, 10, tzinfo=dt.UTC)
    >>> events = events_frame([{"request_ts": t, "stage_ts": t + dt.timedelta(hours=2)}])
    >>> observed_span(events).hours
    2.0
    """
    start, end = span_parts(events.lazy()).collect().row(0)
    return Span(start, end)


class MixedPoliciesError(PolicyError):
    """The traffic holds clusters logged under different audit policies."""


#: What a policy decides on, as far as the events table tells: two clusters under one
#: policy log the same such request at the same level and with the same stages.
_DECISION_KEY = (USER, VERB, API_GROUP, RESOURCE, SUBRESOURCE, NAMESPACE, "path")


def policy_conflicts(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Requests two clusters logged differently: they were logged under different policies.

    For each request shape (user, verb, resource or path, namespace) that every event of a
    cluster logged at one level, the level and whether ``RequestReceived`` was written; one
    row per pair of clusters that disagree on a shape both logged (failed logins, which
    have no user and one stage, are left out).

    Examples
    --------
    >>> from kaudit_analytics.policy import policy_conflicts
    >>> from kaudit_analytics.testing import events_frame
    >>> row = {"verb": "get", "user": "tim", "resource": "pods", "stage": "ResponseComplete"}
    >>> events = events_frame([
    ...     {**row, "cluster": "a", "level": "Metadata"},
    ...     {**row, "cluster": "b", "level": "RequestResponse"},
    ... ])
    >>> policy_conflicts(events).select("cluster", "other", "level", "other_level").rows()
    [('a', 'b', 'Metadata', 'RequestResponse')]
    """
    path = pl.col(REQUEST_URI).str.split("?").list.first()
    shapes = (
        events.lazy()
        .filter(pl.col(USER).is_not_null() & (pl.col(CODE).fill_null(0) != 401))
        .with_columns(pl.when(pl.col(RESOURCE).is_null()).then(path).alias("path"))
        .group_by(CLUSTER, *_DECISION_KEY)
        .agg(
            pl.col(LEVEL).cast(pl.String).unique().alias("levels"),
            (pl.col(STAGE) == "RequestReceived").any().alias("received"),
            pl.len().alias("events"),
        )
        .filter(pl.col("levels").list.len() == 1)
        .with_columns(pl.col("levels").list.first().alias("level"))
        .drop("levels")
        .collect()
    )
    other = shapes.rename({CLUSTER: "other", "level": "other_level", "received": "other_received",
                           "events": "other_events"})  # fmt: skip
    return (
        shapes.join(other, on=list(_DECISION_KEY), nulls_equal=True)
        .filter(
            (pl.col(CLUSTER) < pl.col("other"))
            & (
                (pl.col("level") != pl.col("other_level"))
                | (pl.col("received") != pl.col("other_received"))
            )
        )
        .sort(
            CLUSTER,
            "other",
            pl.col("events") + pl.col("other_events"),
            descending=[False, False, True],
        )
    )


def _shape(row: dict[str, object]) -> str:
    what = row["path"] or "/".join(str(row[c]) for c in (RESOURCE, SUBRESOURCE) if row[c])
    return f"{row[VERB]} {what} by {row[USER]}"


def check_one_policy(events: pl.LazyFrame) -> None:
    """Raise ``MixedPoliciesError`` when the clusters in ``events`` disagree (see above)."""
    clusters = events.select(pl.col(CLUSTER).unique()).collect()[CLUSTER]
    if clusters.len() < 2:
        return
    conflicts = policy_conflicts(events)
    if conflicts.is_empty():
        return
    row = conflicts.row(0, named=True)
    how = (
        f"at {row['level']} in {row[CLUSTER]} and at {row['other_level']} in {row['other']}"
        if row["level"] != row["other_level"]
        else f"with RequestReceived in only one of {row[CLUSTER]} and {row['other']}"
    )
    msg = (
        f"clusters {row[CLUSTER]} and {row['other']} were logged under different audit policies "
        f"('{_shape(row)}' is logged {how}; {conflicts.height} such request shape(s)): "
        "choose one with --cluster, or replay them as one with --mixed-policies"
    )
    raise MixedPoliciesError(msg)


def checked_traffic(
    events: pl.LazyFrame | pl.DataFrame, *, mixed_policies: bool = False
) -> pl.LazyFrame:
    """The events, once checked fit to replay: not empty, and of clusters logged under one
    policy (unless ``mixed_policies``: each request is still replayed from what its own
    policy kept, but the totals mix them).

    Raises
    ------
    PolicyError
        When there are no events.
    MixedPoliciesError
        When clusters logged under different policies would be mixed.

    Examples
    --------
    >>> from kaudit_analytics.policy import checked_traffic
    >>> from kaudit_analytics.testing import events_frame
    >>> checked_traffic(events_frame([{"cluster": "a", "verb": "get"}])).collect().height
    1
    """
    events = events.lazy()
    if events.select(pl.len()).collect().item() == 0:
        msg = "no events to replay in the window"
        raise PolicyError(msg)
    if not mixed_policies:
        check_one_policy(events)
    return events
