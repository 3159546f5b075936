"""Load audit logs into the lake: the only code that reads raw logs.

An ingest has two steps. **Staging** takes no lock: each source is read in blocks of complete
lines (the blocks of several small files are parsed together), parsed in DuckDB, redacted,
stamped with where it came from, deduplicated on (``audit_id``, ``stage``) against the table as
it was when the run started and against the run so far, and buffered per day; buffers are
written as Parquet files the table does not list yet when they grow large. **The commit**
(``commit``) then makes every staged file, the quarantined lines and how far each source was
loaded visible at once, after checking for events that other writers committed meanwhile.
A crash before the commit leaves nothing visible (the next run redoes the work); after it, the
next run starts where this one ended. Several ingests, of several clusters, run at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kaudit_analytics import lake as _lake
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import commit as _commit
from kaudit_analytics.ingestion import dedupe as _dedupe
from kaudit_analytics.ingestion import discover as _discover
from kaudit_analytics.ingestion import formats as _formats
from kaudit_analytics.ingestion import lines as _lines
from kaudit_analytics.ingestion import parse as _parse
from kaudit_analytics.ingestion import redact as _redact

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["FORMATS", "IngestError", "IngestStats", "Problem", "Progress", "ingest", "stage"]

#: Formats ``--format`` can force; by default each line's format is recognised.
FORMATS: Final = _formats.FORMATS

#: Write buffered events once they hold this many bytes of source text (bounds memory).
FLUSH_BYTES: Final = 64 * 1024 * 1024
#: Lines of small files are parsed together until a batch holds this many bytes: one DuckDB
#: query costs about 10 ms to bind and start whatever its size, which was most of the time a
#: small file took (86 files of 50 lines in 7.9 s).
PARSE_BYTES: Final = 8 * 1024 * 1024
#: A file that does not start with a complete JSON line is read whole as one JSON document
#: (a pretty-printed event or EventList) when it is at most this big.
MAX_DOCUMENT_BYTES: Final = 256 * 1024 * 1024

_FINGERPRINT_BYTES: Final = 64 * 1024
#: Bytes of a file kept in a file-level quarantine record (the whole file stays where it is).
_FILE_HEAD_BYTES: Final = 4096

# How each quarantine reason reads in a summary sentence.
_REASONS: Final = {
    "invalid-json": "not valid JSON",
    "not-an-event": "valid JSON but not an audit event",
    "missing-fields": "missing required audit fields",
    "unknown-stage": "an unknown stage",
    "unknown-level": "an unknown level",
    "invalid-utf8": "not valid UTF-8",
    "line-too-long": "longer than the line-size limit",
    "truncated-gzip": "cut off by a truncated gzip stream",
    "empty-file": "empty",
    "unknown-format": "not a JSON audit log",
}
# Reasons whose first detail the summary repeats (the limit that was exceeded).
_SHOW_DETAIL: Final = ("line-too-long",)

_QUARANTINE_COLUMNS: Final = pl.Schema(
    {
        "source": pl.String,
        "stream": pl.String,
        "line": pl.Int64,
        "offset": pl.Int64,
        "reason": pl.String,
        "detail": pl.String,
        "raw": pl.Binary,
    }
)


class IngestError(Exception):
    """A user error that stops an ingest before it starts (missing path, bad option)."""


@dataclass(frozen=True)
class Problem:
    """One kind of bad input met in a run: how often, and the first place it was seen."""

    reason: str
    count: int
    example: str
    detail: str = ""

    def sentence(self) -> str:
        what = _REASONS.get(self.reason, self.reason)
        noun = "line was" if self.count == 1 else "lines were"
        if self.reason in ("empty-file", "unknown-format"):
            noun = "file was" if self.count == 1 else "files were"
        first = f"{self.example}: {self.detail}" if self.reason in _SHOW_DETAIL else self.example
        return f"{self.count:,} {noun} {what} and quarantined (first: {first})."


@dataclass(frozen=True)
class Progress:
    """How far a running ingest is, as handed to its ``progress`` callback (running totals).

    ``waiting`` is set while the ingest waits for other writers' commits (not counted in its
    events/s): it says so in a sentence.
    """

    files_done: int
    files: int
    bytes_read: int
    events_read: int
    waiting: str | None = None


@dataclass(frozen=True)
class IngestStats:
    """What one ``ingest`` run did.

    ``seconds`` is the run's own time: time spent waiting for other writers' commits is
    ``seconds_waiting``, apart; ``seconds_committing`` is the part of ``seconds`` the final
    commit took. ``version`` is the table version the run committed (None: nothing to commit).
    """

    lake: str
    files: int
    files_unchanged: int
    bytes_read: int
    events_read: int
    events_written: int
    duplicates: int
    quarantined: int
    partial_lines: int
    partitions: tuple[str, ...]
    problems: tuple[Problem, ...]
    seconds: float
    #: Records that are not Kubernetes audit data (other Azure or GCP logs, other AKS
    #: categories, non-audit CloudWatch streams): counted, neither loaded nor quarantined.
    skipped: int = 0
    skipped_by_kind: tuple[tuple[str, int], ...] = ()
    #: Files that plainly are not logs (a README, a policy, a table): counted, not read.
    files_skipped: int = 0
    files_skipped_by_kind: tuple[tuple[str, int, str], ...] = ()
    version: int | None = None
    seconds_waiting: float = 0.0
    seconds_committing: float = 0.0

    def summary(self) -> str:
        """A few human lines: what was loaded, skipped and quarantined."""
        rate = self.events_read / self.seconds if self.seconds > 0 else 0.0
        waited = (
            f", after waiting {self.seconds_waiting:.1f} s for other writers"
            if self.seconds_waiting >= 0.05
            else ""
        )
        version = f" (table version {self.version})" if self.version is not None else ""
        lines = [
            f"Read {self.files} file(s) ({self.bytes_read / 1e6:,.1f} MB, "
            f"{self.files_unchanged} unchanged since the last run) in {self.seconds:.1f} s "
            f"({rate:,.0f} events/s){waited}.",
            f"Events: {self.events_written:,} new, {self.duplicates:,} duplicate, "
            f"{self.quarantined:,} quarantined, into {len(self.partitions)} partition(s) of "
            f"{self.lake}{version}.",
        ]
        if self.partial_lines:
            lines.append(
                f"{self.partial_lines} file(s) end in an incomplete line, left for the next run."
            )
        if self.skipped:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in self.skipped_by_kind)
            lines.append(
                f"{self.skipped:,} record(s) were not Kubernetes audit data and skipped ({kinds})."
            )
        if self.files_skipped:
            kinds = "; ".join(
                f"{what}: {count:,} (first: {example})"
                for what, count, example in self.files_skipped_by_kind
            )
            lines.append(f"{self.files_skipped:,} file(s) are not logs and were skipped ({kinds}).")
        lines.extend(problem.sentence() for problem in self.problems)
        return "\n".join(lines)


@dataclass(frozen=True)
class _Block:
    """A block of complete lines and where it sits in its source."""

    data: bytes | memoryview
    first_line: int
    start: int
    fp: str
    fmt: str
    source: str
    label: str | None = None


_Group = list[tuple[_Block, _lines.LineBatch]]


@dataclass
class _Run:
    """Mutable state of one staging run (never leaves this module)."""

    lake: _lake.Location
    cluster: str
    keep_secrets: bool
    max_line_bytes: int
    progress: Callable[[Progress], None] | None
    parser: _parse.Parser
    table: DeltaTable | None
    threads: int
    pending: dict[str, _commit.StreamState] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    buffer: dict[dt.date, list[tuple[pa.Table, np.ndarray, np.ndarray]]] = field(
        default_factory=dict
    )
    buffered_bytes: int = 0
    quarantine: list[pl.DataFrame] = field(default_factory=list)
    keys: dict[dt.date, _dedupe.KeyIndex] = field(default_factory=dict)
    known: dict[dt.date, set[str]] = field(default_factory=dict)
    stored: dict[dt.date, pl.DataFrame] = field(default_factory=dict)
    staged: list[_lake.StagedFile] = field(default_factory=list)
    partitions: set[str] = field(default_factory=set)
    problems: dict[str, list[Any]] = field(default_factory=dict)
    bytes_read: int = 0
    events_read: int = 0
    events_written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    partial: set[str] = field(default_factory=set)
    files_unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files_skipped: dict[str, list[Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    pool: ThreadPoolExecutor | None = None
    writer: ThreadPoolExecutor | None = None
    writing: Future[list[_lake.StagedFile]] | None = None
    group: _Group = field(default_factory=list)
    group_bytes: int = 0
    inflight: tuple[_Group, Future[tuple[pa.Table, pl.DataFrame]]] | None = None
    files: int = 0
    files_done: int = 0


def _first_bytes(path: Path) -> bytes:
    """The first decompressed bytes of a file, enough to fingerprint and detect its format."""
    out = b""
    for chunk in _lines.raw_chunks(path, truncated=[]):
        out += chunk
        if len(out) >= _FINGERPRINT_BYTES:
            break
    return out[:_FINGERPRINT_BYTES]


def _fingerprint(head: bytes, cluster: str) -> str:
    """Identify a log by its first line, so a renamed or compressed copy is known again.

    The cluster is part of the identity: the same file may be loaded into two clusters.
    """
    first = head.split(b"\n", 1)[0]
    return hashlib.sha256(cluster.encode() + b"\0" + first).hexdigest()[:32]


def _check(tail: bytes) -> int:
    return _lake.check_mark(hashlib.sha256(tail).hexdigest())


# --- quarantine --------------------------------------------------------------------------------


def _record_problem(run: _Run, reason: str, where: str, count: int, detail: str) -> None:
    entry = run.problems.setdefault(reason, [0, where, detail])
    entry[0] += count


def _quarantine(run: _Run, frame: pl.DataFrame) -> None:
    """Keep quarantine rows (``_QUARANTINE_COLUMNS``) for the commit."""
    if frame.is_empty():
        return
    run.quarantine.append(frame.select(list(_QUARANTINE_COLUMNS)).cast(_QUARANTINE_COLUMNS))
    run.quarantined += frame.height
    for reason, count, source, line, detail in (
        frame.group_by("reason", maintain_order=True)
        .agg(pl.len(), pl.col("source").first(), pl.col("line").first(), pl.col("detail").first())
        .iter_rows()
    ):
        _record_problem(run, reason, f"{source}:{line}", count, detail or "")


def _quarantine_one(
    run: _Run, source: str, fp: str, line: int, offset: int, reason: str, detail: str, raw: bytes
) -> None:
    _quarantine(
        run,
        pl.DataFrame(
            {
                "source": [source],
                "stream": [fp],
                "line": [line],
                "offset": [offset],
                "reason": [reason],
                "detail": [detail],
                "raw": [raw],
            },
            schema=_QUARANTINE_COLUMNS,
        ),
    )


def _bad_lines_frame(block: _Block, bad: list[_lines.BadLine]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": [block.source] * len(bad),
            "stream": [block.fp] * len(bad),
            "line": [b.line for b in bad],
            "offset": [0 if block.label else b.offset for b in bad],
            "reason": [b.reason for b in bad],
            "detail": [b.detail for b in bad],
            "raw": [b.raw for b in bad],
        },
        schema=_QUARANTINE_COLUMNS,
    )


# --- parsing a group of blocks -----------------------------------------------------------------

_RETRY: Final = ("invalid-json", "not-an-event", "missing-fields")


def _lines_table(block: _Block, batch: _lines.LineBatch) -> pa.Table:
    n = len(batch.line)
    return pa.table(
        {
            "line": batch.line,
            "nbytes": batch.nbytes,
            "keep": batch.keep,
            "text": batch.text,
            # A document's items were re-serialised one per line; the label says what held them.
            "fmt": pa.repeat(pa.scalar(block.label or "native"), n),
            # Empty lists from zero offsets: pa.repeat builds them one by one (2 ms a block).
            "lossy": pa.ListArray.from_arrays(
                pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())
            ),
            "source": pa.repeat(pa.scalar(block.source), n),
        }
    )


def _problems(parsed: pa.Table) -> pl.DataFrame:
    """The bad rows of a parsed batch: source, line, reason, detail and text (polars)."""
    problem = parsed["problem"]
    if problem.null_count == len(problem):
        return pl.DataFrame(
            schema={
                "source": pl.String,
                "line": pl.Int64,
                "reason": pl.String,
                "detail": pl.String,
                "text": pl.String,
            }
        )
    rows = parsed.filter(pc.is_valid(problem)).select(
        [s.SOURCE_FILE, "line", "problem", "detail", "text"]
    )
    return pl.DataFrame(pl.from_arrow(rows)).select(
        pl.col(s.SOURCE_FILE).alias("source"),
        pl.col("line").cast(pl.Int64),
        pl.col("problem").alias("reason"),
        pl.col("detail"),
        pl.col("text").cast(pl.String),
    )


def _retry_other_formats(
    run: _Run, fmt: str, source: str, failed: pl.DataFrame
) -> tuple[pa.Table | None, list[int]]:
    """Parse failed lines of one source as records of the other formats.

    Returns the parsed records (events and their own problems) and the lines they came from.
    Records that are not audit data come back as ``fmt = 'skip'`` rows: they are counted in
    ``run.skipped`` by kind, and their lines are done (neither loaded nor quarantined).
    """
    arrow = failed.select("line", "text").to_arrow()
    text = _formats.decode_deliveries(arrow["text"])
    normalized = run.parser.normalize(arrow["line"], text)
    if fmt not in ("auto", "native"):
        normalized = normalized.filter(pc.is_in(normalized["fmt"], pa.array([fmt, _formats.SKIP])))
    done = pc.unique(normalized["line"].combine_chunks().cast(pa.int64())).to_pylist()
    is_skip = pc.equal(normalized["fmt"], _formats.SKIP)
    skips = pl.DataFrame(pl.from_arrow(normalized.filter(is_skip).select(["text"])))
    for kind, count in skips.group_by("text").len().iter_rows():
        run.skipped[kind] = run.skipped.get(kind, 0) + count
    records = normalized.filter(pc.invert(is_skip))
    return (run.parser.parse(records, source) if records.num_rows else None), done


def _offsets(group: _Group, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (source, line) with ``stream`` and ``offset``: where each line starts."""
    parts = []
    for block, batch in group:
        mine = rows.filter(
            (pl.col("source") == block.source)
            & pl.col("line").is_between(block.first_line, batch.end_line - 1)
        )
        if mine.is_empty():
            continue
        index = mine["line"].to_numpy() - block.first_line
        offset = (
            np.zeros(len(index), dtype=np.int64)
            if block.label
            else block.start + batch.starts[index]
        )
        parts.append(mine.with_columns(stream=pl.lit(block.fp), offset=pl.Series(offset)))
    return pl.concat(parts) if parts else pl.DataFrame(schema=_QUARANTINE_COLUMNS)


