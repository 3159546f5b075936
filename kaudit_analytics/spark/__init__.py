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

from kaudit_analytics.spark.activity import activity_by_hour_and_weekday, activity_cube
from kaudit_analytics.spark.ingest import ingest
from kaudit_analytics.spark.policy import estimate_volume, evaluate, observed_hours
from kaudit_analytics.spark.report import build_report, report_from_lake
from kaudit_analytics.spark.scan import scan
from kaudit_analytics.spark.session import SparkUnavailableError, session

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
