"""Retention on disk and cost of what a policy writes; side-by-side comparison and diff.

Assumptions (documented defaults, all overridable):

* Rates are extrapolated from the span the traffic covers (``Span``): a day of traffic is
  a day; 50 seconds are 50 seconds, and the result says so.
* Retention follows the apiserver's log backend (lumberjack): a file rotates at
  ``--audit-log-maxsize`` MB (0 means lumberjack's 100 MB), ``--audit-log-maxbackup``
  old files are kept (0 = all), and files older than ``--audit-log-maxage`` days are
  deleted (0 = no age limit). The disk holds the live file plus the backups, so history
  kept = min((maxbackup + 1) × maxsize / bytes per hour, maxage × 24 h).
* Prices are a table (``prices.csv`` in this package; sources and dates in
  ``docs/prices.md``): USD per unit ingested and per unit-month stored, the unit (GB or
  GiB) and the days of storage the ingest price includes. A month is 30 days of ingest
  plus the storage of the history the retention keeps (at most a month) beyond the
  included days. Free tiers are per account or project, not per cluster: not applied.
  ``load_prices`` reads one's own table (CSV or YAML, same columns).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from kaudit_analytics.policy.model import Policy
from kaudit_analytics.policy.rules import PolicyError
from kaudit_analytics.policy.traffic import observed_span
from kaudit_analytics.policy.volume import (
    estimate_volumes,
    predicted_events,
    replay_columns,
    request_chunks,
)
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    CLUSTER,
    REQUEST_URI,
    RESOURCE,
    SUBRESOURCE,
    USER,
    VERB,
)

__all__ = [
    "COMPARE_SCHEMA",
    "DIFF_SCHEMA",
    "PRICES",
    "PRICE_COLUMNS",
    "Costs",
    "Price",
    "Retention",
    "compare_policies",
    "costs",
    "diff_policies",
    "load_prices",
    "observed_hours",
    "price",
    "request_target",
    "retention_hours",
]

_LUMBERJACK_DEFAULT_MB = 100
_GB = 1_000_000_000
_UNITS = {"GB": 1_000_000_000, "GiB": 1 << 30}
_MONTH_DAYS = 30


@dataclass(frozen=True)
class Price:
    """USD per unit ingested and per unit-month stored (``unit_bytes``: GB or GiB), the days
    of storage the ingest price includes, and where the figures come from."""

    ingest_per_gb: float
    storage_per_gb_month: float
    unit_bytes: int = _GB
    included_days: float = 0.0
    name: str = ""
    source: str = ""
    as_of: str = ""


#: The columns of a price table (``prices.csv``, or one's own CSV or YAML).
PRICE_COLUMNS = (
    "name",
    "provider",
    "product",
    "region",
    "ingest_usd",
    "storage_usd_month",
    "unit",
    "included_days",
    "free_tier",
    "source",
    "as_of",
)
_REQUIRED = ("name", "ingest_usd", "storage_usd_month")


def _price(row: Mapping[str, Any], where: str) -> Price:
    missing = [c for c in _REQUIRED if row.get(c) in (None, "")]
    if missing:
        msg = f"{where}: price {row.get('name') or '?'} lacks {', '.join(missing)}"
        raise PolicyError(msg)
    unit = str(row.get("unit") or "GB")
    if unit not in _UNITS:
        msg = f"{where}: price {row['name']}: unit must be GB or GiB, not {unit!r}"
        raise PolicyError(msg)
    try:
        return Price(
            ingest_per_gb=float(row["ingest_usd"]),
            storage_per_gb_month=float(row["storage_usd_month"]),
            unit_bytes=_UNITS[unit],
            included_days=float(row.get("included_days") or 0),
            name=str(row["name"]),
            source=str(row.get("source") or ""),
            as_of=str(row.get("as_of") or ""),
        )
    except ValueError as err:
        msg = f"{where}: price {row['name']}: {err}"
        raise PolicyError(msg) from None


def _rows(text: str, where: str) -> list[dict[str, Any]]:
    """Rows of a CSV table, or of a YAML list of mappings (or a mapping name -> fields)."""
    if where.endswith((".yaml", ".yml")):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            msg = f"{where}: not valid YAML ({str(err).splitlines()[0]})"
            raise PolicyError(msg) from None
        if isinstance(doc, dict):
            doc = [{"name": name, **(fields or {})} for name, fields in doc.items()]
        if not isinstance(doc, list) or not all(isinstance(row, dict) for row in doc):
            msg = f"{where}: expected a list of prices, each with {', '.join(_REQUIRED)}"
            raise PolicyError(msg)
        return doc
    return list(csv.DictReader(io.StringIO(text)))


def load_prices(source: str | os.PathLike[str]) -> dict[str, Price]:
    """A price table from a CSV or YAML file (columns ``PRICE_COLUMNS``; ``name``,
    ``ingest_usd`` and ``storage_usd_month`` required), keyed by name.

    Raises
    ------
    PolicyError
        When the file cannot be read or a row is incomplete.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from kaudit_analytics.policy import load_prices
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "prices.yaml"
    >>> _ = path.write_text("- {name: splunk, ingest_usd: 0.9, storage_usd_month: 0.05}\\n")
    >>> load_prices(path)["splunk"].ingest_per_gb
    0.9
    """
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        msg = f"cannot read price table {path}: {err.strerror or err}"
        raise PolicyError(msg) from None
    prices = {str(row.get("name")): _price(row, path.name) for row in _rows(text, path.name)}
    if not prices:
        msg = f"{path}: no prices in the table"
        raise PolicyError(msg)
    return prices


def _bundled() -> dict[str, Price]:
    text = (resources.files("kaudit_analytics.policy") / "prices.csv").read_text(encoding="utf-8")
    return {row["name"]: _price(row, "prices.csv") for row in _rows(text, "prices.csv")}


#: The bundled price table (``prices.csv``; sources and dates in ``docs/prices.md``).
PRICES: dict[str, Price] = _bundled()


def price(name_or_file: str | os.PathLike[str]) -> Price:
    """A bundled price by name, or the only (or first) price of one's own table file.

    Examples
    --------
    >>> from kaudit_analytics.policy import price
    >>> price("cloud-logging").unit_bytes == 2**30, price("cloud-logging").included_days
    (True, 30.0)
    """
    if str(name_or_file) in PRICES:
        return PRICES[str(name_or_file)]
    if Path(name_or_file).is_file():
        return next(iter(load_prices(name_or_file).values()))
    msg = f"no price {name_or_file!r}: choose one of {', '.join(PRICES)} or give a price file"
    raise PolicyError(msg)


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
    """What a volume means on disk and on the bill (rates from ``span`` hours)."""

    gb_per_day: float
    retention_hours: float
    usd_per_month: float


def costs(total_bytes: int, hours: float, retention: Retention, price: Price) -> Costs:
    """Daily volume, history kept on disk and monthly cost of ``total_bytes`` over ``hours``.

    The month is 30 days of ingest plus storage of what the retention keeps (at most a
    month) beyond the days the ingest price includes. Zero hours (no span) give zero rates.

    Examples
    --------
    >>> from kaudit_analytics.policy.cost import PRICES, Retention, costs
    >>> c = costs(24_000_000_000, 24.0, Retention(100, 9, 0), PRICES["cloudwatch"])
    >>> round(c.gb_per_day, 1), round(c.retention_hours, 1), round(c.usd_per_month, 2)
    (24.0, 1.0, 360.03)
    >>> round(costs(750_000, 50 / 3600, Retention(), PRICES["cloudwatch"]).gb_per_day, 2)
    1.3
    """
    per_hour = total_bytes / hours if hours > 0 else 0.0
    kept = retention_hours(per_hour, retention)
    billed_days = max(min(kept / 24, _MONTH_DAYS) - price.included_days, 0.0)
    ingested = per_hour * 24 * _MONTH_DAYS / price.unit_bytes
    stored = per_hour * 24 * billed_days / price.unit_bytes
    return Costs(
        gb_per_day=per_hour * 24 / _GB,
        retention_hours=kept,
        usd_per_month=ingested * price.ingest_per_gb + stored * price.storage_per_gb_month,
    )


def observed_hours(events: pl.LazyFrame) -> float:
    """Hours the traffic spans, first request received to last event written (0 for none).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.policy import observed_hours
    >>> from kaudit_analytics.testing import events_frame
    >>> t = dt.datetime(2026, 11, 27, 5, 10, tzinfo=dt.UTC)
    >>> events = events_frame([{"request_ts": t, "stage_ts": t + dt.timedelta(seconds=50)}])
    >>> round(observed_hours(events.lazy()) * 3600)
    50
    """
    return observed_span(events).hours


#: What ``compare_policies`` returns, one row per policy.
COMPARE_SCHEMA = pl.Schema(
    {
        "policy": pl.String,
        "events": pl.Int64,
        "bytes": pl.Int64,
        "exact_bytes": pl.Int64,
        "modelled_bytes": pl.Int64,
        "delta_bytes": pl.Int64,
        "gb_per_day": pl.Float64,
        "retention_hours": pl.Float64,
        "usd_per_month": pl.Float64,
        "observed_seconds": pl.Float64,
        "extrapolated": pl.Boolean,
    }
)


def compare_policies(
    policies: Mapping[str, Policy],
    events: pl.LazyFrame,
    *,
    retention: Retention | None = None,
    price: Price | None = None,
) -> pl.DataFrame:
    """Estimate several policies on the same traffic (read once): one row per policy.

    Columns ``COMPARE_SCHEMA``: events, bytes (exact and modelled), delta_bytes against
    what was observed, gb_per_day, retention_hours, usd_per_month (ingest + storage of the
    retained history), and the span the rates are extrapolated from. The observed
    traffic's own row is ``observed``.
    """
    retention = retention or Retention()
    price = price or PRICES["cloudwatch"]
    estimates = estimate_volumes(dict(policies), events)
    first = next(iter(estimates.values()), None)
    span = first.span if first is not None else observed_span(events)
    rows: list[tuple[str, int, int, int, int]] = []
    if first is not None:
        observed = first.observed_bytes
        rows.append(("observed", first.observed_events, observed, observed, 0))
    rows += [
        (name, est.events, est.bytes, est.exact_bytes, est.modelled_bytes)
        for name, est in estimates.items()
    ]
    seen = first.observed_bytes if first is not None else 0
    spanned = (span.seconds, span.extrapolated)
    out = []
    # One row per policy (a handful): the cost model is plain arithmetic per row.
    for name, count, size, exact, modelled in rows:
        cost = costs(size, span.hours, retention, price)
        measures = (cost.gb_per_day, cost.retention_hours, cost.usd_per_month)
        out.append((name, count, size, exact, modelled, size - seen, *measures, *spanned))
    return pl.DataFrame(out, schema=COMPARE_SCHEMA, orient="row")


#: What ``diff_policies`` returns.
DIFF_SCHEMA = pl.Schema(
    {
        USER: pl.String,
        VERB: pl.String,
        "target": pl.String,
        "level_old": pl.String,
        "level_new": pl.String,
        "requests": pl.Int64,
        "events_old": pl.Int64,
        "events_new": pl.Int64,
        "bytes_old": pl.Int64,
        "bytes_new": pl.Int64,
        "delta_bytes": pl.Int64,
    }
)


def request_target() -> pl.Expr:
    """What a request is about, as people write it: ``pods/log``, ``deployments.apps``,
    or the path of a non-resource request (``/healthz``)."""
    resource = pl.concat_str(
        pl.col(RESOURCE),
        pl.when(pl.col(SUBRESOURCE).fill_null("") != "").then("/" + pl.col(SUBRESOURCE)),
        pl.when(pl.col(API_GROUP).fill_null("") != "").then("." + pl.col(API_GROUP)),
        ignore_nulls=True,
    )
    path = pl.col(REQUEST_URI).str.split("?").list.first()
    return pl.when(pl.col(RESOURCE).is_not_null()).then(resource).otherwise(path)


def diff_policies(old: Policy, new: Policy, events: pl.LazyFrame) -> pl.DataFrame:
    """Traffic whose level or events change from ``old`` to ``new``, with counts and bytes.

    One row per (user, verb, target, old level, new level) (``DIFF_SCHEMA``; the target is
    the resource, or the path of a non-resource request): requests, events and bytes under
    each policy, biggest change first. Rows where nothing changes are dropped. Read a day at
    a time.
    """
    keys = [CLUSTER, AUDIT_ID]
    parts = []
    for frame in request_chunks(events, replay_columns([old, new])):
        described = frame.group_by(keys).agg(
            pl.col(USER).first(), pl.col(VERB).first(), request_target().first().alias("target")
        )

        def per_request(policy: Policy, suffix: str, frame: pl.LazyFrame = frame) -> pl.LazyFrame:
            return (
                predicted_events(policy, frame)
                .group_by(keys)
                .agg(
                    pl.col("level").first().alias(f"level_{suffix}"),
                    pl.len().cast(pl.Int64).alias(f"events_{suffix}"),
                    pl.col("bytes").sum().alias(f"bytes_{suffix}"),
                )
            )

        joined = (
            described.join(per_request(old, "old"), on=keys, how="left", nulls_equal=True)
            .join(per_request(new, "new"), on=keys, how="left", nulls_equal=True)
            .with_columns(
                pl.col("level_old").fill_null("None"),
                pl.col("level_new").fill_null("None"),
                *(
                    pl.col(f"{m}_{s}").fill_null(0)
                    for m in ("events", "bytes")
                    for s in ("old", "new")
                ),
            )
            .filter(
                (pl.col("level_old") != pl.col("level_new"))
                | (pl.col("events_old") != pl.col("events_new"))
                | (pl.col("bytes_old") != pl.col("bytes_new"))
            )
        )
        parts.append(
            joined.group_by(USER, VERB, "target", "level_old", "level_new")
            .agg(
                pl.len().cast(pl.Int64).alias("requests"),
                *(pl.col(f"{m}_{s}").sum() for m in ("events", "bytes") for s in ("old", "new")),
            )
            .collect()
        )
    if not parts:
        return pl.DataFrame(schema=DIFF_SCHEMA)
    measures = ["requests", "events_old", "events_new", "bytes_old", "bytes_new"]
    return (
        pl.concat(parts)
        .group_by(USER, VERB, "target", "level_old", "level_new")
        .agg(pl.col(m).sum() for m in measures)
        .with_columns((pl.col("bytes_new") - pl.col("bytes_old")).alias("delta_bytes"))
        .select(DIFF_SCHEMA.names())
        .cast(dict(DIFF_SCHEMA))  # type: ignore[arg-type]
        .sort(
            pl.col("delta_bytes").abs(),
            USER,
            VERB,
            "target",
            descending=[True, False, False, False],
            nulls_last=True,
        )
    )