def _parse_group(run: _Run, group: _Group) -> tuple[pa.Table, pl.DataFrame]:
    """Parse and redact the lines of a group of blocks (several small files' at once).

    Returns the events (Arrow, see ``_parse.to_events``) and the quarantine rows. Lines are
    parsed as native events; the ones that fail are offered to the other formats
    (``_formats``), and what those recognise is parsed again. With a forced format other than
    native, every line goes to the other formats first.
    """
    tables = [_lines_table(block, batch) for block, batch in group]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    fmt = group[0][0].fmt
    events: list[pa.Table] = []
    if fmt in ("auto", "native"):
        parsed = run.parser.parse(table)
        events.append(_parse.to_events(parsed))
        bad = _problems(parsed)
        failed = bad.filter(pl.col("reason").is_in(_RETRY)) if fmt == "auto" else bad.clear()
    else:
        lines = pl.DataFrame(
            pl.from_arrow(table.filter(table["keep"]).select(["source", "line", "text"]))
        )
        bad = failed = lines.select(
            pl.col("source"),
            pl.col("line").cast(pl.Int64),
            pl.lit("not-an-event").alias("reason"),
            pl.lit(f"not a record of the {fmt} format").alias("detail"),
            pl.col("text").cast(pl.String),
        )
    for (source,), rows in failed.group_by("source", maintain_order=True):
        again, done = _retry_other_formats(run, fmt, str(source), rows)
        bad = bad.filter((pl.col("source") != source) | ~pl.col("line").is_in(done))
        if again is not None:
            events.append(_parse.to_events(again))
            # The record the wrapper held, as extracted (a line of a delivery can hold many).
            more = _problems(again)
            bad = pl.concat([bad, more.select(bad.columns)])
    if not events:  # a forced format that recognised nothing: no events, in their schema
        events.append(_parse.to_events(run.parser.parse(table.slice(0, 0))))
    out = events[0] if len(events) == 1 else pa.concat_tables(events)
    if not run.keep_secrets:
        out = _redact.redact(out, out["risky"])
    quarantine = _offsets(
        group,
        bad.select(
            "source",
            "line",
            "reason",
            "detail",
            pl.col("text").str.strip_chars_end("\r\n").cast(pl.Binary).alias("raw"),
        ),
    )
    return out.drop_columns(["risky"]), quarantine


