"""The compliance report on Spark: the same ``Report`` from a Spark events table.

Each window is cut the way the polars engine cuts it, into UTC days, and further by cluster:
one Spark task prepares one (cluster, day) of events and runs every control's ``partial`` on
it (``report.slice_parts``), returning the small partial results as Arrow IPC payloads. The
driver merges them with ``report.merge_slices``, exactly as on one machine. No task ever holds
more than one cluster-day of events, and the driver only the partials.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.report import model as r
from kaudit_analytics.spark._arrow import narrow, task_frame
from kaudit_analytics.spark.scan import scan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from kaudit_analytics.policy import Policy

__all__ = ["build_report", "report_from_lake"]

#: What a task returns: one row per partial result, its name and its Arrow IPC bytes.
_OUT = "`name` string, `payload` binary"
_SHARED = ("_counts", "_baseline", "_daily")


def _ipc(frame: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    frame.write_ipc(sink)
    return sink.getvalue()


def _frame(payload: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(payload))


def _slice_task(span: c.Window, settings: c.Settings, controls: Sequence[c.Control]) -> object:
    ctx = c.Context(span, settings)

    def task(table: pa.Table) -> pa.Table:
        frame = task_frame(table.to_batches())
        if frame.is_empty():
            return pa.table(
                {"name": pa.array([], pa.string()), "payload": pa.array([], pa.binary())}
            )
        prepared = c.prepare(frame.lazy(), span, settings, c.extra_columns(controls)).collect()
        prepared = prepared.rechunk()  # see report.model._contiguous
        part = r.slice_parts(prepared.lazy(), ctx, controls)
        named = {
            **part.parts,
            "_counts": part.counts,
            "_baseline": part.baseline,
            "_daily": part.daily,
            "_clusters": prepared.select(pl.col(s.CLUSTER).cast(pl.String).unique()),
        }
        names = list(named)
        payloads = [_ipc(frame) for frame in named.values()]
        names.append("_errors")
        payloads.append(json.dumps(dict(part.errors)).encode())
        return pa.table(
            {"name": pa.array(names, pa.string()), "payload": pa.array(payloads, pa.binary())}
        )

    return task


def _assess_window(
    events: DataFrame,
    span: c.Window,
    ctx: c.Context,
    *,
    controls: Sequence[c.Control],
    coverage: Sequence[c.Coverage],
    baseline_events: int,
) -> tuple[r.Assessment, pl.DataFrame, pl.DataFrame, set[str]]:
    from pyspark.sql import functions as F  # noqa: N812

    inside = events.filter(
        (F.col(s.REQUEST_TS) >= F.lit(span.since)) & (F.col(s.REQUEST_TS) < F.lit(span.until))
    )
    extra = c.extra_columns(controls)
    columns = narrow(inside, lambda lf: c.prepare(lf, span, ctx.settings, extra))
    rows = (
        columns.groupBy(s.CLUSTER, s.DATE)
        .applyInArrow(_slice_task(span, ctx.settings, controls), _OUT)  # type: ignore[arg-type]
        .toArrow()
    )
    by_name: dict[str, list[bytes]] = {}
    for name, payload in zip(
        rows.column("name").to_pylist(), rows.column("payload").to_pylist(), strict=True
    ):
        by_name.setdefault(name, []).append(payload)
    errors: dict[str, str] = {}
    for payload in by_name.pop("_errors", []):
        errors.update(json.loads(payload))
    clusters = {
        name
        for payload in by_name.pop("_clusters", [])
        for name in _frame(payload)[s.CLUSTER].drop_nulls().to_list()
    }
    parts = {
        name: pl.concat([_frame(p) for p in payloads], how="vertical_relaxed")
        for name, payloads in by_name.items()
    }
    empty = c.prepare(s.empty_events().lazy(), None, ctx.settings)
    shared = {
        "_counts": c.observation_counts(empty, controls, ctx.settings),
        "_baseline": c.baseline_rows(empty),
        "_daily": r.daily_events(empty, span),
    }
    merged = r.SliceParts(
        parts={name: frame for name, frame in parts.items() if name not in _SHARED},
        counts=parts.get("_counts", shared["_counts"].collect()),
        baseline=parts.get("_baseline", shared["_baseline"].collect()),
        daily=parts.get("_daily", shared["_daily"].collect()),
        errors=errors,
    )
    result, baseline, daily = r.merge_slices(
        [merged], ctx, controls=controls, coverage=coverage, baseline_events=baseline_events
    )
    return result, baseline, daily, clusters


def build_report(
    events: DataFrame,
    window: c.Window,
    *,
    policy: Policy | None = None,
    policy_name: str | None = None,
    settings: c.Settings | None = None,
    settings_name: str | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
    title: str = "Kubernetes audit compliance report",
) -> r.Report:
    """``report.build_report`` on Spark: the same ``Report`` from a Spark events table.

    The three windows (the one before the previous, for the first-seen baseline; the
    previous one, for the trend; the report's) are each assessed per (cluster, UTC day) in
    Spark tasks, and merged on the driver.
    """
    settings = settings or c.Settings()
    previous = window.previous()
    coverage = c.policy_coverage(policy, controls) if policy is not None else ()
    ctx = c.Context(previous.previous(), settings)
    oldest, baseline, _, _ = _assess_window(
        events, previous.previous(), ctx, controls=(), coverage=(), baseline_events=0
    )
    size = oldest.events
    assessments = []
    clusters: set[str] = set()
    daily = pl.DataFrame()
    for span in (previous, window):
        ctx = c.Context(span, settings, baseline=baseline.lazy() if size else None)
        result, baseline, daily, clusters = _assess_window(
            events, span, ctx, controls=controls, coverage=coverage, baseline_events=size
        )
        size = result.events
        assessments.append(result)
    before, now = assessments
    return r.assemble_report(
        before,
        now,
        clusters=tuple(sorted(clusters)),
        daily=daily,
        settings=settings,
        settings_name=settings_name,
        controls=controls,
        coverage=tuple(coverage),
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
    settings_name: str | None = None,
    controls: Sequence[c.Control] = c.CONTROLS,
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
    built = build_report(
        events,
        window,
        policy=policy,
        policy_name=name,
        settings=settings,
        settings_name=settings_name,
        controls=controls,
    )
    is_local = "://" not in os.fspath(lake)
    return r.check_window(built, lake, cluster) if is_local else built
