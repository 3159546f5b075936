"""Make staged loads visible in the lake: one short commit, retried against other writers.

A stager (one ``kaudit ingest``, or one Spark task) parses its sources without any lock and
writes their events as Parquet files the table does not list yet, deduplicated against the
table *as it was when the stager started* (its base version). This module commits one or
several staged loads in one transaction:

1. **Duplicates against what others committed meanwhile.** Files that appeared in a touched
   partition since a stager's base version (other ingests), and files staged by the stagers
   committed before it in the same transaction, are compared with its rows on
   (``audit_id``, ``stage``); staged files holding such a row are rewritten without it.
2. **The quarantine first, exactly once.** Bad lines go to the quarantine table with, per source
   stream, how far its bad lines are recorded (a ``txn``); a retry after a crash between this
   commit and the next one skips the lines already recorded.
3. **The events with the sources' offsets, in one commit.** Every staged file, and per source
   stream how far it is loaded (byte offset, line number, resume check) as ``txn`` actions, plus a
   record for ``kaudit lake history``. Data and bookkeeping change together: a crash before this
   commit leaves nothing visible, and after it everything.

When another writer commits between step 1 and step 3, the log refuses this commit
(``CommitConflictError``); the steps run again against the new version, checking only what is
new. ``checkpoint`` names the points a test stops a process at (see ``tests/ingestion``).
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from kaudit_analytics import lake as _lake
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import dedupe as _dedupe

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["Staged", "StreamState", "checkpoint", "commit"]

#: Called with the name of each point an ingest passes: ``parsed`` (a group of lines parsed),
#: ``staged`` (a Parquet file staged), ``staged-all``, ``committing``, ``quarantine-committed``,
#: ``events-checked`` (about to commit the events) and ``committed``. Tests set it to stop a
#: process at a known point (``kill -9`` itself, deterministically) or to let another writer
#: commit first; it is None otherwise.
CHECKPOINT: Callable[[str], None] | None = None

#: Longest pause between two attempts when other writers keep committing first.
_MAX_BACKOFF: Final = 2.0


def checkpoint(point: str) -> None:
    """Tell the test hook (if any) that an ingest reached ``point``."""
    if CHECKPOINT is not None:
        CHECKPOINT(point)


@dataclass(frozen=True)
class StreamState:
    """How far one source stream (a log, known by its first line's fingerprint) is loaded.

    ``offset`` and ``line`` are where the next read starts (decompressed bytes, next line number);
    ``check_at``/``check`` identify the last loaded line (its offset, and a 63-bit hash of it) so
    that a different log starting with the same line is not resumed at this one's offset.
    ``start`` is where this load started (0 or the committed offset).
    """

    offset: int
    line: int
    check_at: int = 0
    check: int | None = None
    start: int = 0

    def txns(self, fp: str) -> dict[str, int]:
        out = {
            _lake.stream_app(fp, "offset"): self.offset,
            _lake.stream_app(fp, "line"): self.line,
        }
        if self.check is not None:
            out[_lake.stream_app(fp, "check_at")] = self.check_at
            out[_lake.stream_app(fp, "check")] = self.check
        return out


def committed_stream(table: DeltaTable | None, fp: str) -> StreamState | None:
    """A stream's state as the table's log records it, or None when it was never loaded."""
    offset = _lake.txn(table, _lake.stream_app(fp, "offset"))
    if offset is None:
        return None
    return StreamState(
        offset=offset,
        line=_lake.txn(table, _lake.stream_app(fp, "line")) or 1,
        check_at=_lake.txn(table, _lake.stream_app(fp, "check_at")) or 0,
        check=_lake.txn(table, _lake.stream_app(fp, "check")),
        start=offset,
    )


@dataclass
class Staged:
    """One stager's work, ready to commit (picklable: Spark tasks hand it to the driver).

    ``known`` lists, per partition day, the files whose keys the stager deduplicated against;
    ``quarantine`` holds the bad lines with ``stream`` (the stream fingerprint) and ``offset``.
    """

    cluster: str
    base_version: int | None
    files: list[_lake.StagedFile] = field(default_factory=list)
    known: dict[dt.date, set[str]] = field(default_factory=dict)
    quarantine: pl.DataFrame | None = None
    streams: dict[str, StreamState] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    events_written: int = 0
    duplicates: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class Committed:
    """What a commit did, beyond what was staged."""

    version: int | None
    events_written: int
    duplicates: int
    quarantined: int
    seconds: float
    waited: float
    attempts: int


def _day(file: _lake.StagedFile) -> dt.date:
    return dt.date.fromisoformat(dict(file.partition)[s.DATE])


def _foreign_index(
    lake: _lake.Location, rels: list[str], index: _dedupe.KeyIndex | None
) -> _dedupe.KeyIndex | None:
    if not rels:
        return index
    hashes = _lake.read_keys(lake, _lake.EVENTS, rels).select(_dedupe.HASHES).collect()
    out = index or _dedupe.KeyIndex()
    out.add(hashes["h1"].to_numpy(), hashes["h2"].to_numpy())
    return out


def _overlaps(span: tuple[Any, Any], mine: list[tuple[dt.datetime, dt.datetime] | None]) -> bool:
    first, last = span
    known = [m for m in mine if m is not None]
    if first is None or last is None or len(known) < len(mine):
        return True  # a file without a time range: compare it
    return any(low <= last and first <= high for low, high in known)


def _drop_duplicates(
    lake: _lake.Location, table: DeltaTable, loads: Sequence[Staged], checked: dict[Any, set[str]]
) -> int:
    """Rewrite staged files without rows others committed or earlier loads staged; count them.

    ``checked`` remembers, per (load, partition), which foreign files were compared already, so
    an attempt after a conflict reads only the files committed since the previous one.
    """
    clusters = {load.cluster for load in loads}
    live = _lake.data_files(table, clusters=clusters)
    by_partition: dict[tuple[str, dt.date], set[str]] = {}
    spans: dict[str, tuple[Any, Any]] = {}
    for cluster, day, path, first, last in live.select(
        s.CLUSTER, s.DATE, "path", "first", "last"
    ).iter_rows():
        by_partition.setdefault((cluster, day), set()).add(path)
        spans[path] = (first, last)
    dropped = 0
    earlier: dict[tuple[str, dt.date], list[_lake.StagedFile]] = {}
    for number, load in enumerate(loads):
        own = {f.path for f in load.files}
        for day in sorted({_day(f) for f in load.files}):
            where = (load.cluster, day)
            seen = checked.setdefault((number, where), set())
            new = sorted(by_partition.get(where, set()) - load.known.get(day, set()) - own - seen)
            seen.update(new)
            # Only files whose time range meets this load's can hold one of its events.
            mine = [f.span for f in load.files if _day(f) == day]
            index = _foreign_index(lake, [p for p in new if _overlaps(spans[p], mine)], None)
            for other in earlier.get(where, []):
                index = index or _dedupe.KeyIndex()
                index.add(*other.keys)
            if index is None:
                continue
            kept: list[_lake.StagedFile] = []
            for file in load.files:
                if _day(file) != day:
                    kept.append(file)
                    continue
                keep = ~index.contains(*file.keys)
                dropped_here = int((~keep).sum())
                if dropped_here:
                    load.duplicates += dropped_here
                    load.events_written -= dropped_here
                    dropped += dropped_here
                again = _lake.restage(lake, file, keep)
                if again is not None:
                    kept.append(again)
            load.files = kept
        for file in load.files:
            earlier.setdefault((load.cluster, _day(file)), []).append(file)
    return dropped


def _stream_txns(table: DeltaTable, loads: Sequence[Staged]) -> dict[str, int]:
    """The streams' new states, where this commit takes them further than the log has them."""
    txns: dict[str, int] = {}
    best: dict[str, StreamState] = {}
    for load in loads:
        for fp, state in load.streams.items():
            if fp not in best or state.offset > best[fp].offset:
                best[fp] = state
        for app, mark in load.marks.items():
            txns[app] = mark
    for fp, state in best.items():
        committed = _lake.txn(table, _lake.stream_app(fp, "offset"))
        if committed is None or state.offset > committed:
            txns.update(state.txns(fp))
    return txns


def _quarantine_rows(loads: Sequence[Staged]) -> pl.DataFrame | None:
    frames = [
        load.quarantine.with_columns(pl.lit(number).alias("load"))
        for number, load in enumerate(loads)
        if load.quarantine is not None and not load.quarantine.is_empty()
    ]
    return pl.concat(frames, how="vertical_relaxed") if frames else None


def _commit_quarantine(
    lake: _lake.Location, rows: pl.DataFrame, ends: dict[str, int], wait: Callable[[int], float]
) -> dict[int, int]:
    """Record bad lines not recorded yet, exactly once; return how many per load.

    Per stream, the quarantine table's ``txn`` says up to which byte offset its bad lines are
    recorded: past the stream's loaded offset, and past every line recorded now.
    """
    attempt = 0
    reach = dict(rows.group_by("stream").agg(pl.col("offset").max() + 1).iter_rows())
    while True:
        table = _lake.writable_table(lake, _lake.QUARANTINE)
        done = {
            fp: _lake.txn(table, _lake.stream_app(fp, "quarantined"))
            for fp in rows["stream"].unique().to_list()
        }
        recorded = {fp: -1 if at is None else at for fp, at in done.items()}
        fresh = rows.filter(
            pl.col("offset") >= pl.col("stream").replace_strict(recorded, default=-1)
        )
        if fresh.is_empty():
            return {}
        staged = _lake.stage_quarantine(lake, fresh)
        txns = {
            _lake.stream_app(fp, "quarantined"): max(ends.get(fp, 0), reach[fp])
            for fp in fresh["stream"].unique().to_list()
        }
        try:
            _lake.commit(
                table,
                _lake.QUARANTINE,
                adds=[staged],
                txns=txns,
                info={"operation": "ingest", "rows": fresh.height},
            )
        except _lake.CommitConflictError:
            _lake.discard(lake, [staged])
            attempt += 1
            wait(attempt)
            continue
        except BaseException:
            _lake.discard(lake, [staged])
            raise
        return dict(fresh.group_by("load").len().iter_rows())


def _backoff(attempt: int) -> float:
    jitter = 0.5 + random.random()  # noqa: S311 - spreads retries, not a secret
    return float(min(_MAX_BACKOFF, 0.05 * 2.0**attempt) * jitter)


def commit(
    lake: _lake.Location,
    loads: Sequence[Staged],
    *,
    wait: bool = True,
    waiting: Callable[[str], None] | None = None,
    run: str | None = None,
) -> Committed:
    """Commit staged loads (see the module's docstring); the staged files are gone on failure.

    Raises
    ------
    kaudit_analytics.lake.LakeLockedError
        When ``wait`` is False and another writer committed first.
    kaudit_analytics.lake.LakeError
        When the lake cannot be written.
    """
    began = time.perf_counter()
    waited = 0.0

    def pause(attempt: int) -> float:
        nonlocal waited
        if not wait:
            msg = f"another ingest is committing to the lake at {lake}; try again when it is done"
            raise _lake.LakeLockedError(msg)
        if waiting is not None:
            waiting(f"another writer committed to {lake} first; checking again (attempt {attempt})")
        pause_for = _backoff(attempt)
        time.sleep(pause_for)
        waited += pause_for
        return pause_for

    try:
        checkpoint("committing")
        rows = _quarantine_rows(loads)
        recorded: dict[int, int] = {}
        if rows is not None:
            ends = {fp: st.offset for load in loads for fp, st in load.streams.items()}
            recorded = _commit_quarantine(lake, rows, ends, pause)
        for number, load in enumerate(loads):
            load.quarantined = recorded.get(number, 0)
        quarantined = sum(recorded.values())
        checkpoint("quarantine-committed")
        version, attempts = _commit_events(lake, loads, pause, run or uuid.uuid4().hex, quarantined)
    except BaseException:
        _lake.discard(lake, [f for load in loads for f in load.files])
        raise
    checkpoint("committed")
    return Committed(
        version=version,
        events_written=sum(load.events_written for load in loads),
        duplicates=sum(load.duplicates for load in loads),
        quarantined=quarantined,
        seconds=time.perf_counter() - began - waited,
        waited=waited,
        attempts=attempts,
    )


def _commit_events(
    lake: _lake.Location,
    loads: Sequence[Staged],
    pause: Callable[[int], float],
    run: str,
    quarantined: int,
) -> tuple[int | None, int]:
    checked: dict[Any, set[str]] = {}
    attempt = 0
    while True:
        attempt += 1
        table = _lake.writable_table(lake)
        _drop_duplicates(lake, table, loads, checked)
        txns = _stream_txns(table, loads)
        adds = [f for load in loads for f in load.files]
        if not adds and not txns:
            return None, attempt
        info = {
            "operation": "ingest",
            "run": run,
            "cluster": ",".join(sorted({load.cluster for load in loads})),
            "files_added": len(adds),
            "events_added": int(sum(f.rows for f in adds)),
            "duplicates": sum(load.duplicates for load in loads),
            "quarantined": quarantined,
            "sources": [src for load in loads for src in load.sources],
        }
        checkpoint("events-checked")
        try:
            return _lake.commit(table, adds=adds, txns=txns, info=info), attempt
        except _lake.CommitConflictError:
            pause(attempt)
