"""The same analyses on Apache Spark, for lakes no single machine holds.

Spark scans the lake (hive partitions pruned by cluster and date), shuffles, and sums; the
audit semantics stay in the polars code the single-machine path runs, applied by Spark's
Python workers to Arrow batches (``mapInArrow``) or to whole groups (``applyInArrow``):

- **row-wise** steps (``Policy.evaluate``, the per-batch sums and counts) run per Arrow batch;
- **per-request** steps (the volume replay, the charts' request counts, the controls' "last
  stage of the request") run per partition after a repartition by ``audit_id``, so that
  every event of a request is in one task, and emit *partial aggregates* (counts and byte
  sums) that Spark adds up: the totals equal the polars path's exactly;
- **per-cluster** steps (the compliance controls that look at bursts, gaps and first-seen
  values) run per cluster with ``applyInArrow`` over the prepared (narrow) window.

Inside a task, a partition's rows are put back in the order ``kaudit_analytics.scan`` reads
them (cluster, date, file name, row in file), so that order-dependent steps ("the first event
of a group") pick the same row as on one machine. Only the columns the polars code reads are
shipped to the workers; polars itself tells which (``_columns_read``).

Install with ``pip install 'kaudit-analytics[spark]'``; Spark needs a Java 17+ runtime.

Examples
--------
::

    from kaudit_analytics import spark as ks
    session = ks.session("spark://master:7077")        # or an existing SparkSession
    events = ks.scan(session, "s3a://bucket/lake", since="2024-09-01")
    est = ks.estimate_volume(events, policy)            # a policy.VolumeEstimate
    cube = ks.activity_cube(events)                     # a polars DataFrame, as on one machine
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from kaudit_analytics import activity
from kaudit_analytics import compliance as c
from kaudit_analytics import report as r
from kaudit_analytics import schema as s
from kaudit_analytics._policy_cost import observed_hours as _observed_hours
from kaudit_analytics._policy_probes import never_logged_probes
from kaudit_analytics._policy_volume import (
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
from kaudit_analytics.lake import LakeError, _as_utc
from kaudit_analytics.loader import IngestStats, named_files
from kaudit_analytics.loader import ingest as _ingest

if TYPE_CHECKING:
    from polars._typing import PolarsDataType
    from pyspark.sql import DataFrame, SparkSession

    from kaudit_analytics.policy import Policy

__all__ = [
    "SparkUnavailableError",
    "activity_by_hour_and_weekday",
    "activity_cube",
    "build_report",
    "estimate_volume",
    "evaluate",
    "ingest",
    "observed_hours",
    "report_from_lake",
    "scan",
    "session",
]

#: Columns ``scan`` adds so that a task can put its rows back in the lake's reading order.
_FILE, _ROW = "__kaudit_file", "__kaudit_row"
_ORDER = (s.CLUSTER, s.DATE, _FILE, _ROW)
#: Rows per Arrow batch handed to a Python worker: polars is efficient on large batches.
_BATCH_ROWS = 100_000


class SparkUnavailableError(RuntimeError):
    """Spark cannot start here: pyspark or a Java runtime is missing."""


# --------------------------------------------------------------------------- the session


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def session(
    master: str = "local[*]",
    *,
    app_name: str = "kaudit",
    local_dir: str | os.PathLike[str] | None = None,
    ui: bool = False,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession set up for the lake: UTC, quiet logs, large Arrow batches.

    Parameters
    ----------
    master
        ``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://…``.
    local_dir
        Spark's scratch space (shuffle files, spills); Spark's default when None.
    ui
        Start the Spark web UI (and its REST API, which ``bench/bench_spark.py`` reads).
    conf
        Further Spark settings (executor memory, S3 credentials provider …).

    Raises
    ------
    SparkUnavailableError
        When pyspark is not installed or no Java runtime is found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        msg = "the Spark engine needs pyspark: pip install 'kaudit-analytics[spark]'"
        raise SparkUnavailableError(msg) from exc
    if _java() is None:
        msg = (
            "the Spark engine needs a Java 17+ runtime (e.g. apt-get install "
            "openjdk-17-jre-headless) and none was found on PATH or in JAVA_HOME"
        )
        raise SparkUnavailableError(msg)
    # Python workers run this interpreter (with polars and this package) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    quiet = resources.files("kaudit_analytics") / "data" / "spark-log4j2.properties"
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(_BATCH_ROWS))
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{quiet}")
        .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{quiet}")
    )
    if local_dir is not None:
        builder = builder.config("spark.local.dir", str(local_dir))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------- types


_SIMPLE: tuple[tuple[type[pl.DataType], str, pa.DataType], ...] = (
    # polars type, Spark SQL type, the Arrow type Spark exchanges it as
    (pl.String, "string", pa.string()),
    (pl.Enum, "string", pa.string()),  # enums and categoricals travel as strings
    (pl.Categorical, "string", pa.string()),
    (pl.Boolean, "boolean", pa.bool_()),
    (pl.Int8, "tinyint", pa.int8()),
    (pl.Int16, "smallint", pa.int16()),
    (pl.Int32, "int", pa.int32()),
    (pl.Int64, "bigint", pa.int64()),
    (pl.UInt8, "smallint", pa.int16()),
    (pl.UInt16, "int", pa.int32()),
    (pl.UInt32, "bigint", pa.int64()),
    (pl.Float64, "double", pa.float64()),
    (pl.Date, "date", pa.date32()),
    (pl.Datetime, "timestamp", pa.timestamp("us", tz="UTC")),
)


def _types(dtype: PolarsDataType) -> tuple[str, pa.DataType]:
    """The Spark SQL type and the Arrow type of a polars type."""
    if isinstance(dtype, pl.List):
        ddl, arrow = _types(dtype.inner)
        return f"array<{ddl}>", pa.list_(arrow)
    if isinstance(dtype, pl.Struct):
        fields = [(f.name, *_types(f.dtype)) for f in dtype.fields]
        ddl = "struct<" + ", ".join(f"`{name}`: {kind}" for name, kind, _ in fields) + ">"
        return ddl, pa.struct([(name, arrow) for name, _, arrow in fields])
    for kind, ddl, arrow in _SIMPLE:
        if dtype == kind or isinstance(dtype, kind):
            return ddl, arrow
    msg = f"no Spark type for {dtype}"
    raise TypeError(msg)


def _spark_schema(schema: Mapping[str, pl.DataType]) -> str:
    return ", ".join(f"`{name}` {_types(dtype)[0]}" for name, dtype in schema.items())


def _arrow_schema(schema: Mapping[str, pl.DataType]) -> pa.Schema:
    return pa.schema([(name, _types(dtype)[1]) for name, dtype in schema.items()])


@dataclass(frozen=True)
class _Out:
    """What a Python worker returns to Spark: the DDL Spark is told, the Arrow it gets."""

    ddl: str
    arrow: pa.Schema

    @classmethod
    def of(cls, schema: Mapping[str, pl.DataType]) -> _Out:
        return cls(_spark_schema(schema), _arrow_schema(schema))

    def batches(self, frame: pl.DataFrame) -> Iterator[pa.RecordBatch]:
        yield from self.table(frame).to_batches()

    def table(self, frame: pl.DataFrame) -> pa.Table:
        plain = frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))
        return plain.select(self.arrow.names).to_arrow().cast(self.arrow)


def _typed(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Spark's Arrow columns cast back to the polars types of ``schema`` (where named)."""
    return frame.with_columns(
        pl.col(name).cast(dtype) for name, dtype in schema.items() if name in frame.columns
    )


