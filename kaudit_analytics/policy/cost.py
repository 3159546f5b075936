"""Retention on disk and cost of what a policy writes; side-by-side comparison and diff.

Assumptions (documented defaults, all overridable):

* Retention follows the apiserver's log backend (lumberjack): a file rotates at
  ``--audit-log-maxsize`` MB (0 means lumberjack's 100 MB), ``--audit-log-maxbackup``
  old files are kept (0 = all), and files older than ``--audit-log-maxage`` days are
  deleted (0 = no age limit). The disk holds the live file plus the backups, so history
  kept = min((maxbackup + 1) × maxsize / bytes per hour, maxage × 24 h).
* Prices (USD, list prices of the public pages, 2024; check your contract):
  ``cloudwatch`` $0.50 per GB ingested, $0.03 per GB-month stored;
  ``cloud-logging`` $0.50 per GiB ingested (first 50 GiB/month free, ignored here),
  $0.01 per GiB-month after 30 days (we charge every stored GB);
  ``log-analytics`` $2.30 per GB ingested (pay-as-you-go analytics logs), $0.10 per
  GB-month beyond the included 31 days (charged on every stored GB here);
  ``self-hosted`` $0 ingest, $0.10 per GB-month of disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from kaudit_analytics.policy.model import Policy
from kaudit_analytics.policy.volume import VolumeEstimate, predicted_events
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    CLUSTER,
    REQUEST_TS,
    RESOURCE,
    SUBRESOURCE,
    USER,
    VERB,
)

__all__ = [
    "PRICES",
    "Costs",
    "Price",
    "Retention",
    "compare_policies",
    "costs",
    "diff_policies",
    "observed_hours",
    "retention_hours",
]

_LUMBERJACK_DEFAULT_MB = 100
_GB = 1_000_000_000


@dataclass(frozen=True)
class Price:
    """USD per GB ingested and per GB-month stored."""

    ingest_per_gb: float
    storage_per_gb_month: float


PRICES: dict[str, Price] = {
    "cloudwatch": Price(0.50, 0.03),
    "cloud-logging": Price(0.50, 0.01),
    "log-analytics": Price(2.30, 0.10),
    "self-hosted": Price(0.0, 0.10),
}


@dataclass(frozen=True)
class Retention:
    """The apiserver's log rotation flags."""

    maxsize_mb: int = 100
    maxbackup: int = 10
    maxage_days: int = 0


def retention_hours(bytes_per_hour: float, retention: Retention) -> float:
    """Hours of history a policy's log keeps on disk (``inf`` when nothing limits it).

    Examples
    --------
    >>> from kaudit_analytics.policy.cost import Retention, retention_hours
    >>> retention_hours(50_000_000, Retention(maxsize_mb=100, maxbackup=4, maxage_days=30))
    10.0
    >>> retention_hours(1_000, Retention(maxsize_mb=100, maxbackup=4, maxage_days=1))
    24.0
    """
    limits = []
    size = (retention.maxsize_mb or _LUMBERJACK_DEFAULT_MB) * 1_000_000
    if retention.maxbackup > 0 and bytes_per_hour > 0:
        limits.append((retention.maxbackup + 1) * size / bytes_per_hour)
    if retention.maxage_days > 0:
        limits.append(retention.maxage_days * 24.0)
    return min(limits) if limits else float("inf")


@dataclass(frozen=True)
class Costs:
    """What a volume means on disk and on the bill."""

    gb_per_day: float
    retention_hours: float
    usd_per_month: float


def costs(total_bytes: int, hours: float, retention: Retention, price: Price) -> Costs:
    """Daily volume, history kept on disk and monthly cost of ``total_bytes`` over ``hours``.

    The month is 30 days of ingest plus storage of what the retention keeps (at most a
    month).

    Examples
    --------
    >>> from kaudit_analytics.policy.cost import PRICES, Retention, costs
    >>> c = costs(24_000_000_000, 24.0, Retention(100, 9, 0), PRICES["cloudwatch"])
    >>> round(c.gb_per_day, 1), round(c.retention_hours, 1), round(c.usd_per_month, 2)
    (24.0, 1.0, 360.03)
    """
    per_hour = total_bytes / max(hours, 1e-9)
    kept = retention_hours(per_hour, retention)
    stored_gb = min(kept, 24.0 * 30) * per_hour / _GB
    return Costs(
        gb_per_day=per_hour * 24 / _GB,
        retention_hours=kept,
        usd_per_month=per_hour * 24 * 30 / _GB * price.ingest_per_gb
        + stored_gb * price.storage_per_gb_month,
    )


