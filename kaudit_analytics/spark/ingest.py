"""Ingest on Spark: executors parse and stage files in parallel, the driver commits once."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kaudit_analytics import lake as _lake
from kaudit_analytics.ingestion import IngestError, IngestStats
from kaudit_analytics.ingestion import commit as _commit
from kaudit_analytics.ingestion.discover import SourceError, named_files
from kaudit_analytics.ingestion.loader import finish, stage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["ingest"]


def ingest(
    spark: SparkSession,
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    wait: bool = True,
    **options: Any,
) -> list[IngestStats]:
    """Load each source file in a Spark task of its own, and commit them all at once.

    Every task parses its file, deduplicates it against the table as it was when the job
    started and stages its events as Parquet files, on one core (``threads=1``: Spark runs as
    many tasks at once as it has cores); the driver then commits every task's files in one
    transaction, dropping events that two files (or another writer, meanwhile) hold twice. A
    task that Spark runs again stages again; only the attempt whose result Spark keeps is
    committed (``kaudit lake vacuum`` removes the others' files). The lake is a folder every
    executor sees (shared storage) or an object-store URL.

    ``options`` are ``ingest``'s (``format``, ``keep_secrets``, ``max_line_bytes``).

    Returns
    -------
    list[IngestStats]
        One per file, in the order the files were given, all with the same table version.
    """
    began = time.perf_counter()
    where = _lake.locate(lake)
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    try:
        # As `kaudit ingest` finds them: log names, globs, never the lake itself.
        local, remote = named_files(paths, exclude=[where.local] if where.local else [])
    except SourceError as exc:
        raise IngestError(str(exc)) from exc
    files = [str(f) for f in (*local, *remote)]
    if not files:
        return []
    _lake.writable_table(where)  # created once here, not by every task at once
    uri = where.uri

    def load(path: str) -> tuple[_commit.Staged, IngestStats]:
        return stage([path], uri, cluster=cluster, threads=1, **options)

    rdd = spark.sparkContext.parallelize(files, len(files))
    staged: list[tuple[_commit.Staged, IngestStats]] = rdd.map(load).collect()
    loads = [load for load, _ in staged]
    done = _commit.commit(where, loads, wait=wait, run=f"spark-{uuid.uuid4().hex}")
    seconds = time.perf_counter() - began - done.waited
    return [finish(stats, load, done, seconds) for load, stats in staged]
