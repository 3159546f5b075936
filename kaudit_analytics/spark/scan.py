"""The lake as a Spark DataFrame, pruned by cluster and date as ``kaudit_analytics.scan`` prunes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kaudit_analytics import schema as s
from kaudit_analytics.lake import LakeError, events_dir, events_url
from kaudit_analytics.spark._arrow import FILE, ROW, spark_schema
from kaudit_analytics.window import as_utc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["scan"]


def _events_path(lake: str | os.PathLike[str]) -> str | None:
    text = os.fspath(lake)
    if "://" in text:
        return events_url(text)
    root = Path(text)
    if not root.is_dir():
        msg = f"no lake at {root}: the folder does not exist"
        raise LakeError(msg)
    events = events_dir(root)
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

    start, end = as_utc(since), as_utc(until)
    clusters = [cluster] if isinstance(cluster, str) else sorted(cluster) if cluster else None
    columns = [F.col(f"`{name}`") for name in s.AUDIT_SCHEMA]
    path = _events_path(lake)
    if path is None:
        empty = spark.createDataFrame([], spark_schema(s.AUDIT_SCHEMA))
        return empty.select(*columns, F.lit("").alias(FILE), F.lit(0).cast("bigint").alias(ROW))
    frame = (
        spark.read.schema(spark_schema({**s.FILE_SCHEMA, **s.PARTITION_SCHEMA}))
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
        F.col("_metadata.file_name").alias(FILE),
        F.col("_metadata.row_index").alias(ROW),
    )
