"""Compliance report benchmark: every control over a 2 M-event lake, and peak memory to 8 M.

Usage: ``python bench/bench_compliance.py [LAKE] [--curve 2000000,4000000,8000000,16000000]``
or ``python bench/bench_compliance.py --sizes 2000000,4000000`` (the curve alone). Without
``LAKE`` it generates 2 M events with
``kaudit_analytics.sample`` (profile ``metadata``, seed 7) and ingests them into
``bench/out/compliance-lake`` once, then reuses it. Prints a Markdown section: each step is
a fresh process (wall time, CPU time, peak RSS from ``wait4``), median of three runs, and a
per-control breakdown of the evidence queries over one prepared day.

The window ends at the midnight after the lake's last event and holds every event of the
lake (the generator writes at a fixed rate, so a larger corpus spans more days); the report
also assesses the previous window (the trend) and reads the one before (the first-seen
baseline). Reports are assessed one UTC day at a time, so peak memory should stay flat as
the corpus grows: the ``--sizes`` table shows it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVENTS = 2_000_000
REPEAT = 3
#: The memory curve's corpus sizes (``--curve``): 16 M events takes half an hour to generate
#: on 2 cores, so ``make bench`` stops at 8 M; pass ``--curve ...,16000000`` for that point.
CURVE = (EVENTS, 2 * EVENTS, 4 * EVENTS)


def _lake(argv: list[str], events: int = EVENTS) -> Path:
    if argv:
        return Path(argv[0])
    import kaudit_analytics as ka
    from kaudit_analytics.sample import generate

    name = "compliance-lake" if events == EVENTS else f"compliance-lake-{events}"
    lake = HERE / "out" / name
    if not (lake / "events").is_dir():
        # Larger corpora are written gzipped: 16 M events are ~11 GB of JSON.
        big = events > EVENTS
        log = HERE / "out" / f"compliance-{events}.log{'.gz' if big else ''}"
        log.parent.mkdir(parents=True, exist_ok=True)
        if not log.exists():
            generate(log, events=events, seed=7, profile="metadata", compress=big)
        ka.ingest([log], lake)
        log.unlink()  # multi-GB; the lake is what the benchmark reads
    return lake


def _window(lake: Path) -> tuple[str, str]:
    import polars as pl

    import kaudit_analytics as ka
    from kaudit_analytics.schema import REQUEST_TS

    span = ka.scan(lake).select(pl.col(REQUEST_TS).min().alias("a"), pl.col(REQUEST_TS).max())
    first, last = span.collect().row(0)
    until = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    days = max(7, (until.date() - first.date()).days)
    return (until - dt.timedelta(days=days)).isoformat(), until.isoformat()


def _child(step: str, lake: str, since: str, until: str) -> None:
    """One measured step, in its own process; prints what it assessed as JSON."""
    from kaudit_analytics import report

    window = report.parse_window(since, until, now=dt.datetime.now(dt.UTC))
    began = time.perf_counter()
    result = report.report_from_lake(lake, window)
    built = time.perf_counter() - began
    if step == "write":
        with tempfile.TemporaryDirectory() as out:
            report.write_report(result, out)
    print(json.dumps({"events": result.events, "findings": result.evidence.height, "build": built}))


def _measure(argv: list[str]) -> dict[str, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"benchmark step failed: {' '.join(argv)}"
        raise SystemExit(msg)
    info = json.loads(output.strip().splitlines()[-1])
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        **info,
    }


def _per_control(lake: Path, since: str, until: str) -> list[tuple[str, float, int]]:
    """Each control's ``partial`` over the window's busiest prepared day."""
    import polars as pl

    import kaudit_analytics as ka
    from kaudit_analytics import compliance as c
    from kaudit_analytics.schema import DATE

    window = c.Window(dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until))
    busiest = (
        ka.scan(lake, since=window.since, until=window.until)
        .group_by(DATE)
        .len()
        .sort("len")
        .collect()[DATE][-1]
    )
    day_start = dt.datetime.combine(busiest, dt.time(), tzinfo=dt.UTC)
    day = c.Window(day_start, day_start + dt.timedelta(days=1))
    began = time.perf_counter()
    # Contiguous, as reports assess it (polars panics on multi-chunk string columns).
    frame = c.prepare(ka.scan(lake, since=day.since, until=day.until), day).collect().rechunk()
    frame = frame.lazy()
    rows = [(f"prepare one day ({busiest})", time.perf_counter() - began, 0)]
    ctx = c.Context(day, baseline=c.baseline_rows(frame).collect().lazy())
    for ctrl in c.CONTROLS:
        began = time.perf_counter()
        query = ctrl.evidence.final(ctrl.evidence.partial(frame, ctx), ctx)
        found = query.collect(engine="in-memory").height
        rows.append((ctrl.id, time.perf_counter() - began, found))
    began = time.perf_counter()
    c.observations(frame, day, prepared=True).collect(engine="in-memory")
    rows.append(("observations (assessability)", time.perf_counter() - began, 0))
    del pl
    return rows


def _memory_curve(sizes: list[int]) -> list[str]:
    """Peak RSS of a whole report (fresh process) against corpus size, one run each."""
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    lines = [
        "Peak memory of `report_from_lake` against corpus size (one fresh process each; the "
        "window holds the whole corpus):",
        "",
        "| events | window | wall | peak RSS | vs the first |",
        "|---:|---|---:|---:|---:|",
    ]
    first = None
    for size in sizes:
        lake = _lake([], size)
        since, until = _window(lake)
        run = _measure([*me, "build", str(lake), since, until])
        first = first or run["rss"]
        days = (dt.datetime.fromisoformat(until) - dt.datetime.fromisoformat(since)).days
        lines.append(
            f"| {int(run['events']):,} | {days} days | {run['wall']:.1f} s | "
            f"{run['rss']:,.0f} MiB | {run['rss'] / first:.2f}x |"
        )
    return lines


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(*sys.argv[2:6])
        return
    if sys.argv[1:2] == ["--sizes"]:
        print("\n".join(_memory_curve([int(n) for n in sys.argv[2].split(",")])))
        return
    args = sys.argv[1:]
    curve = CURVE
    if "--curve" in args:  # e.g. --curve 2000000,4000000,8000000,16000000
        at = args.index("--curve")
        curve = tuple(int(n) for n in args[at + 1].split(",") if n.strip())
        del args[at : at + 2]
    lake = _lake(args)
    since, until = _window(lake)
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    steps = {
        "assess all controls (`report_from_lake`: 7-day window + previous window)": "build",
        "… and write HTML, Markdown, JSON, Parquet and CSV (whole `kaudit report`)": "write",
    }
    lines = [
        f"Lake `{lake.name}`, window {since} to {until}; median of {REPEAT} fresh processes.",
        "",
        "| step | events | findings | wall | of which assessing | CPU | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, step in steps.items():
        runs = [_measure([*me, step, str(lake), since, until]) for _ in range(REPEAT)]
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        lines.append(
            f"| {label} | {int(med['events']):,} | {int(med['findings']):,} | "
            f"{med['wall']:.2f} s | {med['build']:.2f} s | {med['cpu']:.2f} s | "
            f"{med['rss']:,.0f} MiB |"
        )
    lines += ["", "Per control, over the busiest prepared day (one run, in-process):", ""]
    lines += ["| query | seconds | findings |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {sec:.2f} | {n:,} |" for name, sec, n in _per_control(lake, since, until)
    ]
    if curve:  # from a fresh process: a child's peak RSS counts its parent's at fork
        sizes = ",".join(str(n) for n in curve)
        done = subprocess.run(
            [sys.executable, __file__, "--sizes", sizes], check=True, capture_output=True, text=True
        )
        lines += ["", done.stdout.rstrip("\n")]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