# --- the pipeline: cut, parse (in a second thread), store --------------------------------------


def _cut(run: _Run, block: _Block) -> _lines.LineBatch:
    """Cut a block into lines: this also counts them, which numbers the next block."""
    return _lines.split_lines(
        block.data,
        first_line=block.first_line,
        base_offset=block.start,
        max_line_bytes=run.max_line_bytes,
    )


def _enqueue(run: _Run, block: _Block, batch: _lines.LineBatch) -> None:
    """Add a cut block to the group being gathered; hand the group over once it is large."""
    if run.group and run.group[0][0].fmt != block.fmt:
        _submit(run)
    run.group.append((block, batch))
    run.group_bytes += len(block.data)
    if run.group_bytes >= PARSE_BYTES:
        _submit(run)


def _submit(run: _Run) -> None:
    """Parse the gathered group beside the main thread, and store the group before it.

    While one group is cut and stored here, the next one is parsed in a second thread (DuckDB,
    Arrow and polars release the GIL), so reading, parsing and writing overlap. With one thread
    (``threads=1``) everything runs here, one step after the other.
    """
    if not run.group:
        return
    group, run.group, run.group_bytes = run.group, [], 0
    if run.pool is None:
        _store(run, group, _parse_group(run, group))
        return
    future = run.pool.submit(_parse_group, run, group)
    if run.inflight is not None:
        previous, parsing = run.inflight
        run.inflight = None
        _store(run, previous, parsing.result())
    run.inflight = (group, future)


