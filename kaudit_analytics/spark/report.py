"""The compliance report on Spark: the same ``Report`` from a Spark events table."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.report import model as r
from kaudit_analytics.spark._arrow import (
    FILE,
    ORDER,
    ROW,
    Out,
    narrow,
    per_batch_sum,
    task_frame,
    to_polars,
    typed,
)
from kaudit_analytics.spark.scan import scan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from kaudit_analytics.policy import Policy

__all__ = ["build_report", "report_from_lake"]


_PREPARED_SCHEMA = c.prepare(s.empty_events().lazy()).collect_schema()
_BASELINE_SCHEMA = r.baseline_rows(c.prepare(s.empty_events().lazy())).collect_schema()


@dataclass(frozen=True)
class _Span:
    """One window's prepared events on Spark, and what the next window needs of it."""

    assessment: r.Assessment | None
    baseline: DataFrame
    size: int
    clusters: tuple[str, ...]
    daily: pl.DataFrame


def _prepare(events: DataFrame, span: c.Window) -> DataFrame:
    """``compliance.prepare`` of the window, per partition of requests (its "last stage of
    the request" needs all of a request's events), in the lake's order within each task."""
    from pyspark.sql import functions as F  # noqa: N812

    schema = {**_PREPARED_SCHEMA, s.DATE: pl.Date(), FILE: pl.String(), ROW: pl.Int64()}
    out = Out.of(schema)

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = task_frame(batches)
        if frame.is_empty():
            return
        rows = frame.filter(span.contains())
        prepared = c.prepare(rows.lazy(), None).collect()
        yield from out.batches(prepared.with_columns(rows.select(s.DATE, FILE, ROW)))

    inside = events.filter(
        (F.col(s.REQUEST_TS) >= F.lit(span.since)) & (F.col(s.REQUEST_TS) < F.lit(span.until))
    )
    columns = narrow(inside, lambda lf: c.prepare(lf, span))
    return columns.repartition(s.CLUSTER, s.AUDIT_ID).mapInArrow(per_partition, out.ddl)


def _prepared_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    out = typed(frame, _PREPARED_SCHEMA)
    return out.sort(ORDER) if FILE in out.columns else out


def _evidence(
    prepared: DataFrame,
    baseline: DataFrame,
    ctx: c.Context,
    controls: Sequence[c.Control],
) -> pl.DataFrame:
    """Every control per cluster (each control compares events within one cluster only),
    with that cluster's baseline, then ordered as ``compliance.evidence`` orders them."""
    out = Out.of(c.EVIDENCE_SCHEMA)

    def per_cluster(rows: pa.Table, known: pa.Table) -> pa.Table:
        frame = _prepared_frame(rows).drop(s.DATE, FILE, ROW)
        if frame.is_empty():
            return out.arrow.empty_table()
        humans = typed(pl.DataFrame(pl.from_arrow(known)), _BASELINE_SCHEMA)
        here = c.Context(ctx.window, ctx.settings, baseline=humans.lazy())
        found = c.evidence(frame.lazy(), here, controls, prepared=True).collect()
        return out.table(found)

    found = (
        prepared.groupBy(s.CLUSTER)
        .cogroup(baseline.groupBy(s.CLUSTER))
        .applyInArrow(per_cluster, out.ddl)
    )
    collected = to_polars(found, c.EVIDENCE_SCHEMA).cast(dict(c.EVIDENCE_SCHEMA))  # type: ignore[arg-type]
    return c.order_evidence(collected.lazy()).collect()


def _observations(prepared: DataFrame, controls: Sequence[c.Control]) -> dict[str, Any]:
    """``observations``: ``observation_counts`` per batch, summed by Spark, then the row."""
    from pyspark.sql import functions as F  # noqa: N812

    schema = c.observation_counts(c.prepare(s.empty_events().lazy()), controls).collect_schema()
    out = Out.of(schema)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = typed(pl.DataFrame(pl.from_arrow(batch)), _PREPARED_SCHEMA)
            yield from out.batches(c.observation_counts(frame.lazy(), controls).collect())

    keys = [name for name in schema.names() if name != "_n"]
    counts = (
        prepared.select(*[f"`{k}`" for k in keys])
        .mapInArrow(per_batch, out.ddl)
        .groupBy(*[f"`{k}`" for k in keys])
        .agg(F.sum("_n").alias("_n"))
    )
    counted = to_polars(counts, {**_PREPARED_SCHEMA, "_n": pl.Int64()})
    return c.observations_from_counts(counted.lazy(), controls).collect().row(0, named=True)


