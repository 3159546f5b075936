"""Compliance report benchmark: every control over a 2 M-event lake, 7-day window.

Usage: ``python bench/bench_compliance.py [LAKE]``. Without ``LAKE`` it generates 2 M events
with ``kaudit_analytics.sample`` (profile ``metadata``, seed 7) and ingests them into
``bench/out/compliance-lake`` once, then reuses it. Prints a Markdown section: each step is
a fresh process (wall time, CPU time, peak RSS from ``wait4``), median of three runs, and a
per-control breakdown of the evidence queries over the prepared window.

The window ends at the midnight after the lake's last event and is 7 days long, so it holds
every event of the lake; the report also assesses the previous 7 days (the trend) and reads
the 7 before those (the first-seen baseline).
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


def _lake(argv: list[str]) -> Path:
    if argv:
        return Path(argv[0])
    import kaudit_analytics as ka
    from kaudit_analytics.sample import generate

    lake = HERE / "out" / "compliance-lake"
    if not (lake / "events").is_dir():
        log = HERE / "out" / f"compliance-{EVENTS}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if not log.exists():
            generate(log, events=EVENTS, seed=7, profile="metadata")
        ka.ingest([log], lake)
    return lake


def _window(lake: Path) -> tuple[str, str]:
    import polars as pl

    import kaudit_analytics as ka
    from kaudit_analytics.schema import REQUEST_TS

    last = ka.scan(lake).select(pl.col(REQUEST_TS).max()).collect().item()
    until = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return (until - dt.timedelta(days=7)).isoformat(), until.isoformat()


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
    import kaudit_analytics as ka
    from kaudit_analytics import compliance as c

    window = c.Window(dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until))
    began = time.perf_counter()
    frame = c.prepare(ka.scan(lake), window).collect().lazy()
    rows = [("prepare (scan, derive, collect)", time.perf_counter() - began, 0)]
    ctx = c.Context(window, baseline=frame)
    for ctrl in c.CONTROLS:
        began = time.perf_counter()
        found = c.control_evidence(frame, ctrl, ctx, prepared=True).collect().height
        rows.append((ctrl.id, time.perf_counter() - began, found))
    began = time.perf_counter()
    c.observations(frame, window, prepared=True).collect()
    rows.append(("observations (assessability)", time.perf_counter() - began, 0))
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(*sys.argv[2:6])
        return
    lake = _lake(sys.argv[1:])
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
    lines += ["", "Per control, over the prepared window (one run, in-process):", ""]
    lines += ["| query | seconds | findings |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {sec:.2f} | {n:,} |" for name, sec, n in _per_control(lake, since, until)
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