def _drain(run: _Run) -> None:
    _submit(run)
    if run.inflight is not None:
        group, parsing = run.inflight
        run.inflight = None
        _store(run, group, parsing.result())


def _store(run: _Run, group: _Group, parsed: tuple[pa.Table, pl.DataFrame]) -> None:
    """Quarantine, deduplicate and buffer a parsed group."""
    events, bad = parsed
    for block, batch in group:
        if batch.bad:
            _quarantine(run, _bad_lines_frame(block, batch.bad))
        run.bytes_read += len(block.data)
    _quarantine(run, bad)
    _accept(run, events, {block.source: rank for rank, (block, _) in enumerate(group)})
    _report(run)
    _commit.checkpoint("parsed")
    if run.buffered_bytes >= FLUSH_BYTES:
        _flush(run)


def _report(run: _Run) -> None:
    if run.progress:
        run.progress(Progress(run.files_done, run.files, run.bytes_read, run.events_read))


# --- reading one file --------------------------------------------------------------------------


def _stream_state(run: _Run, fp: str) -> _commit.StreamState | None:
    """How far this stream has been loaded, counting what this run has not committed yet."""
    return run.pending.get(fp) or _commit.committed_stream(run.table, fp)


def _resumes(path: Path, state: _commit.StreamState) -> bool:
    """Whether ``path`` holds, just before the recorded offset, the line the stream ended with.

    Two different logs can start with the same line (test data reuses events); resuming the
    second at the first one's offset would skip its events, so the last loaded line is checked.
    """
    if state.offset == 0 or state.check is None:
        return True
    seen = b""
    for chunk in _lines.raw_chunks(path, start=state.check_at, truncated=[]):
        seen += chunk
        if len(seen) >= state.offset - state.check_at:
            break
    return _check(seen[: state.offset - state.check_at]) == state.check


def _state_after(block: _Block, batch: _lines.LineBatch, start: int) -> _commit.StreamState:
    data = block.data
    last = bytes(data[-min(len(data), 1 << 20) :])
    tail = last[last.rfind(b"\n", 0, len(last) - 1) + 1 :]
    return _commit.StreamState(
        offset=batch.end_offset,
        line=batch.end_line,
        check_at=batch.end_offset - len(tail),
        check=_check(tail),
        start=start,
    )


def _load_lines(run: _Run, path: Path, fmt: str, fp: str) -> int:
    """Read a JSON-lines file from where the last run stopped; return the offset reached."""
    source = str(path)
    state = _stream_state(run, fp)
    if state is not None and not _resumes(path, state):
        state = None
    offset, line_no = (state.offset, state.line) if state else (0, 1)
    start = state.start if state is not None and fp in run.pending else offset
    first_offset, first_line = offset, line_no
    truncated: list[str] = []
    for raw, at, carry in _lines.line_blocks(path, offset, truncated):
        data, begin = raw, at
        if carry:
            data, begin = _final_line(run, carry, at, line_no, source, fp, truncated)
        if not data:
            continue
        block = _Block(data, line_no, begin, fp, fmt, source)
        batch = _cut(run, block)
        line_no, offset = batch.end_line, batch.end_offset
        run.pending[fp] = _state_after(block, batch, start)
        _enqueue(run, block, batch)
    run.sources[source] = {
        "source": source,
        "stream": fp,
        "from_offset": first_offset,
        "to_offset": offset,
        "from_line": first_line,
        "to_line": line_no,
    }
    return offset


def _document(path: Path) -> tuple[bytes, Any] | None:
    """A file holding one JSON value (pretty-printed event, EventList, array, YAML), parsed.

    None when the file is not one document after all (a JSON-lines file whose first line is
    broken), so that the caller reads it as lines.
    """
    raw = b"".join(_lines.raw_chunks(path, truncated=[]))
    # JSON, YAML (``*.yaml``/``*.yml``) or JSON values written back to back (Firehose).
    value = _formats.parse_document(raw.removeprefix(_lines.BOM_UTF8), path.name)
    return None if value is None else (raw, value)


