"""Ingest on Spark: one task per source file, into one lake."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kaudit_analytics.ingestion import IngestStats
from kaudit_analytics.ingestion import ingest as _ingest
from kaudit_analytics.ingestion.discover import named_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["ingest"]


def ingest(
    spark: SparkSession,
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    **options: Any,
) -> list[IngestStats]:
    """``kaudit_analytics.ingestion`` of each source file as one Spark task, into one lake.

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
