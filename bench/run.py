"""`make bench`: measure the loader (and the analyses' own benchmarks) and write BENCHMARKS.md.

Every figure is the median of several whole-process runs on generated corpora, next to the
obvious alternatives measured in the same run, so ratios are fair on whatever machine runs it.
Corpora are generated once into bench/out/ and reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
REPO = HERE.parent
PY = sys.executable
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss: int  # bytes


def _measure(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time and peak RSS of one child process (its own rusage, via wait4).

    Children run outside the repository: ``python -c`` puts the working folder first on the
    path, which would shadow a baseline's source tree given in ``PYTHONPATH``.
    """
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env, cwd=OUT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"benchmark step failed: {' '.join(argv)}"
        raise SystemExit(msg)
    return Run(seconds, usage.ru_maxrss * 1024)


def _median(
    argv: list[str], repeat: int, before: object = None, env: dict[str, str] | None = None
) -> Run:
    runs = []
    for _ in range(repeat):
        if callable(before):
            before()
        runs.append(_measure(argv, env))
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_rss for r in runs)
    )


def _corpus(name: str, events: int, profile: str) -> Path:
    path = OUT / f"{name}.log"
    if not path.exists():
        print(f"generating {path.name}: {events:,} events, profile {profile} …", flush=True)
        code = (
            "from kaudit_analytics.sample import generate;"
            f"generate({str(path)!r}, events={events}, seed=7, profile={profile!r})"
        )
        subprocess.run([PY, "-c", code], check=True)
    return path


# The obvious alternative in DuckDB: its own NDJSON reader, straight to Parquet.
_DUCK_COLUMNS = ", ".join(
    f"{name}: '{kind}'"
    for name, kind in {
        "auditID": "VARCHAR",
        "stage": "VARCHAR",
        "level": "VARCHAR",
        "verb": "VARCHAR",
        "requestURI": "VARCHAR",
        '\\"user\\"': "STRUCT(username VARCHAR, uid VARCHAR, groups VARCHAR[])",
        "sourceIPs": "VARCHAR[]",
        "userAgent": "VARCHAR",
        "objectRef": "STRUCT(resource VARCHAR, namespace VARCHAR, name VARCHAR, apiGroup VARCHAR, "
        "apiVersion VARCHAR, subresource VARCHAR)",
        "responseStatus": "STRUCT(code INTEGER)",
        "requestObject": "JSON",
        "responseObject": "JSON",
        "requestReceivedTimestamp": "TIMESTAMPTZ",
        "stageTimestamp": "TIMESTAMPTZ",
        "annotations": "MAP(VARCHAR, VARCHAR)",
    }.items()
)
_DUCKDB = (
    "import duckdb\n"
    "con = duckdb.connect(config={{'preserve_insertion_order': False}})\n"
    "con.execute(\"COPY (SELECT * FROM read_ndjson('{src}', ignore_errors=true, "
    "maximum_object_size=16777216, columns={{"
    + _DUCK_COLUMNS.replace("{", "{{").replace("}", "}}")
    + "}})) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)\")\n"
)

# The reference's best complete approach: whole lines through DuckDB's CSV reader (a separator that
# JSON text never holds), the loader's own json_transform shape, and each line's length; straight
# to Parquet. It has everything but line numbers, dedupe, quarantine, redaction and partitions.
_DUCKDB_LINES = (
    "import duckdb\n"
    "from kaudit_analytics.ingestion.parse import _EVENT_SHAPE as shape\n"
    "con = duckdb.connect(config={{'preserve_insertion_order': False}})\n"
    "con.execute(f\"COPY (SELECT strlen(line) AS nbytes, unnest(json_transform(line, '{{shape}}')) "
    "FROM read_csv('{src}', columns={{{{'line': 'VARCHAR'}}}}, delim='\\x01', quote='', "
    "escape='', header=false, max_line_size=16777216)) TO '{dst}' (FORMAT parquet, "
    'COMPRESSION zstd)")\n'
)

