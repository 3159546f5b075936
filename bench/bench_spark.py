"""Spark engine benchmark: ``local[2]`` against the polars path on the same lake.

    .venv/bin/python bench/bench_spark.py LAKE          # an existing lake (what bench/run.py does)
    .venv/bin/python bench/bench_spark.py LAKE --ingest-events 200000

Times the same analyses on both engines in one process (policy volume estimate, the charts'
activity cube, the compliance report over the lake's last 7 days), checks that the results
are equal, and reads Spark's own REST API for how the work split: tasks, input bytes, shuffle
bytes and executor CPU per analysis, the figures a cluster-size projection starts from.
Then per-file ingest: the same files loaded one after the other, and as Spark tasks.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POLICY = HERE.parent / "tests" / "fixtures" / "policy" / "property_policy.yaml"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def _stages(spark: Any) -> dict[int, dict[str, Any]]:
    """Completed stages from Spark's REST API (the driver's own web UI, on loopback)."""
    sc = spark.sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?status=complete"
    with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - our own driver
        return {s["stageId"] * 1000 + s["attemptId"]: s for s in json.load(reply)}


def _split(before: dict[int, Any], after: dict[int, Any]) -> dict[str, float]:
    new = [s for key, s in after.items() if key not in before]
    return {
        "stages": len(new),
        "tasks": sum(s["numTasks"] for s in new),
        "input": sum(s["inputBytes"] for s in new),
        "shuffle": sum(s["shuffleWriteBytes"] for s in new),
        "cpu": sum(s["executorCpuTime"] for s in new) / 1e9,
        "run": sum(s["executorRunTime"] for s in new) / 1e3,
    }


def main() -> None:
    import polars as pl

    import kaudit_analytics as ka
    from kaudit_analytics import activity, compliance, report
    from kaudit_analytics import spark as ks
    from kaudit_analytics.policy import load_policy

    parser = argparse.ArgumentParser()
    parser.add_argument("lake")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--ingest-events", type=int, default=200_000)
    args = parser.parse_args()
    lake = Path(args.lake)
    policy = load_policy(POLICY)
    n = ka.scan(lake).select(pl.len()).collect().item()
    last = ka.scan(lake).select(pl.col("request_ts").max()).collect().item()
    until = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    window = compliance.Window(until - dt.timedelta(days=7), until)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = Path(tempfile.mkdtemp(prefix="kaudit-spark-bench-"))
    cores = int(args.master.removeprefix("local[").removesuffix("]") or 2)

    try:
        started, spark = _timed(
            lambda: ks.session(
                args.master,
                local_dir=scratch,
                ui=True,
                conf={"spark.sql.shuffle.partitions": str(4 * cores), "spark.driver.memory": "4g"},
            )
        )
    except ks.SparkUnavailableError as err:
        print(f"Not measured: {err}.")
        return
    events = ks.scan(spark, lake)
    steps: list[tuple[str, Callable[[], Any], Callable[[], Any], Callable[[Any, Any], bool]]] = [
        (
            "`estimate_volume` (20-rule policy)",
            lambda: policy.estimate_volume(ka.scan(lake)),
            lambda: ks.estimate_volume(events, policy),
            lambda a, b: a.by_rule.equals(b.by_rule) and a.by_day.equals(b.by_day),
        ),
        (
            "`activity_cube` (the heatmaps' aggregate)",
            lambda: activity.activity_cube(ka.scan(lake)).collect(),
            lambda: ks.activity_cube(events),
            lambda a, b: a.sort(a.columns[:4]).equals(b.sort(b.columns[:4])),
        ),
        (
            "compliance report, 7-day window (`report_from_lake`)",
            lambda: report.report_from_lake(lake, window),
            lambda: ks.report_from_lake(spark, lake, window),
            lambda a, b: a == b and a.evidence.equals(b.evidence),
        ),
    ]
    rows = []
    for name, on_polars, on_spark, same in steps:
        polars_s, expected = _timed(on_polars)
        before = _stages(spark)
        spark_s, got = _timed(on_spark)
        split = _split(before, _stages(spark))
        ks_warm, _ = _timed(on_spark)
        rows.append((name, polars_s, spark_s, ks_warm, split, same(expected, got)))

    print(f"Lake: {n:,} events; Spark {spark.version} `{args.master}` on the same machine, ")
    print(
        f"driver + {cores} task slots; session start {started:.1f} s (JVM, not counted below). "
        f"Window for the report: {window.since:%Y-%m-%d} to {window.until:%Y-%m-%d}."
    )
    print()
    print(
        "| analysis | polars (s) | Spark 1st run (s) | Spark again (s) | Spark / polars "
        "| same result | stages | tasks | input | shuffle written | executor CPU (s) |"
    )
    print("|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|")
    for name, p_s, s_s, warm, split, same in rows:
        print(
            f"| {name} | {p_s:.2f} | {s_s:.2f} | {warm:.2f} | {warm / p_s:.1f}× "
            f"| {'yes' if same else '**no**'} | {split['stages']:.0f} | {split['tasks']:.0f} "
            f"| {split['input'] / 1e6:,.0f} MB | {split['shuffle'] / 1e6:,.0f} MB "
            f"| {split['cpu']:.1f} |"
        )
    print()
    per_m = 1e6 / n
    for name, _, _, _, split, _ in rows:
        print(
            f"- {name}: per million events, {split['cpu'] * per_m:.1f} executor CPU-s, "
            f"{split['shuffle'] * per_m / 1e6:,.0f} MB shuffled, "
            f"{split['tasks'] * per_m:.0f} tasks."
        )
    print()
    _bench_ingest(spark, args.ingest_events, scratch)
    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)


def _bench_ingest(spark: Any, events: int, scratch: Path) -> None:
    """Per-file ingest: one after the other, in one call, and as Spark tasks."""
    import kaudit_analytics as ka
    from kaudit_analytics import spark as ks
    from kaudit_analytics.sample import generate

    logs = scratch / "logs"
    logs.mkdir()
    generate(logs / "audit.log", events=events, seed=7, rotate_bytes=events * 1000 // 4)
    files = sorted(logs.iterdir())
    size = sum(f.stat().st_size for f in files)

    def fresh(name: str) -> Path:
        path = scratch / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    runs = {
        "one `ka.ingest` per file, one after the other": lambda: [
            ka.ingest(f, fresh("seq") if i == 0 else scratch / "seq") for i, f in enumerate(files)
        ],
        "one `ka.ingest` call with every file": lambda: ka.ingest(files, fresh("one")),
        "`spark.ingest`: one Spark task per file, 2 at a time": lambda: ks.ingest(
            spark, files, fresh("spark")
        ),
    }
    print(
        f"Per-file ingest of {len(files)} rotated files ({events:,} events, {size / 1e6:,.0f} MB) "
        "into one lake:"
    )
    print()
    print("| how | seconds | events in the lake |")
    print("|---|---:|---:|")
    for (name, run), lake in zip(runs.items(), ("seq", "one", "spark"), strict=True):
        seconds, _ = _timed(run)
        count = ka.scan(scratch / lake).select("audit_id").collect().height
        print(f"| {name} | {seconds:.1f} | {count:,} |")


if __name__ == "__main__":
    main()