def _frame(batches: Iterable[pa.RecordBatch]) -> pl.DataFrame:
    """A task's batches as one polars frame in the lake's reading order."""
    tables = [pa.Table.from_batches([batch]) for batch in batches]
    if not tables:
        return pl.DataFrame()
    frame = pl.from_arrow(pa.concat_tables(tables))
    assert isinstance(frame, pl.DataFrame)
    frame = _typed(frame, s.AUDIT_SCHEMA)
    if all(name in frame.columns for name in _ORDER):
        frame = frame.sort(_ORDER)
    return frame


def _to_polars(df: DataFrame, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Collect a (small, aggregated) Spark DataFrame to polars."""
    frame = pl.from_arrow(df.toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame if schema is None else _typed(frame, schema)


def _columns_read(step: Callable[[pl.LazyFrame], pl.LazyFrame]) -> list[str]:
    """The events table's columns ``step`` reads: the ones whose absence breaks its plan.

    Asking polars, instead of listing them by hand here, keeps this module from drifting when
    an analysis starts reading another column.
    """
    empty = s.empty_events().lazy()
    needed = []
    for name in s.AUDIT_SCHEMA:
        try:
            step(empty.drop(name)).collect_schema()
        except pl.exceptions.ColumnNotFoundError:
            needed.append(name)
    return needed


# --------------------------------------------------------------------------- reading the lake


def _events_path(lake: str | os.PathLike[str]) -> str | None:
    text = os.fspath(lake)
    if "://" in text:
        return text.rstrip("/") + "/events"
    root = Path(text)
    if not root.is_dir():
        msg = f"no lake at {root}: the folder does not exist"
        raise LakeError(msg)
    events = root / "events"
    if not any(events.glob("*/*/*.parquet")):
        return None
    return str(events.resolve())


def scan(
    spark: SparkSession,
    lake: str | os.PathLike[str],
    *,
    cluster: str | list[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
) -> DataFrame:
    """The events table of a lake (local path or ``s3a://…``) as a Spark DataFrame.

    The same window as ``kaudit_analytics.scan``: partitions outside ``cluster`` and the
    ``[since, until)`` dates are pruned by Spark, then rows are filtered on ``request_ts``.
    Two hidden columns record each row's file and position, so tasks can read rows in the
    lake's order.

    Raises
    ------
    LakeError
        When a local ``lake`` is not a folder.
    """
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    start, end = _as_utc(since), _as_utc(until)
    clusters = [cluster] if isinstance(cluster, str) else sorted(cluster) if cluster else None
    columns = [F.col(f"`{name}`") for name in s.AUDIT_SCHEMA]
    path = _events_path(lake)
    if path is None:
        empty = spark.createDataFrame([], _spark_schema(s.AUDIT_SCHEMA))
        return empty.select(*columns, F.lit("").alias(_FILE), F.lit(0).cast("bigint").alias(_ROW))
    frame = (
        spark.read.schema(_spark_schema({**s.FILE_SCHEMA, **s.PARTITION_SCHEMA}))
        .option("basePath", path)
        .parquet(path)
    )
    # The same pruning as ``lake.scan``: by folder (cluster, date), then by ``request_ts``.
    if clusters is not None:
        frame = frame.filter(F.col(s.CLUSTER).isin(clusters))
    if start is not None:
        frame = frame.filter(F.col(s.DATE) >= F.lit(start.date()))
        frame = frame.filter(F.col(s.REQUEST_TS) >= F.lit(start))
    if end is not None:
        last = (end - dt.timedelta(microseconds=1)).date()
        frame = frame.filter(F.col(s.DATE) <= F.lit(last))
        frame = frame.filter(F.col(s.REQUEST_TS) < F.lit(end))
    return frame.select(
        *columns,
        F.col("_metadata.file_name").alias(_FILE),
        F.col("_metadata.row_index").alias(_ROW),
    )


def _narrow(events: DataFrame, step: Callable[[pl.LazyFrame], pl.LazyFrame]) -> DataFrame:
    """Only the columns ``step`` reads, plus the reading-order columns."""
    keep = dict.fromkeys([*_columns_read(step), *_ORDER])
    return events.select(*[f"`{name}`" for name in keep if name in events.columns])


def _by_request(events: DataFrame) -> DataFrame:
    """Every event of a request in one partition (the request is (cluster, audit_id))."""
    return events.repartition(s.AUDIT_ID)


# --------------------------------------------------------------------------- policy


def evaluate(events: DataFrame, policy: Policy) -> DataFrame:
    """``Policy.evaluate`` on Spark: the events with ``policy_level``, ``policy_rule`` and
    ``policy_keeps_stage`` added, per Arrow batch (the decision is per row)."""
    from kaudit_analytics.policy import POLICY_KEEPS_STAGE, POLICY_LEVEL, POLICY_RULE

    added = {POLICY_LEVEL: pl.String(), POLICY_RULE: pl.Int32(), POLICY_KEEPS_STAGE: pl.Boolean()}
    out = _Out.of({**s.AUDIT_SCHEMA, **added})

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = _typed(pl.DataFrame(pl.from_arrow(batch)), s.AUDIT_SCHEMA)
            yield from out.batches(policy.evaluate(s.conform(frame.lazy())).collect())

    return events.mapInArrow(per_batch, out.ddl)


def _body_parts(events: DataFrame) -> pl.DataFrame:
    """``body_model_parts`` per batch, summed by Spark: the body-size model of all events."""
    keys = [s.API_GROUP, s.RESOURCE, s.VERB]
    out = _Out.of(BODY_PARTS_SCHEMA)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = _typed(pl.DataFrame(pl.from_arrow(batch)), s.AUDIT_SCHEMA)
            yield from out.batches(body_model_parts(frame.lazy()).collect())

    narrow = events.select(*keys, s.REQUEST_OBJECT_BYTES, s.RESPONSE_OBJECT_BYTES)
    summed = (
        narrow.mapInArrow(per_batch, out.ddl).groupBy(*keys).sum(*BODY_PARTS_SCHEMA.names()[3:])
    )
    renamed = summed.toDF(*BODY_PARTS_SCHEMA.names())
    return _to_polars(renamed, BODY_PARTS_SCHEMA)


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
    out = _Out.of(_VOLUME_SCHEMA)

    def replay(frame: pl.LazyFrame) -> pl.LazyFrame:
        return predicted_events(policy, frame, body_parts=parts.lazy())

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = _frame(batches)
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
        yield from out.batches(_typed(sums, _VOLUME_SCHEMA))

    def reads(frame: pl.LazyFrame) -> pl.LazyFrame:
        return pl.concat([replay(frame).select(pl.len()), observed_parts(frame).select(pl.len())])

    keys = ["kind", "rule", "level", "stage", s.DATE]
    sums = [*VOLUME_SUMS, "requests"]
    summed = (
        _by_request(_narrow(events, reads))
        .mapInArrow(per_partition, out.ddl)
        .groupBy(*keys)
        .agg(*[_sum(name) for name in sums])
    )
    totals = _to_polars(summed, _VOLUME_SCHEMA)
    never = never_logged_probes(observed_policy, policy) if observed_policy is not None else ()
    return volume_estimate(
        totals.filter(kind="rule").select("rule", "level", "stage", *VOLUME_SUMS),
        totals.filter(kind="day").select(s.DATE, *VOLUME_SUMS),
        totals.filter(kind="observed").select(*OBSERVED_SUMS),
        never_logged=never,
    )


def _sum(name: str) -> Any:
    from pyspark.sql import functions as F  # noqa: N812

    return F.sum(name).alias(name)


def observed_hours(events: DataFrame) -> float:
    """``policy.observed_hours`` on Spark: the polars function over the first and last
    ``request_ts``, which Spark finds."""
    from pyspark.sql import functions as F  # noqa: N812

    ends = _to_polars(events.select(F.min(s.REQUEST_TS).alias("a"), F.max(s.REQUEST_TS).alias("b")))
    stamps = pl.concat([ends["a"], ends["b"]]).alias(s.REQUEST_TS)
    return _observed_hours(pl.LazyFrame([stamps]))


# --------------------------------------------------------------------------- the charts


def _additive(
    events: DataFrame,
    parts: Callable[..., pl.LazyFrame],
    keys: Sequence[str],
    combine: Callable[[str], Any],
    *,
    extra: Sequence[pl.Expr] = (),
) -> pl.DataFrame:
    """``parts`` per partition of requests, combined by Spark over ``keys``.

    ``extra`` aggregations (over the reading-order columns) go into ``parts`` as its own.
    """

    def run(frame: pl.LazyFrame) -> pl.LazyFrame:
        return parts(frame, *extra)

    probe = (
        s.empty_events()
        .lazy()
        .with_columns(
            pl.lit("", dtype=pl.String).alias(_FILE), pl.lit(0, dtype=pl.Int64).alias(_ROW)
        )
    )
    schema = run(probe).collect_schema()
    out = _Out.of(schema)

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = _frame(batches)
        if not frame.is_empty():
            yield from out.batches(run(frame.lazy()).collect())

    combined = (
        _by_request(_narrow(events, parts))
        .mapInArrow(per_partition, out.ddl)
        .groupBy(*[f"`{k}`" for k in keys])
        .agg(*[combine(name) for name in schema.names() if name not in keys])
    )
    return _to_polars(combined, schema).select(schema.names())


_FIRST = "__kaudit_first"


def activity_cube(events: DataFrame) -> pl.DataFrame:
    """``activity.activity_cube`` on Spark (collected): ``cube_parts`` per partition of
    requests, summed by Spark per raw key, labelled by ``cube_from_parts``."""
    from pyspark.sql import functions as F  # noqa: N812

    def combine(name: str) -> Any:
        if name == s.GROUPS:
            # Where the parts of one key disagree on ``groups``, keep the first event's, as
            # polars does on one machine: each part carries where its first event sits.
            return F.min_by(s.GROUPS, _FIRST).alias(s.GROUPS)
        if name == _FIRST:
            return F.min(_FIRST).alias(_FIRST)
        return F.sum(f"`{name}`").alias(name)

    summed = _additive(
        events,
        activity.cube_parts,
        activity.CUBE_RAW_KEYS,
        combine,
        extra=[pl.struct(*_ORDER).first().alias(_FIRST)],
    )
    return activity.cube_from_parts(summed.drop(_FIRST).lazy()).collect()


def activity_by_hour_and_weekday(events: DataFrame) -> pl.DataFrame:
    """``activity.activity_by_hour_and_weekday`` on Spark (collected)."""
    from pyspark.sql import functions as F  # noqa: N812

    summed = _additive(
        events,
        activity.hour_and_weekday_parts,
        ("weekday", "hour"),
        lambda name: F.sum(name).alias(name),
    )
    return activity.hour_and_weekday_from_parts(summed.lazy()).collect()


# --------------------------------------------------------------------------- compliance

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

    schema = {**_PREPARED_SCHEMA, s.DATE: pl.Date(), _FILE: pl.String(), _ROW: pl.Int64()}
    out = _Out.of(schema)

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = _frame(batches)
        if frame.is_empty():
            return
        rows = frame.filter(span.contains())
        prepared = c.prepare(rows.lazy(), None).collect()
        yield from out.batches(prepared.with_columns(rows.select(s.DATE, _FILE, _ROW)))

    inside = events.filter(
        (F.col(s.REQUEST_TS) >= F.lit(span.since)) & (F.col(s.REQUEST_TS) < F.lit(span.until))
    )
    narrow = _narrow(inside, lambda lf: c.prepare(lf, span))
    return narrow.repartition(s.CLUSTER, s.AUDIT_ID).mapInArrow(per_partition, out.ddl)


def _prepared_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    typed = _typed(frame, _PREPARED_SCHEMA)
    return typed.sort(_ORDER) if _FILE in typed.columns else typed


def _evidence(
    prepared: DataFrame,
    baseline: DataFrame,
    ctx: c.Context,
    controls: Sequence[c.Control],
) -> pl.DataFrame:
    """Every control per cluster (each control compares events within one cluster only),
    with that cluster's baseline, then ordered as ``compliance.evidence`` orders them."""
    out = _Out.of(c.EVIDENCE_SCHEMA)

    def per_cluster(rows: pa.Table, known: pa.Table) -> pa.Table:
        frame = _prepared_frame(rows).drop(s.DATE, _FILE, _ROW)
        if frame.is_empty():
            return out.arrow.empty_table()
        humans = _typed(pl.DataFrame(pl.from_arrow(known)), _BASELINE_SCHEMA)
        here = c.Context(ctx.window, ctx.settings, baseline=humans.lazy())
        found = c.evidence(frame.lazy(), here, controls, prepared=True).collect()
        return out.table(found)

    found = (
        prepared.groupBy(s.CLUSTER)
        .cogroup(baseline.groupBy(s.CLUSTER))
        .applyInArrow(per_cluster, out.ddl)
    )
    collected = _to_polars(found, c.EVIDENCE_SCHEMA).cast(dict(c.EVIDENCE_SCHEMA))  # type: ignore[arg-type]
    return c.order_evidence(collected.lazy()).collect()


def _observations(prepared: DataFrame, controls: Sequence[c.Control]) -> dict[str, Any]:
    """``observations``: ``observation_counts`` per batch, summed by Spark, then the row."""
    from pyspark.sql import functions as F  # noqa: N812

    schema = c.observation_counts(c.prepare(s.empty_events().lazy()), controls).collect_schema()
    out = _Out.of(schema)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = _typed(pl.DataFrame(pl.from_arrow(batch)), _PREPARED_SCHEMA)
            yield from out.batches(c.observation_counts(frame.lazy(), controls).collect())

    keys = [name for name in schema.names() if name != "_n"]
    counts = (
        prepared.select(*[f"`{k}`" for k in keys])
        .mapInArrow(per_batch, out.ddl)
        .groupBy(*[f"`{k}`" for k in keys])
        .agg(F.sum("_n").alias("_n"))
    )
    typed = _to_polars(counts, {**_PREPARED_SCHEMA, "_n": pl.Int64()})
    return c.observations_from_counts(typed.lazy(), controls).collect().row(0, named=True)


def _per_batch_sum(
    frame: DataFrame,
    step: Callable[[pl.LazyFrame], pl.LazyFrame],
    schema: Mapping[str, pl.DataType],
    keys: Sequence[str],
    input_schema: Mapping[str, pl.DataType],
) -> pl.DataFrame:
    """A row-wise additive ``step`` per Arrow batch, summed by Spark over ``keys``."""
    out = _Out.of(schema)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = _typed(pl.DataFrame(pl.from_arrow(batch)), input_schema)
            yield from out.batches(step(rows.lazy()).collect())

    summed = (
        frame.mapInArrow(per_batch, out.ddl)
        .groupBy(*keys)
        .agg(*[_sum(name) for name in schema if name not in keys])
    )
    return _to_polars(summed, schema)


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
    base_out = _Out.of(_BASELINE_SCHEMA)

    def humans(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = _typed(pl.DataFrame(pl.from_arrow(batch)), _PREPARED_SCHEMA)
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
        daily = _per_batch_sum(
            prepared.select(s.REQUEST_TS),
            lambda lf: r.daily_events(lf, span),
            {"day": pl.Date(), "events": daily_schema["events"]},
            ["day"],
            _PREPARED_SCHEMA,
        )
        names = _to_polars(prepared.select(s.CLUSTER).distinct())[s.CLUSTER]
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


# --------------------------------------------------------------------------- ingest


def ingest(
    spark: SparkSession,
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    **options: Any,
) -> list[IngestStats]:
    """``kaudit_analytics.ingest`` of each source file as one Spark task, into one lake.

    Every task runs the ordinary per-file ingest, which holds the lake's writer lock while it
    loads: tasks on one machine (or on machines sharing a POSIX file system with working
    ``flock``) therefore load one file at a time, and the lake's deduplication and source
    bookkeeping hold exactly as for sequential runs. What runs in parallel is Spark's
    scheduling and the reading of other tasks' inputs up to the lock; the parse itself is
    serialised (see README, "Ingest at scale"). The lake must be a local or shared folder:
    its lock is a file lock, which object stores do not have.

    Returns
    -------
    list[IngestStats]
        One per file, in the order the files were given.
    """
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    local, remote = named_files(paths)  # as `kaudit ingest` finds them: log names, globs
    files = [str(f) for f in (*local, *remote)]
    root = os.fspath(lake)
    if not files:
        return []

    def load(path: str) -> IngestStats:
        return _ingest([path], root, cluster=cluster, **options)

    rdd = spark.sparkContext.parallelize(files, len(files))
    stats: list[IngestStats] = rdd.map(load).collect()
    return stats
