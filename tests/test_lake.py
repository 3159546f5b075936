"""The lake as a Delta table: versions, history, compaction, retention, upgrade, describe."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kaudit_analytics as ka
from kaudit_analytics import lake as lake_mod
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import commit as commit_mod
from kaudit_analytics.ingestion import loader


def _event(n: int, *, day: int = 11, user: str = "alice") -> str:
    return json.dumps(
        {
            "kind": "Event",
            "level": "Metadata",
            "auditID": f"00000000-0000-0000-0000-{n:012d}",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/default/pods/p{n}",
            "verb": "get",
            "user": {"username": user},
            "requestReceivedTimestamp": f"2024-09-{day:02d}T10:{n % 60:02d}:00.000001Z",
            "stageTimestamp": f"2024-09-{day:02d}T10:{n % 60:02d}:00.000201Z",
        }
    )


def _log(path: Path, numbers: range, **kwargs: Any) -> Path:
    path.write_text("".join(_event(n, **kwargs) + "\n" for n in numbers))
    return path


def _count(lake: Path, **kwargs: Any) -> int:
    return int(ka.scan(lake, **kwargs).select(pl.len()).collect().item())


# --- versions and history ------------------------------------------------------------------------


@pytest.mark.slow
def test_every_ingest_is_a_version_readable_later(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = ka.ingest(_log(tmp_path / "a.log", range(10)), lake)
    moment = dt.datetime.now(dt.UTC)
    second = ka.ingest(_log(tmp_path / "b.log", range(10, 25)), lake, cluster="dev")
    assert (first.version, second.version) == (1, 2)
    assert [_count(lake, version=v) for v in (0, 1, 2)] == [0, 10, 25]
    assert _count(lake, as_of=moment) == 10
    assert _count(lake, as_of=moment, cluster="dev") == 0
    with pytest.raises(lake_mod.LakeError, match="has no version 7: its versions run from 0 to 2"):
        ka.scan(lake, version=7)


def test_history_says_which_ingest_added_what_from_where(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = _log(tmp_path / "audit.log", range(30))
    ka.ingest(log, lake, cluster="prod")
    history = lake_mod.history(lake)
    row = history.row(0, named=True)
    assert (row["version"], row["operation"], row["cluster"]) == (1, "ingest", "prod")
    assert (row["events_added"], row["files_added"], row["sources"]) == (30, 1, 1)
    (source,) = lake_mod.commit_info(lake, 1)["sources"]
    assert source["source"] == str(log.resolve())
    assert (source["from_offset"], source["to_offset"]) == (0, log.stat().st_size)
    assert (source["from_line"], source["to_line"], source["events_added"]) == (1, 31, 30)


# --- concurrent commits ------------------------------------------------------------------------


def _another_writer_first(monkeypatch: pytest.MonkeyPatch, other: Path, lake: Path) -> None:
    """Just before this ingest commits its events, another ingest commits its own."""
    fired: list[str] = []

    def hook(point: str) -> None:
        if point == "events-checked" and not fired:
            fired.append(point)
            ka.ingest(other, lake)

    monkeypatch.setattr(commit_mod, "CHECKPOINT", hook)


@pytest.mark.slow
def test_a_commit_after_another_writer_checks_again_and_says_it_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    log = _log(tmp_path / "a.log", range(50))
    # The other writer loads half of the same events: the first one must not load them twice.
    other = _log(tmp_path / "b.log", range(25, 75))
    _another_writer_first(monkeypatch, other, lake)
    said: list[str] = []
    stats = ka.ingest(log, lake, progress=lambda p: said.append(p.waiting) if p.waiting else None)
    assert (stats.events_written, stats.duplicates) == (25, 25)
    assert _count(lake) == 75
    assert said
    assert "another writer committed" in said[0]
    assert stats.seconds_waiting > 0
    assert "after waiting" in stats.summary()
    assert stats.version == 2  # 0: created by this run; 1: the other writer's


@pytest.mark.slow
def test_no_wait_fails_at_the_first_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    _another_writer_first(monkeypatch, _log(tmp_path / "b.log", range(5)), lake)
    with pytest.raises(ka.LakeLockedError, match="another ingest is committing"):
        ka.ingest(_log(tmp_path / "a.log", range(10, 20)), lake, wait=False)
    assert _count(lake) == 5  # the other one's events; none of this one's staged files
    assert lake_mod.vacuum(lake, retention_hours=0, orphan_hours=0) == 0


def test_a_lake_stays_one_schema_for_every_reader(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ka.ingest(_log(tmp_path / "a.log", range(3)), lake)
    assert ka.scan(lake).collect_schema() == s.AUDIT_SCHEMA
    # delta-rs's own reader (what DuckDB's and Trino's Delta readers see too).
    from deltalake import DeltaTable

    table = DeltaTable(str(lake / "events")).to_pyarrow_table()
    assert table.num_rows == 3
    assert table.schema.field(s.EVENT_BYTES).type == pa.int64()
    assert sorted(table.column_names) == sorted(s.AUDIT_SCHEMA.names())


# --- byte sums past 2**31 ------------------------------------------------------------------------


@pytest.mark.slow
def test_byte_columns_are_int64_and_sums_do_not_wrap(tmp_path: Path) -> None:
    lake = lake_mod.locate(tmp_path / "lake")
    log = _log(tmp_path / "a.log", range(4))
    ka.ingest(log, lake.uri)
    files = lake_mod.files(lake.uri)
    table = pq.read_table(files[0])
    assert table.schema.field(s.EVENT_BYTES).type == pa.int64()
    # Make every event 1 GiB in the source: four of them are 4 GiB, past any int32.
    big = table.set_column(
        table.schema.get_field_index(s.EVENT_BYTES),
        s.EVENT_BYTES,
        pa.array(np.full(table.num_rows, 2**30, dtype=np.int64)),
    ).append_column(s.DATE, pa.array([dt.date(2024, 9, 11)] * table.num_rows))
    staged = lake_mod.stage_events(lake, "big", dt.date(2024, 9, 11), big.drop_columns([s.DATE]))
    table_ = lake_mod.writable_table(lake)
    lake_mod.commit(table_, adds=[staged])
    assert ka.describe(lake.uri).by_cluster[0].source_bytes == 4 * 2**30
    total = ka.scan(lake.uri, cluster="big").select(pl.col(s.EVENT_BYTES).sum()).collect().item()
    assert total == 4 * 2**30


# --- describe ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_describe_counts_per_cluster_with_quarantine(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = tmp_path / "a.log"
    log.write_text(_event(1) + "\n{broken\n" + _event(2) + "\n")
    ka.ingest(log, lake, cluster="prod")
    ka.ingest(_log(tmp_path / "b.log", range(10, 13), user="bob"), lake, cluster="dev")
    overview = ka.describe(lake)
    assert (overview.format, overview.version, overview.events) == ("delta", 2, 5)
    assert (overview.quarantined, overview.parquet_files, overview.users) == (1, 2, 2)
    rows = {c.cluster: (c.events, c.users, c.files, c.quarantined) for c in overview.by_cluster}
    assert rows == {"dev": (3, 1, 1, 0), "prod": (2, 1, 1, 1)}
    assert "Delta table, version 2" in overview.summary()
    assert json.loads(json.dumps(overview.to_dict(), default=str))["by_cluster"][0]["cluster"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no lake at .*: the folder does not exist"),
        ("foreign", "is not a lake: it holds other files"),
    ],
)
def test_reading_what_is_not_a_lake_is_one_sentence(
    tmp_path: Path, setup: str, message: str
) -> None:
    where = tmp_path / "somewhere"
    if setup == "foreign":
        where.mkdir()
        (where / "notes.txt").write_text("x")
    for read in (ka.scan, ka.describe, lake_mod.history):
        with pytest.raises(lake_mod.LakeError, match=message):
            read(where)


# --- compaction, retention, vacuum -----------------------------------------------------------


@pytest.mark.slow
def test_compaction_merges_small_files_and_keeps_every_event(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for hour in range(6):  # hourly loads: one small file per load and day
        ka.ingest(_log(tmp_path / f"h{hour}.log", range(hour * 20, hour * 20 + 20)), lake)
    before = ka.scan(lake).sort(s.AUDIT_ID).collect()
    stats = lake_mod.compact(lake)
    assert (stats.files_before, stats.files_after, stats.rows) == (6, 1, 120)
    assert len(lake_mod.files(lake)) == 1
    after = ka.scan(lake).sort(s.AUDIT_ID).collect()
    assert after.equals(before)
    assert pq.read_table(lake_mod.files(lake)[0])[s.REQUEST_TS].is_valid().to_pylist()
    assert pl.read_parquet(lake_mod.files(lake)[0])[s.REQUEST_TS].is_sorted()
    assert lake_mod.history(lake)["operation"][0] == "compact"
    # The replaced files stay for readers of older versions until vacuum.
    assert _count(lake, version=6) == 120
    assert lake_mod.vacuum(lake, retention_hours=0, orphan_hours=0) == 6
    assert lake_mod.compact(lake).files_before == 0
    # Ingest after compaction: deduplication still sees every stored event.
    again = ka.ingest(_log(tmp_path / "again.log", range(90, 130)), lake)
    assert (again.events_written, again.duplicates) == (10, 30)


@pytest.mark.slow
def test_retention_deletes_old_days_and_their_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ka.ingest(_log(tmp_path / "old.log", range(10), day=1), lake)
    ka.ingest(_log(tmp_path / "new.log", range(10, 30), day=20), lake)
    old = tmp_path / "bad.log"
    old.write_text("{broken\n")
    ka.ingest(old, lake)
    now = dt.datetime(2024, 9, 25, tzinfo=dt.UTC)
    dry = lake_mod.retain(lake, dt.timedelta(days=10), now=now, dry_run=True)
    assert (dry.events, dry.files, dry.partitions) == (10, 1, 1)
    assert _count(lake) == 30
    done = lake_mod.retain(lake, dt.timedelta(days=10), now=now)
    assert (done.events, done.cutoff) == (10, dt.date(2024, 9, 15))
    assert _count(lake) == 20
    assert not list((lake / "events").glob(f"{s.CLUSTER}=default/{s.DATE}=2024-09-01/*"))
    # The quarantine was recorded today, after the cutoff: kept.
    assert done.quarantined == 0
    later = lake_mod.retain(
        lake, dt.timedelta(days=0), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    )
    assert later.quarantined == 1
    assert lake_mod.scan_quarantine(lake).collect().is_empty()
    assert lake_mod.history(lake)["operation"][0] == "retain"


# --- lakes from before the table format -----------------------------------------------------------


def _legacy_lake(tmp_path: Path) -> tuple[Path, Path]:
    """A lake as the loader before the table format left it (int32 byte columns, sources.json)."""
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    log.write_text("".join(_event(n, day=11 + n % 2) + "\n" for n in range(40)) + "{broken\n")
    scratch = tmp_path / "scratch"
    ka.ingest(log, scratch, cluster="prod")
    lake = tmp_path / "legacy"
    for path in lake_mod.files(scratch):
        table = pq.read_table(path)
        for name in ("event_bytes", "request_object_bytes", "response_object_bytes"):
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, table[name].cast(pa.int32()))
        rel = Path(path).relative_to(scratch / "events")
        (lake / "events" / rel.parent).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, lake / "events" / rel.parent / "part-old.parquet")
    data = log.read_bytes()
    first = data.split(b"\n", 1)[0]
    fp = hashlib.sha256(b"prod\0" + first).hexdigest()[:32]
    stat = log.stat()
    sources = {
        fp: {
            "offset": len(data),
            "line": 42,
            "check_at": len(data) - len(b"{broken\n"),
            "check": hashlib.sha256(b"{broken\n").hexdigest(),
        },
        f"file:prod:{log.resolve()}": {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "fingerprint": fp,
            "end": len(data),
        },
    }
    (lake / "_kaudit").mkdir()
    (lake / "_kaudit" / "sources.json").write_text(json.dumps(sources))
    (lake / "_kaudit" / "lock").touch()
    (lake / "quarantine").mkdir()
    pl.DataFrame(
        {
            "source": [str(log.resolve())],
            "line": [41],
            "reason": ["invalid-json"],
            "detail": ["not valid JSON"],
            "raw": [b"{broken"],
        },
    ).write_parquet(lake / "quarantine" / "part-x.parquet")
    return lake, log


@pytest.mark.slow
def test_a_folder_lake_is_read_as_before_and_upgraded_in_place(tmp_path: Path) -> None:
    lake, log = _legacy_lake(tmp_path)
    assert lake_mod.state(lake) == "folder"
    assert _count(lake) == 40
    assert ka.scan(lake).collect_schema()[s.EVENT_BYTES] == pl.Int64
    assert ka.describe(lake).quarantined == 1
    with pytest.raises(lake_mod.LakeError, match="kaudit lake upgrade"):
        ka.ingest(log, lake, cluster="prod")
    files_before = sorted(p.name for p in (lake / "events").rglob("*.parquet"))
    done = lake_mod.upgrade(lake)
    assert (done.version, done.files, done.events, done.sources, done.quarantined) == (
        0,
        2,
        40,
        1,
        1,
    )
    assert lake_mod.state(lake) == "delta"
    # The files stayed where they were; every reader sees the same events.
    assert sorted(p.name for p in (lake / "events").rglob("*.parquet")) == files_before
    assert _count(lake) == 40
    assert lake_mod.scan_quarantine(lake).collect()["raw"].to_list() == [b"{broken"]
    # The sources' bookkeeping came along: nothing is read again.
    again = ka.ingest(log, lake, cluster="prod")
    assert (again.files_unchanged, again.events_written, again.quarantined) == (1, 0, 0)
    with log.open("a") as handle:
        handle.write(_event(99) + "\n")
    grown = ka.ingest(log, lake, cluster="prod")
    assert (grown.events_read, grown.events_written) == (1, 1)
    assert lake_mod.upgrade(lake).files == 0  # twice is harmless
    assert lake_mod.history(lake)["operation"].to_list()[-1] == "upgrade"


@pytest.mark.slow
def test_compaction_rewrites_old_int32_files_as_int64(tmp_path: Path) -> None:
    lake, _ = _legacy_lake(tmp_path)
    lake_mod.upgrade(lake)
    extra = _log(tmp_path / "x.log", range(100, 110), day=11)
    ka.ingest(extra, lake, cluster="prod")
    lake_mod.compact(lake)
    for path in lake_mod.files(lake, cluster="prod", since="2024-09-11", until="2024-09-12"):
        assert pq.read_schema(path).field(s.EVENT_BYTES).type == pa.int64()
    assert _count(lake) == 50


# --- the quarantine -----------------------------------------------------------------------------


@pytest.mark.slow
def test_quarantined_lines_are_retried_after_a_fix(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = tmp_path / "a.log"
    long_line = json.loads(_event(2))
    long_line["requestObject"] = {"blob": "x" * 5000}
    log.write_text(_event(1) + "\n" + json.dumps(long_line) + "\n{broken\n")
    first = ka.ingest(log, lake, max_line_bytes=2000, cluster="prod")
    assert (first.events_written, first.quarantined) == (1, 2)
    retried = loader.retry(lake, max_line_bytes=100_000)
    assert (retried.events_written, retried.quarantined) == (1, 1)
    left = lake_mod.scan_quarantine(lake).collect()
    assert left["reason"].to_list() == ["invalid-json"]
    row = ka.scan(lake).filter(pl.col(s.SOURCE_LINE) == 2).collect().row(0, named=True)
    assert (row[s.SOURCE_FILE], row[s.CLUSTER]) == (str(log.resolve()), "prod")
    # Retrying again changes nothing.
    assert loader.retry(lake).events_written == 0
    assert lake_mod.scan_quarantine(lake).collect().height == 1


def test_copy_of_a_lake_on_another_path_is_the_same_lake(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ka.ingest(_log(tmp_path / "a.log", range(5)), lake)
    shutil.move(lake, tmp_path / "moved")
    assert _count(tmp_path / "moved") == 5


@pytest.mark.slow
def test_an_ingest_reads_the_keys_of_the_stored_files_its_hours_meet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"

    def hour(name: str, first: int, at: int, numbers: range | None = None) -> Path:
        lines = []
        for n in numbers or range(first, first + 10):
            event = json.loads(_event(n))
            stamp = f"2024-09-11T{at:02d}:{n % 60:02d}:00.000001Z"
            event["requestReceivedTimestamp"] = event["stageTimestamp"] = stamp
            lines.append(json.dumps(event))
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    ka.ingest(hour("h10.log", 0, 10), lake)
    ka.ingest(hour("h11.log", 10, 11), lake)
    read: list[list[str]] = []
    keys = lake_mod.read_keys

    def counting(where: Any, name: str, rels: Any) -> Any:
        read.append(list(rels))
        return keys(where, name, rels)

    monkeypatch.setattr(lake_mod, "read_keys", counting)
    assert ka.ingest(hour("h12.log", 20, 12), lake).events_written == 10
    assert read == []  # hour 12 meets no stored hour
    # Some of hour 11's events again, and new ones: only hour 11's file is read.
    again = hour("h11-late.log", 0, 11, numbers=range(15, 20))
    new = hour("h11-new.log", 0, 11, numbers=range(100, 105))
    again.write_text(again.read_text() + new.read_text())
    late = ka.ingest(again, lake)
    assert (late.events_written, late.duplicates) == (5, 5)
    assert len(read) == 1
    assert len(read[0]) == 1