def observed_hours(events: pl.LazyFrame) -> float:
    """Hours the traffic spans (at least one)."""
    return float(_hours(events).collect().item())


def _hours(events: pl.LazyFrame) -> pl.LazyFrame:
    span = (pl.col(REQUEST_TS).max() - pl.col(REQUEST_TS).min()).dt.total_seconds() / 3600
    return events.select(pl.max_horizontal(span, pl.lit(1.0)).alias("hours"))


def compare_policies(
    policies: Mapping[str, Policy],
    events: pl.LazyFrame,
    *,
    retention: Retention | None = None,
    price: Price | None = None,
) -> pl.DataFrame:
    """Estimate several policies on the same traffic: one row per policy.

    Columns: policy, events, bytes, exact_bytes, modelled_bytes, delta_bytes (against what
    was observed), gb_per_day, retention_hours, usd_per_month (ingest + storage of the
    retained history). The observed traffic's own row is ``observed``.
    """
    retention = retention or Retention()
    price = price or PRICES["cloudwatch"]
    hours = float(_hours(events).collect().item())
    estimates: dict[str, VolumeEstimate] = {
        name: policy.estimate_volume(events) for name, policy in policies.items()
    }
    rows = []
    observed = next(iter(estimates.values()), None)
    if observed is not None:
        rows.append(
            (
                "observed",
                observed.observed_events,
                observed.observed_bytes,
                observed.observed_bytes,
                0,
            )
        )
    rows += [
        (name, est.events, est.bytes, est.exact_bytes, est.modelled_bytes)
        for name, est in estimates.items()
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "policy": pl.String,
            "events": pl.Int64,
            "bytes": pl.Int64,
            "exact_bytes": pl.Int64,
            "modelled_bytes": pl.Int64,
        },
        orient="row",
    )
    # One row per policy (a handful): the cost model is plain arithmetic per row.
    priced = [costs(int(b), hours, retention, price) for b in frame["bytes"]]
    return frame.with_columns(
        (pl.col("bytes") - (observed.observed_bytes if observed else 0)).alias("delta_bytes"),
        pl.Series("gb_per_day", [c.gb_per_day for c in priced]),
        pl.Series("retention_hours", [c.retention_hours for c in priced]),
        pl.Series("usd_per_month", [c.usd_per_month for c in priced]),
    )


def diff_policies(old: Policy, new: Policy, events: pl.LazyFrame) -> pl.LazyFrame:
    """Traffic whose level or events change from ``old`` to ``new``, with counts and bytes.

    One row per (user, verb, api_group, resource, subresource, old level, new level):
    requests, events and bytes under each policy. Rows where nothing changes are dropped.
    """
    described = events.group_by(CLUSTER, AUDIT_ID).agg(
        pl.col(c).first() for c in (USER, VERB, API_GROUP, RESOURCE, SUBRESOURCE)
    )

    def per_request(policy: Policy, suffix: str) -> pl.LazyFrame:
        return (
            predicted_events(policy, events)
            .group_by(CLUSTER, AUDIT_ID)
            .agg(
                pl.col("level").first().alias(f"level_{suffix}"),
                pl.len().cast(pl.Int64).alias(f"events_{suffix}"),
                pl.col("bytes").sum().alias(f"bytes_{suffix}"),
            )
        )

    keys = [CLUSTER, AUDIT_ID]
    joined = (
        described.join(per_request(old, "old"), on=keys, how="left")
        .join(per_request(new, "new"), on=keys, how="left")
        .with_columns(
            pl.col("level_old").fill_null("None"),
            pl.col("level_new").fill_null("None"),
            *(pl.col(f"{m}_{s}").fill_null(0) for m in ("events", "bytes") for s in ("old", "new")),
        )
        .filter(
            (pl.col("level_old") != pl.col("level_new"))
            | (pl.col("events_old") != pl.col("events_new"))
            | (pl.col("bytes_old") != pl.col("bytes_new"))
        )
    )
    return (
        joined.group_by(USER, VERB, API_GROUP, RESOURCE, SUBRESOURCE, "level_old", "level_new")
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            pl.col("events_old").sum(),
            pl.col("events_new").sum(),
            pl.col("bytes_old").sum(),
            pl.col("bytes_new").sum(),
        )
        .with_columns((pl.col("bytes_new") - pl.col("bytes_old")).alias("delta_bytes"))
        .sort("delta_bytes")
    )
