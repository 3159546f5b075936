"""Time every aggregate behind ``notebooks/explore.ipynb`` over a large lake.

    .venv/bin/python bench/bench_explore.py                    # 2 M events, best of 3
    .venv/bin/python bench/bench_explore.py --notebook         # also run the notebook end to end
    .venv/bin/python bench/bench_explore.py --events 200000 --repeat 1

The lake is generated once (``kaudit_analytics.sample``, profile ``metadata``, seed 1) and
ingested into ``--lake`` (default ``build/bench/explore-<events>``), then reused. Each step is
the call the notebook makes, collected; the table (Markdown, for BENCHMARKS.md) gives the
best and the median of ``--repeat`` runs and the rows each step returns. ``--notebook``
executes the notebook with nbclient against the lake: kernel start, imports, every cell,
and the one-off bundling of vega/vega-lite/vega-embed for offline charts included.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

import kaudit_analytics as ka
from kaudit_analytics import activity, exprs
from kaudit_analytics.sample import generate
from kaudit_analytics.schema import NAME, NAMESPACE, RESOURCE, USER

ROOT = Path(__file__).resolve().parents[1]


def build_lake(lake: Path, events: int) -> None:
    if (lake / "events").exists():
        return
    lake.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lake.parent) as tmp:
        raw = Path(tmp) / "audit.log"
        start = time.perf_counter()
        generated = generate(raw, events=events, seed=1, profile="metadata")
        made = time.perf_counter() - start
        start = time.perf_counter()
        stats = ka.ingest(raw, lake)
        print(
            f"<!-- generated {generated.events:,} events ({generated.bytes / 1e9:.2f} GB) in "
            f"{made:.0f} s, ingested in {time.perf_counter() - start:.0f} s: "
            f"{stats.events_written:,} events -->"
        )


def drill_targets(events: pl.LazyFrame) -> tuple[str, tuple[str, str, str]]:
    """The busiest human and the busiest named namespaced object (not timed)."""
    user = (
        events.filter(exprs.IS_HUMAN)
        .group_by(USER)
        .len()
        .sort("len", USER, descending=[True, False])
        .collect()
    )
    obj = (
        events.filter(pl.col(NAME).is_not_null() & pl.col(NAMESPACE).is_not_null())
        .group_by(RESOURCE, NAMESPACE, NAME)
        .len()
        .sort("len", RESOURCE, NAMESPACE, NAME, descending=[True, False, False, False])
        .head(1)
        .collect()
    )
    resource, namespace, name, _ = obj.row(0)
    return (user[USER][0] if user.height else "nobody"), (resource, namespace, name)


def steps(lake: Path, user: str, target: tuple[str, str, str]) -> dict[str, Callable[[], int]]:
    """One entry per notebook cell that touches data, in notebook order; each returns rows."""
    events = ka.scan(lake)
    state: dict[str, pl.LazyFrame] = {}
    resource, namespace, name = target

    def cube() -> int:
        frame = activity.activity_cube(events).collect()
        state["cube"] = frame.lazy()
        return frame.height

    def rows(make: Callable[[], pl.LazyFrame]) -> Callable[[], int]:
        return lambda: make().collect().height

    def history() -> int:
        frame = activity.object_history(
            events, resource=resource, namespace=namespace, name=name
        ).collect()
        return activity.object_changes(frame).height

    return {
        "summary": rows(lambda: activity.summary(events)),
        "activity_cube (one pass)": cube,
        "top_talkers (cube)": rows(lambda: activity.top_talkers(state["cube"], top=15)),
        "activity_by_user_and_verb (cube)": rows(
            lambda: activity.activity_by_user_and_verb(state["cube"], top=25)
        ),
        "activity_by_namespace_and_user (cube)": rows(
            lambda: activity.activity_by_namespace_and_user(state["cube"], top_users=25)
        ),
        "activity_by_resource_and_verb (cube)": rows(
            lambda: activity.activity_by_resource_and_verb(state["cube"], top=25)
        ),
        "top_talkers by bytes (cube)": rows(
            lambda: activity.top_talkers(state["cube"], by="bytes")
        ),
        "activity_by_hour_and_weekday": rows(lambda: activity.activity_by_hour_and_weekday(events)),
        "request_rate": rows(lambda: activity.request_rate(events)),
        "response_codes": rows(lambda: activity.response_codes(events)),
        "latency_histogram": rows(lambda: activity.latency_histogram(events)),
        "latency_percentiles by resource": rows(
            lambda: activity.latency_percentiles(events, by="resource")
        ),
        "long_running_sessions top 20": rows(
            lambda: activity.long_running_sessions(events, top=20)
        ),
        "actor_activity": rows(lambda: activity.actor_activity(events, user=user)),
        "object_history + object_changes": history,
        # Without the cube: what each heatmap costs on its own, for comparison.
        "(activity_by_user_and_verb on events)": rows(
            lambda: activity.activity_by_user_and_verb(events, top=25)
        ),
    }


def run_notebook(lake: Path, user: str, target: tuple[str, str, str]) -> float:
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "explore.ipynb"
    # nbformat has no type annotations, hence the two ignores.
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    resource, namespace, name = target
    params = (
        f"lake = {str(lake)!r}\nuser = {user!r}\nobject_resource = {resource!r}\n"
        f"object_namespace = {namespace!r}\nobject_name = {name!r}"
    )
    index = next(
        i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    )
    cell = nbformat.v4.new_code_cell(params)  # type: ignore[no-untyped-call]
    notebook.cells.insert(index + 1, cell)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--lake", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--notebook", action="store_true", help="also run explore.ipynb")
    args = parser.parse_args()
    lake = args.lake or ROOT / "build" / "bench" / f"explore-{args.events}"
    build_lake(lake, args.events)
    events = ka.scan(lake)
    total_events = events.select(pl.len()).collect().item()
    user, target = drill_targets(events)

    timings: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    for _ in range(args.repeat):
        for label, step in steps(lake, user, target).items():
            start = time.perf_counter()
            sizes[label] = step()
            timings.setdefault(label, []).append(time.perf_counter() - start)

    print(
        f"explore.ipynb aggregates over {total_events:,} events "
        f"(polars {pl.__version__}, {os.cpu_count()} CPUs, {platform.python_version()}), "
        f"best and median of {args.repeat}:\n"
    )
    print("| step | rows out | best (s) | median (s) |")
    print("|---|---:|---:|---:|")
    notebook_total = 0.0
    for label, runs in timings.items():
        if not label.startswith("("):
            notebook_total += min(runs)
        print(f"| {label} | {sizes[label]:,} | {min(runs):.2f} | {statistics.median(runs):.2f} |")
    print(f"| **all notebook aggregates** | | **{notebook_total:.2f}** | |")
    if args.notebook:
        wall = run_notebook(lake, user, target)
        print(f"| **explore.ipynb end to end (nbclient, fresh kernel)** | | **{wall:.2f}** | |")
    print(f"\nDrill-down targets: user `{user}`, object `{'/'.join(target)}`.")


if __name__ == "__main__":
    main()