def _manifest_kind(value: Any) -> str | None:
    """The kind of a Kubernetes object that is not an audit event (a Policy, a Deployment…)."""
    if isinstance(value, dict) and "apiVersion" in value and "kind" in value:
        kind = str(value["kind"])
        if kind not in ("Event", "EventList") and "auditID" not in value:
            return kind
    return None


def _load_document(run: _Run, path: Path, fp: str, raw: bytes, value: Any) -> int:
    """Load a document's events (see ``_document``); return the bytes consumed."""
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        items, fmt = value["items"], "eventlist"
    elif isinstance(value, list):
        items, fmt = value, "eventlist"
    else:
        items, fmt = [value], "native"
    # A document is re-serialised one item per line so the line path does the rest; its
    # source_line is then the item's position in the document.
    data = b"".join(orjson.dumps(item) + b"\n" for item in items)
    if data:
        block = _Block(data, 1, 0, fp, "auto", str(path), label=fmt)
        _enqueue(run, block, _cut(run, block))
    run.pending[fp] = _commit.StreamState(offset=len(raw), line=len(items) + 1)
    run.sources[str(path)] = {
        "source": str(path),
        "stream": fp,
        "from_offset": 0,
        "to_offset": len(raw),
        "from_line": 1,
        "to_line": len(items) + 1,
    }
    return len(raw)


def _final_line(
    run: _Run, carry: bytes, start: int, line_no: int, source: str, fp: str, truncated: list[str]
) -> tuple[bytes, int]:
    """Decide what to do with bytes after the last line end of a file.

    A complete JSON value is a last line written without a line end (common in published
    samples) and is loaded. Anything else is a line still being written: it is left for the next
    run, unless the file is a cut-off gzip stream, which will never grow: then it is quarantined.
    """
    try:
        orjson.loads(carry)
    except orjson.JSONDecodeError:
        if truncated:
            _quarantine_one(run, source, fp, line_no, start, "truncated-gzip", truncated[0], carry)
            return b"", start + len(carry)
        run.partial.add(fp)
        return b"", start
    return carry + b"\n", start


# --- deduplication and writing -----------------------------------------------------------------


def _known_keys(
    run: _Run, day: dt.date, low: np.datetime64, high: np.datetime64
) -> _dedupe.KeyIndex:
    """The keys of one partition's stored events that a batch spanning ``[low, high]`` can meet.

    Each stored file's keys are read once per run, when a batch first overlaps its time range
    (the log keeps every file's range): an hourly load reads the files of the hours it touches,
    not the whole day's.
    """
    index = run.keys.setdefault(day, _dedupe.KeyIndex())
    known = run.known.setdefault(day, set())
    if run.table is None:
        return index
    if day not in run.stored:
        run.stored[day] = _lake.data_files(
            run.table, clusters=[run.cluster], first=day, last=day
        ).select("path", "first", "last")
    start, end = pl.lit(low).dt.replace_time_zone("UTC"), pl.lit(high).dt.replace_time_zone("UTC")
    todo = (
        run.stored[day]
        .filter(
            ~pl.col("path").is_in(list(known))
            & (pl.col("first").is_null() | (pl.col("first") <= end))
            & (pl.col("last").is_null() | (pl.col("last") >= start))
        )["path"]
        .to_list()
    )
    if todo:
        hashes = _lake.read_keys(run.lake, _lake.EVENTS, todo).select(_dedupe.HASHES).collect()
        index.add(hashes["h1"].to_numpy(), hashes["h2"].to_numpy())
        known.update(todo)
    return index


def _first_in_source_order(events: pa.Table, ranks: dict[str, int]) -> pl.Series:
    """Which rows are the first of their key, in the order the sources were given, line by line.

    DuckDB returns a batch's rows in any order; when a batch holds one event twice (two files
    of a group, or one file), the copy kept must not depend on it: the evidence cites its line.
    """
    keys = pl.DataFrame(
        pl.from_arrow(events.select([s.AUDIT_ID, s.STAGE, s.SOURCE_FILE, s.SOURCE_LINE]))
    )
    return (
        keys.with_row_index("row")
        .sort(pl.col(s.SOURCE_FILE).replace_strict(ranks, default=len(ranks)), s.SOURCE_LINE)
        .select("row", pl.struct(*_dedupe.HASHES).is_first_distinct().alias("first"))
        .sort("row")["first"]
    )


def _accept(run: _Run, events: pa.Table, ranks: dict[str, int]) -> None:
    """Deduplicate a batch against the lake and the run so far, then buffer it by day.

    Only the 16-byte keys are looked up; the wide event rows are copied only when a batch does
    hold duplicates, which the common case (a file loaded once) never has. ``ranks`` orders the
    batch's sources (the first one given keeps an event two of them hold).
    """
    run.events_read += events.num_rows
    if not events.num_rows:
        return
    hashes = pl.DataFrame(pl.from_arrow(events.select([s.AUDIT_ID, s.STAGE]))).select(
        *_dedupe.HASHES, pl.struct(*_dedupe.HASHES).is_first_distinct().alias("first")
    )
    if not hashes["first"].all():
        hashes = hashes.with_columns(_first_in_source_order(events, ranks).alias("first"))
    h1, h2 = hashes["h1"].to_numpy(), hashes["h2"].to_numpy()
    new = hashes["first"].to_numpy().copy()
    days = events[s.DATE].to_numpy()
    times = events[s.REQUEST_TS].to_numpy()
    distinct = np.unique(days)
    for day in distinct:
        # The same (audit_id, stage) has the same request_ts, so it never spans two days.
        rows = np.flatnonzero(new if len(distinct) == 1 else new & (days == day))
        if not len(rows):
            continue
        span = times[rows]
        index = _known_keys(run, day.astype(dt.date), span.min(), span.max())
        new[rows[index.contains(h1[rows], h2[rows])]] = False
        added = rows[new[rows]]
        index.add(h1[added], h2[added])
    fresh = events if new.all() else events.filter(new)
    h1, h2, days = (h1, h2, days) if new.all() else (h1[new], h2[new], days[new])
    run.duplicates += events.num_rows - fresh.num_rows
    for item in pc.value_counts(fresh[s.SOURCE_FILE]).to_pylist():
        run.added[item["values"]] = run.added.get(item["values"], 0) + item["counts"]
    for day in distinct:
        at = None if len(distinct) == 1 else np.flatnonzero(days == day)
        part = fresh if at is None else fresh.take(pa.array(at))
        if part.num_rows:
            keys = (h1, h2) if at is None else (h1[at], h2[at])
            entry = (part.drop_columns([s.DATE]), *keys)
            run.buffer.setdefault(day.astype(dt.date), []).append(entry)
    run.buffered_bytes += int(pc.sum(fresh[s.EVENT_BYTES]).as_py() or 0)