def _span(
    events: DataFrame,
    span: c.Window,
    baseline: DataFrame | None,
    *,
    baseline_events: int,
    settings: c.Settings,
    controls: Sequence[c.Control],
    coverage: tuple[c.Coverage, ...],
) -> _Span:
    """One window: prepared once (persisted), then evidence, observations, daily counts,
    and the baseline rows the next window's first-seen controls compare with."""
    from pyspark import StorageLevel

    prepared = _prepare(events, span).persist(StorageLevel.MEMORY_AND_DISK)
    base_out = Out.of(_BASELINE_SCHEMA)

    def humans(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = typed(pl.DataFrame(pl.from_arrow(batch)), _PREPARED_SCHEMA)
            yield from base_out.batches(r.baseline_rows(frame.lazy()).collect())

    rows = prepared.mapInArrow(humans, base_out.ddl).persist(StorageLevel.MEMORY_AND_DISK)
    size = prepared.count()
    rows.count()  # materialised now: the next window reads it after ``prepared`` is released
    assessment = None
    daily = pl.DataFrame()
    clusters: tuple[str, ...] = ()
    if baseline is not None:
        ctx = c.Context(span, settings)
        found = _evidence(prepared, baseline, ctx, controls)
        observed = _observations(prepared, controls)
        assessment = r.assessment(
            span,
            found,
            observed,
            controls=controls,
            coverage=coverage,
            baseline_events=baseline_events,
        )
        daily_schema = r.daily_events(c.prepare(s.empty_events().lazy()), span).collect_schema()
        daily = per_batch_sum(
            prepared.select(s.REQUEST_TS),
            lambda lf: r.daily_events(lf, span),
            {"day": pl.Date(), "events": daily_schema["events"]},
            ["day"],
            _PREPARED_SCHEMA,
        )
        names = to_polars(prepared.select(s.CLUSTER).distinct())[s.CLUSTER]
        clusters = tuple(names.drop_nulls().sort().to_list())
        baseline.unpersist()
    prepared.unpersist()
    return _Span(assessment, rows, size, clusters, daily)


def build_report(
    events: DataFrame,
    window: c.Window,
    *,
    policy: Policy | None = None,
    policy_name: str | None = None,
    settings: c.Settings | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
    title: str = "Kubernetes audit compliance report",
) -> r.Report:
    """``report.build_report`` on Spark: the same ``Report`` from a Spark events table.

    Each of the three windows (the report's, the previous one for the trend, and the one
    before for the first-seen controls' baseline) is prepared on Spark per partition of
    requests; the controls then run per cluster over the prepared window (every control
    compares events of one cluster only), and the observations are counted per batch.
    """
    settings = settings or c.Settings()
    previous = window.previous()
    coverage = c.policy_coverage(policy, controls) if policy is not None else ()
    oldest = _span(
        events,
        previous.previous(),
        None,
        baseline_events=0,
        settings=settings,
        controls=controls,
        coverage=coverage,
    )
    spans = []
    baseline, size = oldest.baseline, oldest.size
    for span in (previous, window):
        done = _span(
            events,
            span,
            baseline,
            baseline_events=size,
            settings=settings,
            controls=controls,
            coverage=coverage,
        )
        spans.append(done)
        baseline, size = done.baseline, done.size
    baseline.unpersist()
    before, now = spans
    assert before.assessment is not None
    assert now.assessment is not None
    return r.assemble_report(
        before.assessment,
        now.assessment,
        clusters=now.clusters,
        daily=now.daily,
        settings=settings,
        controls=controls,
        coverage=coverage,
        policy_name=policy_name,
        title=title,
    )


def report_from_lake(
    spark: SparkSession,
    lake: str | os.PathLike[str],
    window: c.Window,
    *,
    policy_path: str | os.PathLike[str] | None = None,
    cluster: str | list[str] | None = None,
    settings: c.Settings | None = None,
) -> r.Report:
    """``report.report_from_lake`` on Spark: scans three window lengths back."""
    policy = None
    if policy_path is not None:
        from kaudit_analytics.policy import load_policy

        policy = load_policy(Path(policy_path))
    events = scan(
        spark, lake, cluster=cluster, since=window.previous().previous().since, until=window.until
    )
    name = Path(policy_path).name if policy_path is not None else None
    return build_report(events, window, policy=policy, policy_name=name, settings=settings)
