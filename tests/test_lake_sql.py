"""The lake's own span and its SQL view (``lake.span``, ``lake.connect``, ``lake.export``)."""

from __future__ import annotations

import datetime as dt
import json
from datetime import UTC
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kaudit_analytics as ka
from kaudit_analytics import lake as kl


def test_span_is_the_first_to_just_after_the_last_event(sample_lake: Path) -> None:
    window = kl.span(sample_lake)
    times = ka.scan(sample_lake).select("request_ts").collect()["request_ts"]
    assert window.since == times.min()
    assert window.until == times.max() + dt.timedelta(microseconds=1)  # type: ignore[operator]
    # Scanning the span reads every event.
    assert ka.scan(sample_lake, since=window.since, until=window.until).collect().height == len(
        times
    )


def test_span_errors(sample_lake: Path, tmp_path: Path) -> None:
    with pytest.raises(ka.LakeError, match="no lake at"):
        kl.span(tmp_path)
    with pytest.raises(ka.LakeError, match="holds no events of cluster prod, test"):
        kl.span(sample_lake, cluster=["prod", "test"])


def test_the_events_view_is_the_scan(sample_lake: Path) -> None:
    since, until = "2024-09-11T06:00:00Z", "2024-09-11T07:00:00Z"
    con = kl.connect(sample_lake, since=since, until=until)
    got = pl.from_arrow(con.sql("SELECT * FROM events").to_arrow_table())
    assert isinstance(got, pl.DataFrame)
    expected = ka.scan(sample_lake, since=since, until=until).collect()
    assert got.columns == expected.columns
    assert got.height == expected.height > 0
    some = ("audit_id", "stage", "verb", "user", "request_ts", "event_bytes", "cluster")
    order = ("audit_id", "stage")
    assert_frame_equal(
        got.select(some).cast({"stage": pl.String}).sort(order),
        expected.select(some).cast({"stage": pl.String}).sort(order),
        check_dtypes=False,
    )


def test_the_view_filters_clusters_and_is_empty_outside_the_lake(sample_lake: Path) -> None:
    count = "SELECT count(*) FROM events"
    assert kl.connect(sample_lake, cluster="default").sql(count).fetchall() == [(20_000,)]
    assert kl.connect(sample_lake, cluster="prod").sql(count).fetchall() == [(0,)]
    late = kl.connect(sample_lake, since=dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert late.sql(count).fetchall() == [(0,)]
    # An empty view still has the table's columns.
    assert len(late.sql("SELECT * FROM events").columns) == len(ka.AUDIT_SCHEMA)


def test_connect_refuses_what_is_not_a_lake(tmp_path: Path) -> None:
    with pytest.raises(ka.LakeError, match="no lake at"):
        kl.connect(tmp_path)


def test_export_streams_a_query_to_a_file(sample_lake: Path, tmp_path: Path) -> None:
    con = kl.connect(sample_lake)
    query = "SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY verb;"
    assert kl.export(con, query, tmp_path / "verbs.json") == 7
    rows = json.loads((tmp_path / "verbs.json").read_text(encoding="utf-8"))
    expected = ka.scan(sample_lake).group_by("verb").len().sort("verb").collect()
    assert [(row["verb"], row["n"]) for row in rows] == expected.rows()
    with pytest.raises(ValueError, match=r"cannot export to verbs\.txt"):
        kl.export(con, query, tmp_path / "verbs.txt")
    with pytest.raises(duckdb.Error):
        kl.export(con, "SELEC 1", tmp_path / "bad.csv")
