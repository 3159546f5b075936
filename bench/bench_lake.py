"""The lake as a transactional table: what writing costs, and what writers running together gain.

    .venv/bin/python bench/bench_lake.py LAKE --corpus CORPUS.log [--baseline DIR]

Measured on the corpus (split into parts where a figure needs several files), each figure next
to the same measure with the loader before the table format (the folder lake, one writer at a
time behind a file lock), when ``--baseline`` names a source tree of it (``bench/run.py`` makes
one with ``git archive``):

- the share of an ingest's time spent committing (the folder lake held its lock throughout);
- two ingests of different files with ``--threads 1`` side by side, against one after the other;
- ``spark.ingest`` of four files on ``local[2]`` against ``local[1]``;
- the cost of each file beyond its lines (many small files against one file of the same lines);
- hourly loads, then ``kaudit lake compact``: files and query time before and after.

Every timing is a whole process (``/usr/bin/time`` style: ``os.wait4``), median of ``--repeat``.
Prints Markdown. ``LAKE`` (the 2 M-event lake ``bench/run.py`` loads) is only described.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PY = sys.executable
HERE = Path(__file__).resolve().parent

_INGEST = """
import json, sys, time
import kaudit_analytics as ka
from kaudit_analytics.ingestion import loader
options = {"threads": int(sys.argv[-1])} if int(sys.argv[-1]) else {}  # the folder loader has none
began = time.perf_counter()
stats = ka.ingest(sys.argv[1:-2], sys.argv[-2], **options)
out = {"seconds": time.perf_counter() - began, "events": stats.events_written}
out["committing"] = getattr(stats, "seconds_committing", None)
out["waiting"] = getattr(stats, "seconds_waiting", None)
print(json.dumps(out))
"""

_SPARK = """
import json, sys, time
import kaudit_analytics as ka
from kaudit_analytics import spark as ks
spark = ks.session(sys.argv[1], local_dir=sys.argv[2], conf={"spark.driver.memory": "4g"})
spark.sparkContext.parallelize(range(4), 4).count()  # executors started before the clock
began = time.perf_counter()
stats = ks.ingest(spark, sys.argv[4:], sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - began,
                  "events": sum(s.events_written for s in stats)}))
spark.stop()
"""


def _env(baseline: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = str(baseline.resolve())
    return env


# Children run outside the repository: `python -c` puts the working folder first on the path,
# which would shadow the baseline's source tree with this one.
_CWD = tempfile.gettempdir()


def _run(code: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [PY, "-c", code, *args], capture_output=True, text=True, env=env, check=False, cwd=_CWD
    )
    if done.returncode != 0:
        msg = f"benchmark step failed:\n{done.stderr[-3000:]}"
        raise SystemExit(msg)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs if r.get(key) is not None)


def _split(corpus: Path, parts: int, into: Path, lines: int | None = None) -> list[Path]:
    """The corpus's first ``lines`` lines (all by default) as ``parts`` files of whole lines."""
    into.mkdir(parents=True, exist_ok=True)
    with corpus.open("rb") as handle:
        data = handle.read() if lines is None else b"".join(itertools.islice(handle, lines))
    ends = [0]
    for k in range(1, parts):
        ends.append(data.index(b"\n", len(data) * k // parts) + 1)
    ends.append(len(data))
    files = []
    for k in range(parts):
        path = into / f"part-{k}.log"
        path.write_bytes(data[ends[k] : ends[k + 1]])
        files.append(path)
    return files


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def commit_share(corpus: Path, scratch: Path, env: dict[str, str], repeat: int) -> list[str]:
    runs = [
        _run(_INGEST, [str(corpus), str(_fresh(scratch / "share")), "0"], env)
        for _ in range(repeat)
    ]
    seconds, committing = _median(runs, "seconds"), _median(runs, "committing")
    events = runs[0]["events"]
    return [
        f"| commit share of one ingest ({events:,.0f} events) | {committing:.2f} s of "
        f"{seconds:.1f} s = {committing / seconds:.1%} (folder lake: its lock was held for the "
        "whole load, 100%) |",
    ]


def side_by_side(
    files: list[Path], scratch: Path, envs: dict[str, dict[str, str]], repeat: int
) -> list[str]:
    """Two ingests of different files, one thread each: together against one after the other."""
    rows = []
    for label, env in envs.items():
        threads = "1" if label == "table" else "0"  # the folder loader has no --threads
        ratios, together_s, apart_s = [], [], []
        for _ in range(repeat):
            lake = _fresh(scratch / "apart")
            began = time.perf_counter()
            for path in files:
                _run(_INGEST, [str(path), str(lake), threads], env)
            apart = time.perf_counter() - began
            lake = _fresh(scratch / "together")
            began = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [PY, "-c", _INGEST, str(path), str(lake), threads],
                    stdout=subprocess.DEVNULL,
                    env=env,
                    cwd=_CWD,
                )
                for path in files
            ]
            if any(p.wait() for p in procs):
                msg = "a side-by-side ingest failed"
                raise SystemExit(msg)
            together = time.perf_counter() - began
            ratios.append(together / apart)
            together_s.append(together)
            apart_s.append(apart)
        rows.append(
            f"| two ingests of different files, side by side / one after the other "
            f"({label}) | {statistics.median(together_s):.1f} s / "
            f"{statistics.median(apart_s):.1f} s = {statistics.median(ratios):.2f}× |"
        )
    return rows