def _stage(run: _Run, parts: dict[dt.date, tuple[pa.Table, np.ndarray, np.ndarray]]) -> list[Any]:
    staged = []
    for day, (table, h1, h2) in parts.items():
        staged.append(_lake.stage_events(run.lake, run.cluster, day, table, keys=(h1, h2)))
        _commit.checkpoint("staged")
    return staged


def _flush(run: _Run) -> None:
    """Hand buffered events over to the writer thread, which stages them as Parquet files.

    Sorting and writing a flush takes as long as parsing several blocks; in a thread of its own
    it overlaps the next blocks instead of stalling them. One flush is in flight at most, which
    bounds memory.
    """
    if run.writing is not None:
        run.staged.extend(run.writing.result())  # also raises what went wrong in the writer
        run.writing = None
    parts = {
        day: (
            pa.concat_tables([t for t, _, _ in entries]),
            np.concatenate([h for _, h, _ in entries]),
            np.concatenate([h for _, _, h in entries]),
        )
        for day, entries in run.buffer.items()
    }
    for day, (part, _, _) in parts.items():
        run.partitions.add(f"{s.CLUSTER}={run.cluster}/{s.DATE}={day}")
        run.events_written += part.num_rows
    run.buffer, run.buffered_bytes = {}, 0
    if not parts:
        return
    if run.writer is None:
        run.staged.extend(_stage(run, parts))
    else:
        run.writing = run.writer.submit(_stage, run, parts)


# --- one file, then the whole run --------------------------------------------------------------


def _unchanged(run: _Run, path: Path, stat: Any) -> bool:
    """Whether a file was read to its end, at this size and modification time, already."""
    app = _lake.file_app(run.cluster, str(path))
    mark = run.marks.get(app)
    if mark is None:
        mark = _lake.txn(run.table, app)
    return mark == _lake.file_mark(stat.st_size, stat.st_mtime_ns)


def _quarantine_file(run: _Run, path: Path, fp: str, reason: str, detail: str, head: bytes) -> None:
    _quarantine_one(run, str(path), fp, 0, 0, reason, detail, head[:_FILE_HEAD_BYTES])
    run.pending[fp] = _commit.StreamState(offset=0, line=1)


def _skip_file(run: _Run, path: Path, what: str) -> None:
    entry = run.files_skipped.setdefault(what, [0, str(path)])
    entry[0] += 1


def _load_file(run: _Run, path: Path, fmt: str | None) -> None:
    what = _discover.not_a_log(path.name)
    if what is not None:
        _skip_file(run, path, what)
        return
    stat = path.stat()
    if _unchanged(run, path, stat):
        run.files_unchanged += 1
        return
    head = _first_bytes(path)
    if not head.removeprefix(_lines.BOM_UTF8).strip():
        fp = "empty-" + hashlib.sha256(f"{run.cluster}\0{path}".encode()).hexdigest()[:26]
        _quarantine_file(run, path, fp, "empty-file", "the file holds no data", b"")
    else:
        fp = _fingerprint(head, run.cluster)
        kind = _formats.detect(head, stat.st_size, MAX_DOCUMENT_BYTES)
        done = False
        if kind == "document" or (kind == "unknown" and _formats.is_yaml_name(path.name)):
            document = _document(path)
            manifest = _manifest_kind(document[1]) if document else None
            if manifest is not None:
                _skip_file(run, path, f"a Kubernetes {manifest} manifest")
                return
            if document is not None:
                _load_document(run, path, fp, *document)
                done = True
        if not done and kind == "unknown" and fmt is None:
            detail = (
                "it is neither JSON lines nor a JSON document of audit events "
                f"(the first {_FILE_HEAD_BYTES:,} bytes are kept; the file is at {path})"
            )
            _quarantine_file(run, path, fp, "unknown-format", detail, head)
        elif not done:
            _load_lines(run, path, fmt or "auto", fp)
    run.marks[_lake.file_app(run.cluster, str(path))] = _lake.file_mark(
        stat.st_size, stat.st_mtime_ns
    )


def _check_options(format: str | None, cluster: str, threads: int | None) -> None:
    if format is not None and format not in FORMATS:
        msg = f"unknown format {format!r}: choose one of {', '.join(FORMATS)}"
        raise IngestError(msg)
    if threads is not None and threads < 1:
        msg = f"threads must be 1 or more, not {threads}"
        raise IngestError(msg)
    try:
        _lake.check_cluster(cluster)
    except ValueError as exc:
        raise IngestError(str(exc)) from exc


