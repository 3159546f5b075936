"""The lake as a Spark DataFrame: one committed version, pruned as ``ka.scan`` prunes."""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING

from kaudit_analytics import lake as _lake
from kaudit_analytics import schema as s
from kaudit_analytics.spark._arrow import FILE, ROW, spark_schema
from kaudit_analytics.window import as_utc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["scan"]


def _has_delta(spark: SparkSession) -> bool:
    """Whether the session reads Delta tables itself (delta-spark installed and configured)."""
    try:
        import delta  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions


def _spark_uri(uri: str, lake: str) -> str:
    """Spark spells S3 ``s3a://`` (hadoop-aws); the table's log spells it ``s3://``."""
    if lake.startswith("s3a://") and uri.startswith("s3://"):
        return "s3a://" + uri.removeprefix("s3://")
    return uri


def scan(
    spark: SparkSession,
    lake: str | os.PathLike[str],
    *,
    cluster: str | list[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
    version: int | None = None,
) -> DataFrame:
    """The events table of a lake (local path or ``s3a://…``) as a Spark DataFrame.

    Spark reads one committed version of the table: with delta-spark configured in the session,
    as a Delta table; otherwise the Parquet files that version lists (read from the table's log
    on the driver), so files being staged by an ingest, or replaced by a compaction, are never
    read. The same window as ``kaudit_analytics.scan``: partitions outside ``cluster`` and the
    ``[since, until)`` dates are pruned, then rows are filtered on ``request_ts``. Two hidden
    columns record each row's file and position, so tasks can read rows in the lake's order.

    Raises
    ------
    LakeError
        When there is no lake at ``lake``.
    """
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    start, end = as_utc(since), as_utc(until)
    clusters = [cluster] if isinstance(cluster, str) else sorted(cluster) if cluster else None
    columns = [F.col(f"`{name}`") for name in s.AUDIT_SCHEMA]
    text = os.fspath(lake)
    where = _lake.require_lake(text)
    if _has_delta(spark) and _lake.state(where) == "delta":
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        frame = reader.load(_spark_uri(where.table_uri(_lake.EVENTS), text))
    else:
        paths = [
            _spark_uri(p, text)
            for p in _lake.files(where, cluster=clusters, since=since, until=until, version=version)
        ]
        if not paths:
            empty = spark.createDataFrame([], spark_schema(s.AUDIT_SCHEMA))
            return empty.select(*columns, F.lit("").alias(FILE), F.lit(0).cast("bigint").alias(ROW))
        frame = (
            spark.read.schema(spark_schema({**s.FILE_SCHEMA, **s.PARTITION_SCHEMA}))
            .option("basePath", _spark_uri(where.table_uri(_lake.EVENTS), text))
            .parquet(*paths)
        )
    # The same pruning as ``lake.scan``: by partition (cluster, date), then by ``request_ts``.
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
        F.col("_metadata.file_name").alias(FILE),
        F.col("_metadata.row_index").alias(ROW),
    )
