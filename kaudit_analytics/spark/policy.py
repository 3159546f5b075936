"""The audit-policy engine on Spark: evaluation and the volume estimate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from kaudit_analytics import schema as s
from kaudit_analytics.policy.cost import observed_hours as _observed_hours
from kaudit_analytics.policy.evaluate import POLICY_KEEPS_STAGE, POLICY_LEVEL, POLICY_RULE
from kaudit_analytics.policy.probes import never_logged_probes
from kaudit_analytics.policy.volume import (
    BODY_PARTS_SCHEMA,
    OBSERVED_SUMS,
    VOLUME_SUMS,
    VolumeEstimate,
    body_model_parts,
    observed_parts,
    predicted_events,
    volume_estimate,
    volume_parts,
)
from kaudit_analytics.spark._arrow import (
    Out,
    by_request,
    narrow,
    spark_sum,
    task_frame,
    to_polars,
    typed,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from kaudit_analytics.policy import Policy

__all__ = ["estimate_volume", "evaluate", "observed_hours"]


def evaluate(events: DataFrame, policy: Policy) -> DataFrame:
    """``Policy.evaluate`` on Spark: the events with ``policy_level``, ``policy_rule`` and
    ``policy_keeps_stage`` added, per Arrow batch (the decision is per row)."""
    added = {POLICY_LEVEL: pl.String(), POLICY_RULE: pl.Int32(), POLICY_KEEPS_STAGE: pl.Boolean()}
    out = Out.of({**s.AUDIT_SCHEMA, **added})

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = typed(pl.DataFrame(pl.from_arrow(batch)), s.AUDIT_SCHEMA)
            yield from out.batches(policy.evaluate(s.conform(frame.lazy())).collect())

    return events.mapInArrow(per_batch, out.ddl)


def _body_parts(events: DataFrame) -> pl.DataFrame:
    """``body_model_parts`` per batch, summed by Spark: the body-size model of all events."""
    keys = [s.API_GROUP, s.RESOURCE, s.VERB]
    out = Out.of(BODY_PARTS_SCHEMA)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = typed(pl.DataFrame(pl.from_arrow(batch)), s.AUDIT_SCHEMA)
            yield from out.batches(body_model_parts(frame.lazy()).collect())

    columns = events.select(*keys, s.REQUEST_OBJECT_BYTES, s.RESPONSE_OBJECT_BYTES)
    summed = (
        columns.mapInArrow(per_batch, out.ddl).groupBy(*keys).sum(*BODY_PARTS_SCHEMA.names()[3:])
    )
    renamed = summed.toDF(*BODY_PARTS_SCHEMA.names())
    return to_polars(renamed, BODY_PARTS_SCHEMA)


_VOLUME_SCHEMA = pl.Schema(
    {
        "kind": pl.String(),
        "rule": pl.Int32(),
        "level": pl.String(),
        "stage": pl.String(),
        s.DATE: pl.Date(),
        **dict.fromkeys(dict.fromkeys([*VOLUME_SUMS, *OBSERVED_SUMS]), pl.Int64()),
    }
)


def estimate_volume(
    events: DataFrame, policy: Policy, *, observed_policy: Policy | None = None
) -> VolumeEstimate:
    """``Policy.estimate_volume`` on Spark; the same ``VolumeEstimate``, total for total.

    The body-size model is summed over all events first (per batch); then each request's
    events meet in one partition (repartition by ``audit_id``), where the polars replay
    runs and emits sums per rule × level × stage and per day, which Spark adds up.
    """
    parts = _body_parts(events)
    out = Out.of(_VOLUME_SCHEMA)

    def replay(frame: pl.LazyFrame) -> pl.LazyFrame:
        return predicted_events(policy, frame, body_parts=parts.lazy())

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = task_frame(batches)
        if frame.is_empty():
            return
        stages = replay(frame.lazy()).collect().lazy()
        by_rule, by_day = volume_parts(stages)
        rule, day, seen = pl.collect_all([by_rule, by_day, observed_parts(frame.lazy())])
        sums = pl.concat(
            [
                rule.with_columns(kind=pl.lit("rule")),
                day.with_columns(kind=pl.lit("day")),
                seen.with_columns(kind=pl.lit("observed")),
            ],
            how="diagonal_relaxed",
        )
        yield from out.batches(typed(sums, _VOLUME_SCHEMA))

    def reads(frame: pl.LazyFrame) -> pl.LazyFrame:
        return pl.concat([replay(frame).select(pl.len()), observed_parts(frame).select(pl.len())])

    keys = ["kind", "rule", "level", "stage", s.DATE]
    sums = [*VOLUME_SUMS, "requests"]
    summed = (
        by_request(narrow(events, reads))
        .mapInArrow(per_partition, out.ddl)
        .groupBy(*keys)
        .agg(*[spark_sum(name) for name in sums])
    )
    totals = to_polars(summed, _VOLUME_SCHEMA)
    never = never_logged_probes(observed_policy, policy) if observed_policy is not None else ()
    return volume_estimate(
        totals.filter(kind="rule").select("rule", "level", "stage", *VOLUME_SUMS),
        totals.filter(kind="day").select(s.DATE, *VOLUME_SUMS),
        totals.filter(kind="observed").select(*OBSERVED_SUMS),
        never_logged=never,
    )


def observed_hours(events: DataFrame) -> float:
    """``policy.observed_hours`` on Spark: the polars function over the first and last
    ``request_ts``, which Spark finds."""
    from pyspark.sql import functions as F  # noqa: N812

    ends = to_polars(events.select(F.min(s.REQUEST_TS).alias("a"), F.max(s.REQUEST_TS).alias("b")))
    stamps = pl.concat([ends["a"], ends["b"]]).alias(s.REQUEST_TS)
    return _observed_hours(pl.LazyFrame([stamps]))