def _expand(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], where: _lake.Location
) -> list[Path]:
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    try:
        # A lake is never read as input, least of all the one being written.
        return _discover.expand(paths, exclude=[where.local] if where.local else [])
    except _discover.SourceError as exc:
        raise IngestError(str(exc)) from exc


def _run_files(run: _Run, files: list[Path], fmt: str | None) -> None:
    try:
        for path in files:
            _load_file(run, path, fmt)
            run.files_done += 1
            _report(run)
        _drain(run)
        _flush(run)
        if run.writing is not None:
            run.staged.extend(run.writing.result())
            run.writing = None
    except BaseException:
        if run.writing is not None:
            run.staged.extend(run.writing.result())
        _lake.discard(run.lake, run.staged)
        raise
    finally:
        for pool in (run.pool, run.writer):
            if pool is not None:
                pool.shutdown(wait=True)
        run.parser.close()


def _staged(run: _Run) -> _commit.Staged:
    quarantine = (
        pl.concat(run.quarantine).with_columns(
            pl.lit(run.cluster).alias("cluster"),
            pl.lit(dt.datetime.now(dt.UTC)).dt.cast_time_unit("us").alias("quarantined_at"),
        )
        if run.quarantine
        else None
    )
    for source, entry in run.sources.items():
        entry["events_added"] = run.added.get(source, 0)
    return _commit.Staged(
        cluster=run.cluster,
        base_version=None if run.table is None else int(run.table.version()),
        files=list(run.staged),
        known=run.known,
        quarantine=quarantine,
        streams=dict(run.pending),
        marks=dict(run.marks),
        sources=list(run.sources.values()),
        events_written=run.events_written,
        duplicates=run.duplicates,
        quarantined=run.quarantined,
    )


def _stats(run: _Run, files: int, seconds: float) -> IngestStats:
    return IngestStats(
        lake=run.lake.uri,
        files=files,
        files_unchanged=run.files_unchanged,
        bytes_read=run.bytes_read,
        events_read=run.events_read,
        events_written=run.events_written,
        duplicates=run.duplicates,
        quarantined=run.quarantined,
        partial_lines=len(run.partial),
        partitions=tuple(sorted(run.partitions)),
        problems=tuple(
            Problem(reason, count, where, detail)
            for reason, (count, where, detail) in run.problems.items()
        ),
        seconds=seconds,
        skipped=sum(run.skipped.values()),
        skipped_by_kind=tuple(sorted(run.skipped.items())),
        files_skipped=sum(count for count, _ in run.files_skipped.values()),
        files_skipped_by_kind=tuple(
            (what, count, example) for what, (count, example) in sorted(run.files_skipped.items())
        ),
    )


