"""Issue 14: a polars panic inside one control's query.

polars' streaming engine panics ("assertion failed: i < self.len()", in a string function)
when it evaluates ``concat_str``/``format`` over a filtered frame whose columns are split in
several chunks, as a scan of several Parquet files gives them; a report over two generated
2 M-event corpora hit it in ``impersonation``. Reports now assess contiguous slices, and a
failing query of one control leaves the others assessed (``test_report.py``).

Minimal reproduction (polars 2.1.0)::

    import polars as pl
    a = pl.DataFrame({"x": ["a"] * 7, "y": ["b"] * 7, "keep": [False] * 7})
    b = pl.DataFrame(
        {"x": ["c"] * 38, "y": [None] * 38, "keep": [True, True] + [False] * 36},
        schema_overrides={"y": pl.String},
    )
    df = pl.concat([a, b], rechunk=False)
    df.lazy().filter("keep").select(
        pl.format("{}/{}", pl.col("x").fill_null("-"), pl.col("y").fill_null("-"))
    ).collect(engine="streaming")  # PanicException; fine after df.rechunk() or in-memory
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import kaudit_analytics as ka
from kaudit_analytics import compliance as c
from kaudit_analytics import report as r
from tests.paths import FIXTURES


@pytest.mark.slow
def test_a_day_read_from_several_files_is_assessed_whole(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    folders = ("configmap-change", "service-change", "impersonation", "secret-write")
    for folder in folders:  # one file per ingest: several Parquet files in one partition
        ka.ingest([FIXTURES / "controls" / folder / "hit.jsonl"], lake)
    day = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    report = r.report_from_lake(lake, c.Window(day, day + dt.timedelta(days=1)))
    assert dict(report.errors) == {}
    found = {row.control.id: row.result.findings for row in report.rows}
    assert all(found[folder] >= 1 for folder in folders)


@pytest.mark.slow
def test_two_generated_corpora_of_two_million_events(tmp_path: Path) -> None:
    """The size that triggered it: ``kaudit generate --events 2000000 --seed 7``, then
    ``--seed 8 --start 2024-09-12T00:00:00Z``, each ingested; report 2024-09-12 to 14."""
    from kaudit_analytics.sample import generate

    lake = tmp_path / "lake"
    for seed, start in ((7, None), (8, "2024-09-12T00:00:00Z")):
        log = tmp_path / f"corpus-{seed}.log"
        generate(log, events=2_000_000, seed=seed, start=start)
        ka.ingest([log], lake)
        log.unlink()
    window = r.parse_window("2024-09-12", "2024-09-14", now=dt.datetime.now(dt.UTC))
    report = r.report_from_lake(lake, window)
    assert dict(report.errors) == {}
    assert {row.control.id: row.result.status for row in report.rows}["impersonation"] == "fail"