_POLARS = """
import polars as pl
schema = {{"auditID": pl.String, "stage": pl.String, "level": pl.String, "verb": pl.String,
  "requestURI": pl.String, "user": pl.Struct({{"username": pl.String, "uid": pl.String,
  "groups": pl.List(pl.String)}}), "sourceIPs": pl.List(pl.String), "userAgent": pl.String,
  "objectRef": pl.Struct({{"resource": pl.String, "namespace": pl.String, "name": pl.String,
  "apiGroup": pl.String, "apiVersion": pl.String, "subresource": pl.String}}),
  "responseStatus": pl.Struct({{"code": pl.Int32}}), "requestObject": pl.String,
  "responseObject": pl.String, "requestReceivedTimestamp": pl.String, "stageTimestamp": pl.String}}
(pl.scan_ndjson('{src}', schema=schema, ignore_errors=True)
   .with_columns(pl.col("requestReceivedTimestamp").str.to_datetime(time_zone="UTC"))
   .sink_parquet('{dst}', compression="zstd"))
"""


#: The last commit whose loader wrote the folder lake (one writer at a time, behind a lock):
#: measured beside the table, from its own source tree.
BASELINE_REV = "3f840fc"


def _baseline(rev: str) -> Path | None:
    """The folder-lake loader's source tree (``git archive`` of ``rev``), or None without git."""
    tree = OUT / f"baseline-{rev}"
    if not (tree / "kaudit_analytics").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "kaudit_analytics"],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            print(f"no baseline: git archive {rev} failed", flush=True)
            return None
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _kaudit(baseline: Path | None = None) -> list[str]:
    """The `kaudit` command of this tree, or of the baseline's source tree."""
    if baseline is None:
        return [str(Path(PY).parent / "kaudit")]
    return [PY, "-c", "from kaudit_analytics.cli import main; main()"]


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.unlink(missing_ok=True) if path.is_file() else None


def bench_loader(corpora: dict[str, Path], repeat: int, baseline: Path | None) -> list[str]:
    rows = [
        "| corpus | events | JSON | approach | seconds | events/s | peak RSS | vs kaudit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, path in corpora.items():
        events = sum(1 for _ in path.open("rb"))
        lake = OUT / f"lake-{name}"
        ours = _median(
            [*_kaudit(), "ingest", str(path), "--lake", str(lake)],
            repeat,
            before=lambda lake=lake: _fresh(lake),
        )
        folder = (
            _median(
                [*_kaudit(baseline), "ingest", str(path), "--lake", str(lake)],
                repeat,
                before=lambda lake=lake: _fresh(lake),
                env={**os.environ, "PYTHONPATH": str(baseline)},
            )
            if baseline is not None
            else None
        )
        dst = OUT / "alt.parquet"
        duck = _median([PY, "-c", _DUCKDB.format(src=path, dst=dst)], repeat)
        lines = _median([PY, "-c", _DUCKDB_LINES.format(src=path, dst=dst)], repeat)
        polars = _median([PY, "-c", _POLARS.format(src=path, dst=dst)], repeat)
        size = path.stat().st_size
        approaches = [
            ("**kaudit ingest** (complete schema, dedupe, quarantine, redaction)", ours),
            *(
                [(f"kaudit ingest into the folder lake (loader of `{BASELINE_REV}`)", folder)]
                if folder is not None
                else []
            ),
            ("DuckDB `read_ndjson` → Parquet (no line length, no quarantine)", duck),
            (
                "DuckDB whole lines + `json_transform` (same columns, no line numbers, "
                "dedupe, quarantine)",
                lines,
            ),
            ("polars `scan_ndjson` → Parquet (bodies unusable, no quarantine)", polars),
        ]
        for label, run in approaches:
            rows.append(
                f"| {name} | {events:,} | {size / 1e9:.2f} GB | {label} | {run.seconds:.1f} | "
                f"{events / run.seconds:,.0f} | {run.peak_rss / 2**30:.2f} GiB | "
                f"{run.seconds / ours.seconds:.2f}× the time |"
            )
    return rows


def bench_rss_curve(sizes: list[int]) -> list[str]:
    rows = ["| events | JSON | seconds | events/s | peak RSS |", "|---|---|---|---|---|"]
    for n in sizes:
        path = _corpus(f"meta-{n}", n, "metadata")
        lake = OUT / "lake-curve"
        _fresh(lake)
        run = _measure([*_kaudit(), "ingest", str(path), "--lake", str(lake)])
        rows.append(
            f"| {n:,} | {path.stat().st_size / 1e9:.2f} GB | {run.seconds:.1f} | "
            f"{n / run.seconds:,.0f} | {run.peak_rss / 2**30:.2f} GiB |"
        )
        if n > 2_000_000:
            path.unlink()
    return rows


def bench_queries(lake: Path, corpus: Path, repeat: int) -> list[str]:
    parquet = sum(p.stat().st_size for p in (lake / "events").rglob("*.parquet"))
    code = (
        "import kaudit_analytics as ka;"
        f"ka.scan({str(lake)!r}).group_by('user', 'verb').len().collect()"
    )
    run = _median([PY, "-c", code], repeat)
    inner = (
        "import time, kaudit_analytics as ka; t = time.perf_counter();"
        f"ka.scan({str(lake)!r}).group_by('user', 'verb').len().collect();"
        "print(time.perf_counter() - t)"
    )
    query = float(
        subprocess.run([PY, "-c", inner], capture_output=True, text=True, check=True).stdout
    )
    return [
        "| measure | value |",
        "|---|---|",
        f"| Parquet / JSON size | {parquet / 1e6:.1f} MB / {corpus.stat().st_size / 1e6:,.0f} MB "
        f"= {parquet / corpus.stat().st_size:.1%} |",
        f"| `scan` + group-by (user, verb), whole fresh process | {run.seconds:.2f} s |",
        f"| … of which the query itself | {query:.2f} s |",
    ]


def bench_others(
    lake: Path, corpus: Path, baseline: Path | None, *, quick: bool = False
) -> list[str]:
    """The analyses' own benchmark scripts, each printing a Markdown section."""
    lake_args = ["--corpus", str(corpus), *(["--baseline", str(baseline)] if baseline else [])]
    if quick:
        lake_args += ["--repeat", "1", "--spark-events", "40000", "--hourly-events", "48000"]
    sections = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"running {script.name} …", flush=True)
        args = (
            ["--lake", str(lake), "--notebook"] if script.stem == "bench_explore" else [str(lake)]
        )
        if script.stem == "bench_lake":
            args += lake_args
        done = subprocess.run([PY, str(script), *args], capture_output=True, text=True, check=False)
        body = (
            done.stdout.strip() if done.returncode == 0 else f"failed:\n\n```\n{done.stderr}\n```"
        )
        sections += [f"#### {script.stem.removeprefix('bench_')}", "", body, ""]
    return sections