def stage(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    format: str | None = None,
    keep_secrets: bool = False,
    max_line_bytes: int = _lines.MAX_LINE_BYTES,
    threads: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> tuple[_commit.Staged, IngestStats]:
    """Parse sources into staged Parquet files of a lake, without committing them.

    The first half of ``ingest``, for a caller that commits several stagers' work at once
    (``kaudit_analytics.spark.ingest``: tasks stage, the driver commits with
    ``ingestion.commit.commit``). Staged files no commit names are removed by ``vacuum``.

    Raises
    ------
    IngestError
        When a source does not exist or cannot be read, or an option is wrong.
    kaudit_analytics.lake.LakeError
        When the lake cannot be read or written.
    """
    began = time.perf_counter()
    _check_options(format, cluster, threads)
    where = _lake.locate(lake)
    files = _expand(sources, where)
    table = _lake.writable_table(where)
    cores = threads or os.cpu_count() or 1
    run = _Run(
        lake=where,
        cluster=cluster,
        keep_secrets=keep_secrets,
        max_line_bytes=max_line_bytes,
        progress=progress,
        parser=_parse.Parser(threads=cores),
        table=table,
        threads=cores,
        files=len(files),
        pool=ThreadPoolExecutor(1, "kaudit-parse") if cores > 1 else None,
        writer=ThreadPoolExecutor(1, "kaudit-write") if cores > 1 else None,
    )
    _run_files(run, files, format)
    return _staged(run), _stats(run, len(files), time.perf_counter() - began)


def finish(
    stats: IngestStats, load: _commit.Staged, done: _commit.Committed, seconds: float
) -> IngestStats:
    """Stats of a staged load once committed: what the commit dropped, and its timing."""
    return replace(
        stats,
        events_written=load.events_written,
        duplicates=load.duplicates,
        quarantined=load.quarantined,
        version=done.version,
        seconds=seconds,
        seconds_waiting=done.waited,
        seconds_committing=done.seconds,
    )


def ingest(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    format: str | None = None,
    keep_secrets: bool = False,
    wait: bool = True,
    max_line_bytes: int = _lines.MAX_LINE_BYTES,
    threads: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> IngestStats:
    """Load audit logs into a lake, incrementally; return what was done.

    Sources are parsed into staged Parquet files without any lock, then one commit makes them
    visible together with the quarantined lines and how far each source was loaded: a crash
    leaves either nothing or everything. Other ingests (other clusters, other files, the same
    files) may run at the same time; each event is stored once.

    Parameters
    ----------
    sources
        Files, folders (read recursively) and glob patterns: JSON-lines logs as the
        kube-apiserver writes them (rotated, ``.gz``), webhook ``EventList`` documents,
        ``audit.k8s.io/v1beta1`` and ``v1alpha1`` events. The format is detected per file.
        Lakes are never read as input, and files that plainly are not logs (a README, a
        policy, a table) are skipped and counted.
    lake
        The lake: a folder (created when missing; refused when it holds other files) or an
        ``s3://``, ``gs://`` or ``az://`` URL.
    cluster
        The ``cluster`` partition the events go to.
    format
        Force one of ``FORMATS`` instead of detecting it.
    keep_secrets
        Keep Secret values and tokens in logged bodies (they are redacted by default).
    wait
        When other writers keep committing first, wait for a turn (default) or raise
        ``LakeLockedError`` at the first conflict.
    max_line_bytes
        Lines longer than this are quarantined, whole.
    threads
        Cores to use (default: all): ``1`` parses and writes in this thread alone, so that
        several ingests share a machine's cores.
    progress
        Called with a ``Progress`` (files, bytes and events so far) after each batch and file,
        and while waiting for other writers.

    Raises
    ------
    IngestError
        When a source does not exist or cannot be read, or an option is wrong.
    kaudit_analytics.lake.LakeError
        When the lake cannot be written, or the location holds something that is not a lake.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> stats = ka.ingest(SAMPLE_DIR, tempfile.mkdtemp())
    >>> stats.events_written > 10_000, stats.quarantined, stats.version
    (True, 0, 1)
    """
    began = time.perf_counter()
    load, stats = stage(
        sources,
        lake,
        cluster=cluster,
        format=format,
        keep_secrets=keep_secrets,
        max_line_bytes=max_line_bytes,
        threads=threads,
        progress=progress,
    )
    _commit.checkpoint("staged-all")
    where = _lake.locate(lake)

    def waiting(sentence: str) -> None:
        if progress is not None:
            done = stats.files
            progress(Progress(done, stats.files, stats.bytes_read, stats.events_read, sentence))

    done = _commit.commit(where, [load], wait=wait, waiting=waiting, run=uuid.uuid4().hex)
    return finish(stats, load, done, time.perf_counter() - began - done.waited)


#: Quarantine reasons of a whole file: its record keeps only its first bytes, so it is retried
#: by ingesting the file again, not from the record.
FILE_REASONS: Final = ("empty-file", "unknown-format", "truncated-gzip")


def retry(
    lake: str | os.PathLike[str],
    *,
    cluster: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    format: str | None = None,
    keep_secrets: bool = False,
    max_line_bytes: int = _lines.MAX_LINE_BYTES,
    threads: int | None = None,
) -> IngestStats:
    """Load quarantined lines again (after a fix, or with other options); drop those that load.

    Each line keeps its source file and line number; lines that still cannot be loaded stay in
    the quarantine as they were. Lines whose events the lake holds already are dropped from it
    too (counted as duplicates). Quarantine records of whole files (``FILE_REASONS``) are left:
    ingest those files again.

    Raises
    ------
    IngestError
        When an option is wrong.
    kaudit_analytics.lake.LakeError
        When there is no lake at ``lake``, or it cannot be written.
    """
    began = time.perf_counter()
    _check_options(format, cluster or "default", threads)
    where = _lake.require_lake(lake)
    rows = _lake.scan_quarantine(where.uri).filter(~pl.col("reason").is_in(FILE_REASONS))
    for name, value in (("cluster", cluster), ("reason", reason), ("source", source)):
        if value is not None:
            rows = rows.filter(pl.col(name) == value)
    found = rows.collect().sort("source", "line")
    total: IngestStats | None = None
    for (name,), part in found.group_by(
        pl.col("cluster").fill_null("default"), maintain_order=True
    ):
        stats = _retry_cluster(
            where, str(name), part, format, keep_secrets, max_line_bytes, threads
        )
        total = stats if total is None else _add(total, stats)
    empty = IngestStats(where.uri, 0, 0, 0, 0, 0, 0, 0, 0, (), (), 0.0)
    return replace(total or empty, seconds=time.perf_counter() - began)


def _add(a: IngestStats, b: IngestStats) -> IngestStats:
    return replace(
        a,
        files=a.files + b.files,
        bytes_read=a.bytes_read + b.bytes_read,
        events_read=a.events_read + b.events_read,
        events_written=a.events_written + b.events_written,
        duplicates=a.duplicates + b.duplicates,
        quarantined=a.quarantined + b.quarantined,
        partitions=tuple(sorted({*a.partitions, *b.partitions})),
        problems=a.problems + b.problems,
        version=b.version if b.version is not None else a.version,
    )


def _retry_cluster(
    where: _lake.Location,
    cluster: str,
    rows: pl.DataFrame,
    fmt: str | None,
    keep_secrets: bool,
    max_line_bytes: int,
    threads: int | None,
) -> IngestStats:
    cores = threads or os.cpu_count() or 1
    run = _Run(
        lake=where,
        cluster=cluster,
        keep_secrets=keep_secrets,
        max_line_bytes=max_line_bytes,
        progress=None,
        parser=_parse.Parser(threads=cores),
        table=_lake.writable_table(where),
        threads=cores,
        files=rows["source"].n_unique(),
    )
    try:
        for source_, line, offset, raw in rows.select(
            "source", "line", "offset", "raw"
        ).iter_rows():
            block = _Block(raw + b"\n", line, offset or 0, "retry", fmt or "auto", source_)
            _enqueue(run, block, _cut(run, block))
        _drain(run)
        _flush(run)
    except BaseException:
        _lake.discard(run.lake, run.staged)
        raise
    finally:
        run.parser.close()
    still = (
        pl.concat(run.quarantine).select("source", "line")
        if run.quarantine
        else pl.DataFrame(schema={"source": pl.String, "line": pl.Int64})
    )
    loaded = rows.join(still, on=["source", "line"], how="anti")
    load = _staged(run)
    load.quarantine, load.streams, load.marks = None, {}, {}
    done = _commit.commit(where, [load], run=f"retry-{uuid.uuid4().hex}")
    _lake.drop_quarantine(where, loaded.select("cluster", "source", "line", "offset", "reason"))
    stats = _stats(run, run.files, 0.0)
    return replace(finish(stats, load, done, 0.0), quarantined=rows.height - loaded.height)