def spark_ingest(
    files: list[Path], scratch: Path, envs: dict[str, dict[str, str]], repeat: int
) -> list[str]:
    rows = []
    for label, env in envs.items():
        seconds = {}
        for master in ("local[1]", "local[2]"):
            runs = [
                _run(
                    _SPARK,
                    [
                        master,
                        str(scratch / "spark-tmp"),
                        str(_fresh(scratch / "spark")),
                        *map(str, files),
                    ],
                    env,
                )
                for _ in range(repeat)
            ]
            seconds[master] = _median(runs, "seconds")
        ratio = seconds["local[2]"] / seconds["local[1]"]
        rows.append(
            f"| `spark.ingest` of {len(files)} files, `local[2]` / `local[1]` ({label}) | "
            f"{seconds['local[2]']:.1f} s / {seconds['local[1]']:.1f} s = {ratio:.2f}× |"
        )
    return rows


def per_file(scratch: Path, envs: dict[str, dict[str, str]], repeat: int) -> list[str]:
    """Seconds a file costs beyond its lines: N small files against one file of their lines."""
    from kaudit_analytics.sample import generate

    many = _fresh(scratch / "small")
    many.mkdir()
    count, events = 200, 50
    generate(scratch / "one.log", events=count * events, seed=3)
    lines = (scratch / "one.log").read_bytes().splitlines(keepends=True)
    for k in range(count):
        (many / f"audit-{k:03d}.log").write_bytes(b"".join(lines[k * events : (k + 1) * events]))
    rows = []
    for label, env in envs.items():
        threads = "0"
        small = [
            _run(_INGEST, [str(many), str(_fresh(scratch / "l1")), threads], env)
            for _ in range(repeat)
        ]
        one = [
            _run(_INGEST, [str(scratch / "one.log"), str(_fresh(scratch / "l2")), threads], env)
            for _ in range(repeat)
        ]
        extra = (_median(small, "seconds") - _median(one, "seconds")) / (count - 1)
        rows.append(
            f"| cost of a file beyond its lines, {count} files of {events} events ({label}) | "
            f"{extra * 1000:.1f} ms |"
        )
    return rows


def compaction(corpus: Path, scratch: Path, env: dict[str, str], events: int) -> list[str]:
    """24 hourly loads of a corpus's slice, then compaction: files and a query, before and after."""
    hours = _split(corpus, 24, scratch / "hours", lines=events)
    lake = _fresh(scratch / "hourly")
    for path in hours:
        _run(_INGEST, [str(path), str(lake), "0"], env)
    query = (
        "import json, sys, time, kaudit_analytics as ka\n"
        "t = time.perf_counter()\n"
        "ka.scan(sys.argv[1]).group_by('user', 'verb').len().collect()\n"
        "n = len(ka.lake.files(sys.argv[1]))\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'files': n}))\n"
    )
    before = [_run(query, [str(lake)], env) for _ in range(3)]
    code = (
        "import json, sys, time, kaudit_analytics as ka\n"
        "t = time.perf_counter(); d = ka.lake.compact(sys.argv[1])\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'files': d.files_after}))\n"
    )
    compact = _run(code, [str(lake)], env)
    after = [_run(query, [str(lake)], env) for _ in range(3)]
    return [
        f"| 24 hourly loads of {events // 24:,} events: files / `scan` + group-by (user, verb) | "
        f"{before[0]['files']:.0f} files, {_median(before, 'seconds'):.2f} s |",
        f"| … after `kaudit lake compact` ({compact['seconds']:.1f} s) | "
        f"{after[0]['files']:.0f} files, {_median(after, 'seconds'):.2f} s |",
    ]


def _section(title: str, rows: Callable[[], list[str]]) -> list[str]:
    print(f"measuring: {title} …", file=sys.stderr, flush=True)
    try:
        return rows()
    except SystemExit as exc:
        return [f"| {title} | not measured: {str(exc).splitlines()[0]} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("lake", help="the benchmark lake (described only)")
    parser.add_argument("--corpus", type=Path, default=HERE / "out" / "meta-2000000.log")
    parser.add_argument("--baseline", type=Path, help="source tree of the folder-lake loader")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark-events", type=int, default=1_000_000)
    parser.add_argument("--hourly-events", type=int, default=480_000)
    args = parser.parse_args()
    envs = {"table": _env(None)}
    if args.baseline is not None:
        envs["folder lake"] = _env(args.baseline)
    scratch = Path(tempfile.mkdtemp(prefix="kaudit-lake-bench-", dir=HERE / "out"))
    try:
        halves = _split(args.corpus, 2, scratch / "halves")
        quarters = _split(args.corpus, 4, scratch / "quarters", lines=args.spark_events)
        table, repeat = envs["table"], args.repeat
        rows = [
            *_section("commit share", lambda: commit_share(args.corpus, scratch, table, repeat)),
            *_section("side by side", lambda: side_by_side(halves, scratch, envs, repeat)),
            *_section("spark.ingest", lambda: spark_ingest(quarters, scratch, envs, 1)),
            *_section("per-file cost", lambda: per_file(scratch, envs, repeat)),
            *_section(
                "compaction", lambda: compaction(args.corpus, scratch, table, args.hourly_events)
            ),
        ]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"Corpus `{args.corpus.name}`; medians of {args.repeat} whole-process runs (Spark: one). "
        "“folder lake” is the loader before the table format, run from its own source tree."
    )
    print()
    print("| measure | result |")
    print("|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