def _machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small corpora, one run each")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the folder-lake loader's figures"
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    scale = 20 if args.quick else 1
    repeat = 1 if args.quick else 3
    corpora = {
        "Metadata-heavy": _corpus(f"meta-{2_000_000 // scale}", 2_000_000 // scale, "metadata"),
        "RequestResponse-heavy": _corpus(f"bodies-{500_000 // scale}", 500_000 // scale, "bodies"),
    }
    baseline = None if args.no_baseline else _baseline(BASELINE_REV)
    loader = bench_loader(corpora, repeat, baseline)
    lake = OUT / "lake-Metadata-heavy"
    _fresh(lake)
    _measure([*_kaudit(), "ingest", str(corpora["Metadata-heavy"]), "--lake", str(lake)])
    queries = bench_queries(lake, corpora["Metadata-heavy"], repeat)
    curve = bench_rss_curve(
        [n // scale for n in (500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000)]
    )
    others = bench_others(lake, corpora["Metadata-heavy"], baseline, quick=args.quick)
    text = "\n".join(
        [
            f"Machine: {_machine()}. Command: `make bench` (`python bench/run.py"
            f"{' --quick' if args.quick else ''}`), {time.strftime('%Y-%m-%d')}; medians of "
            f"{repeat} whole-process runs, warm page cache. Corpora come from `kaudit generate`"
            " (seed 7): Metadata-heavy is the `metadata` profile, RequestResponse-heavy the"
            " `bodies` profile.",
            "",
            "### Loading",
            "",
            *loader,
            "",
            "### Peak memory against corpus size (Metadata-heavy)",
            "",
            *curve,
            "",
            "### The lake",
            "",
            *queries,
            "",
            "### Analyses",
            "",
            *others,
        ]
    )
    # The measured part of BENCHMARKS.md sits between two markers; the prose around it (where
    # the time goes, what limits it) is written by hand.
    out = OUT / "quick.md" if args.quick else REPO / "BENCHMARKS.md"
    old = out.read_text(encoding="utf-8") if out.exists() else f"{START}\n{END}\n"
    head, _, rest = old.partition(START)
    _, _, tail = rest.partition(END)
    out.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
