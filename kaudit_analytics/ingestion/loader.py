"""Load audit logs into the lake: the only code that reads raw logs.

A source is read in chunks of complete lines; each chunk is parsed in DuckDB, redacted, stamped
with where it came from, deduplicated on (``audit_id``, ``stage``) against what the lake already
holds, and buffered per partition. Buffers are written when they grow large or the run ends;
only then does the run record how far each source was loaded, so a crash at any moment costs at
most a re-read, never an event (the re-read is deduplicated).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kaudit_analytics import lake as _lake
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import dedupe as _dedupe
from kaudit_analytics.ingestion import discover as _discover
from kaudit_analytics.ingestion import formats as _formats
from kaudit_analytics.ingestion import lines as _lines
from kaudit_analytics.ingestion import parse as _parse
from kaudit_analytics.ingestion import redact as _redact
from kaudit_analytics.ingestion.commit import commit

__all__ = ["FORMATS", "IngestError", "IngestStats", "Problem", "Progress", "ingest"]

#: Formats ``--format`` can force; by default each line's format is recognised.
FORMATS: Final = _formats.FORMATS

#: Write buffered events once they hold this many bytes of source text (bounds memory).
FLUSH_BYTES: Final = 64 * 1024 * 1024
#: A file that does not start with a complete JSON line is read whole as one JSON document
#: (a pretty-printed event or EventList) when it is at most this big.
MAX_DOCUMENT_BYTES: Final = 256 * 1024 * 1024

_FINGERPRINT_BYTES: Final = 64 * 1024

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


class IngestError(Exception):
    """A user error that stops an ingest before it starts (missing path, bad option)."""


@dataclass(frozen=True)
class Problem:
    """One kind of bad input met in a run: how often, and the first place it was seen."""

    reason: str
    count: int
    example: str

    def sentence(self) -> str:
        what = _REASONS.get(self.reason, self.reason)
        noun = "line was" if self.count == 1 else "lines were"
        if self.reason in ("empty-file", "unknown-format"):
            noun = "file was" if self.count == 1 else "files were"
        return f"{self.count} {noun} {what} and quarantined (first: {self.example})."


@dataclass(frozen=True)
class Progress:
    """How far a running ingest is, as handed to its ``progress`` callback (running totals)."""

    files_done: int
    files: int
    bytes_read: int
    events_read: int


@dataclass(frozen=True)
class IngestStats:
    """What one ``ingest`` run did."""

    lake: Path
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

    def summary(self) -> str:
        """A few human lines: what was loaded, skipped and quarantined."""
        rate = self.events_read / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"Read {self.files} file(s) ({self.bytes_read / 1e6:,.1f} MB, "
            f"{self.files_unchanged} unchanged since the last run) in {self.seconds:.1f} s "
            f"({rate:,.0f} events/s).",
            f"Events: {self.events_written:,} new, {self.duplicates:,} duplicate, "
            f"{self.quarantined:,} quarantined, into {len(self.partitions)} partition(s) of "
            f"{self.lake}.",
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
        lines.extend(problem.sentence() for problem in self.problems)
        return "\n".join(lines)


@dataclass
class _Run:
    """Mutable state of one ingest run (never leaves this module)."""

    lake: Path
    cluster: str
    keep_secrets: bool
    max_line_bytes: int
    progress: Callable[[Progress], None] | None
    parser: _parse.Parser
    sources: dict[str, dict[str, Any]]
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    buffer: dict[dt.date, list[pa.Table]] = field(default_factory=dict)
    buffered_bytes: int = 0
    quarantine: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    keys: dict[tuple[str, dt.date], _dedupe.KeyIndex] = field(default_factory=dict)
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
    writer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaudit-write")
    )
    writing: Future[None] | None = None
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


# --- reading one file --------------------------------------------------------------------------


def _record_problem(run: _Run, reason: str, where: str, count: int) -> None:
    entry = run.problems.setdefault(reason, [0, where])
    entry[0] += count


def _quarantine(run: _Run, name: str, source: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    run.quarantine.append((name, frame.with_columns(pl.lit(source).alias("source"))))
    run.quarantined += frame.height
    for reason, count, line in (
        frame.group_by("reason", maintain_order=True)
        .agg(pl.len(), pl.col("line").first())
        .iter_rows()
    ):
        _record_problem(run, reason, f"{source}:{line}", count)


def _bad_lines_frame(bad: list[_lines.BadLine]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "line": [b.line for b in bad],
            "reason": [b.reason for b in bad],
            "detail": [b.detail for b in bad],
            "raw": [b.raw for b in bad],
        },
        schema={"line": pl.Int64, "reason": pl.String, "detail": pl.String, "raw": pl.Binary},
    )


_RETRY: Final = ("invalid-json", "not-an-event", "missing-fields")


def _parse_batch(
    run: _Run, batch: _lines.LineBatch, block: _Block
) -> tuple[pa.Table, pl.DataFrame]:
    """Events (Arrow, see ``_parse.to_events``) and quarantine rows of one batch of lines.

    Lines are parsed as native events; the ones that fail are offered to the other formats
    (``_formats``), and what those recognise is parsed again. With a forced format other than
    native, every line goes to the other formats first.
    """
    n = len(batch.line)
    table = pa.table(
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
        }
    )
    events: list[pa.Table] = []
    bad: pa.Table | None = None
    failed: pa.Table | None = None
    if block.fmt in ("auto", "native"):
        parsed = run.parser.parse(table, block.source)
        events.append(_parse.to_events(parsed))
        bad = _parse.to_problems(parsed)
        if bad is not None and block.fmt == "auto":
            failed = bad.filter(pc.is_in(bad["problem"], pa.array(_RETRY)))
    else:
        # A forced format: no line is read as a native event first.
        lines = table.filter(batch.keep)
        rows = lines.num_rows
        bad = failed = pa.table(
            {
                "line": lines["line"],
                "problem": pa.repeat(pa.scalar("not-an-event"), rows),
                "detail": pa.repeat(pa.scalar(f"not a record of the {block.fmt} format"), rows),
                "text": lines["text"],
            }
        )
    if bad is not None and failed is not None and failed.num_rows:
        again, done = _retry_other_formats(run, block, failed)
        bad = bad.filter(pc.invert(pc.is_in(bad["line"], done)))
        if again is not None:
            events.append(_parse.to_events(again))
            more = _parse.to_problems(again)
            if more is not None:
                bad = pa.concat_tables([bad, more], promote_options="permissive")
    if bad is None or not bad.num_rows:
        quarantine = _bad_lines_frame([])
    else:
        quarantine = pl.DataFrame(pl.from_arrow(bad)).select(
            pl.col("line"),
            pl.col("problem").alias("reason"),
            pl.col("detail"),
            pl.col("text").str.strip_chars_end("\r\n").cast(pl.Binary).alias("raw"),
        )
    if not events:  # a forced format that recognised nothing: no events, in their schema
        events.append(_parse.to_events(run.parser.parse(table.slice(0, 0), block.source)))
    return (events[0] if len(events) == 1 else pa.concat_tables(events)), quarantine


def _retry_other_formats(
    run: _Run, block: _Block, failed: pa.Table
) -> tuple[pa.Table | None, pa.Array]:
    """Parse failed lines as records of the other formats; return those and the lines done.

    Records that are not audit data come back as ``fmt = 'skip'`` rows: they are counted in
    ``run.skipped`` by kind, and their lines are done (neither loaded nor quarantined).
    """
    text = _formats.decode_deliveries(failed["text"])
    normalized = run.parser.normalize(failed["line"], text)
    if block.fmt not in ("auto", "native"):
        normalized = normalized.filter(
            pc.is_in(normalized["fmt"], pa.array([block.fmt, _formats.SKIP]))
        )
    done = pc.unique(normalized["line"].combine_chunks().cast(pa.int64()))
    is_skip = pc.equal(normalized["fmt"], _formats.SKIP)
    skips = pl.DataFrame(pl.from_arrow(normalized.filter(is_skip).select(["text"])))
    for kind, count in skips.group_by("text").len().iter_rows():
        run.skipped[kind] = run.skipped.get(kind, 0) + count
    records = normalized.filter(pc.invert(is_skip))
    return (run.parser.parse(records, block.source) if records.num_rows else None), done


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


def _cut(run: _Run, block: _Block) -> _lines.LineBatch:
    """Cut a block into lines: this also counts them, which numbers the next block."""
    return _lines.split_lines(
        block.data,
        first_line=block.first_line,
        base_offset=block.start,
        max_line_bytes=run.max_line_bytes,
    )


def _parse_block(
    run: _Run, block: _Block, batch: _lines.LineBatch
) -> tuple[_lines.LineBatch, pa.Table, pl.DataFrame]:
    """Parse and redact one block: the work that runs beside the previous block's."""
    events, bad = _parse_batch(run, batch, block)
    if not run.keep_secrets:
        events = _redact.redact(events, events["risky"])
    return batch, events.drop_columns(["risky"]), bad


def _store_block(
    run: _Run, block: _Block, parsed: tuple[_lines.LineBatch, pa.Table, pl.DataFrame]
) -> _lines.LineBatch:
    """Quarantine, deduplicate and buffer a parsed block."""
    batch, events, bad = parsed
    prefix = f"{block.fp}-{block.start}"
    _quarantine(run, f"{prefix}-lines", block.source, _bad_lines_frame(batch.bad))
    _quarantine(run, f"{prefix}-events", block.source, bad)
    run.bytes_read += len(block.data)
    _accept(run, events)
    _report(run)
    return batch


def _report(run: _Run) -> None:
    if run.progress:
        run.progress(Progress(run.files_done, run.files, run.bytes_read, run.events_read))


def _process(run: _Run, block: _Block) -> _lines.LineBatch:
    """Parse and store one block, in this thread."""
    return _store_block(run, block, _parse_block(run, block, _cut(run, block)))


def _stream_state(run: _Run, fp: str) -> dict[str, Any]:
    """How far this stream has been loaded, counting what this run has not committed yet."""
    return run.pending.get(fp) or run.sources.get(fp) or {}


def _resumes(path: Path, state: dict[str, Any]) -> bool:
    """Whether ``path`` holds, just before the recorded offset, the line the stream ended with.

    Two different logs can start with the same line (test data reuses events); resuming the
    second at the first one's offset would skip its events, so the last loaded line is checked.
    """
    check_at, offset = int(state.get("check_at", 0)), int(state.get("offset", 0))
    if offset == 0:
        return True
    seen = b""
    for chunk in _lines.raw_chunks(path, start=check_at, truncated=[]):
        seen += chunk
        if len(seen) >= offset - check_at:
            break
    return hashlib.sha256(seen[: offset - check_at]).hexdigest() == state.get("check")


def _load_lines(run: _Run, path: Path, fmt: str, fp: str) -> int:
    """Load a JSON-lines file from where the last run stopped; return the offset reached.

    While one block is cut and deduplicated here, the one before is parsed in a second thread
    and the last flush is written in a third (DuckDB, Arrow and polars release the GIL), so
    reading, parsing and writing overlap.
    """
    source = str(path)
    state = _stream_state(run, fp)
    if not _resumes(path, state):
        state = {}
    offset, line_no = int(state.get("offset", 0)), int(state.get("line", 1))
    truncated: list[str] = []
    inflight: tuple[_Block, Future[Any]] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaudit-parse") as pool:
        for raw, at, carry in _lines.line_blocks(path, offset, truncated):
            data, start = raw, at
            if carry:
                data, start = _final_line(run, carry, at, line_no, source, fp, truncated)
            if not data:
                continue
            block = _Block(data, line_no, start, fp, fmt, source)
            batch = _cut(run, block)
            future = pool.submit(_parse_block, run, block, batch)
            line_no = batch.end_line
            if inflight:
                offset = _finish_block(run, *inflight)
            inflight = (block, future)
        if inflight:
            offset = _finish_block(run, *inflight)
    return offset


def _finish_block(run: _Run, block: _Block, future: Future[Any]) -> int:
    """Store a parsed block and record how far its source is loaded; return that offset."""
    batch = _store_block(run, block, future.result())
    data = block.data
    last = bytes(data[-min(len(data), 1 << 20) :])
    tail = last[last.rfind(b"\n", 0, len(last) - 1) + 1 :]
    run.pending[block.fp] = {
        "offset": batch.end_offset,
        "line": batch.end_line,
        "check_at": batch.end_offset - len(tail),
        "check": hashlib.sha256(tail).hexdigest(),
    }
    if run.buffered_bytes >= FLUSH_BYTES:
        _flush(run)
    return batch.end_offset


def _load_document(run: _Run, path: Path, fp: str) -> int | None:
    """Load a file holding one JSON value (pretty-printed event, EventList or array of events).

    Returns the bytes consumed, or None when the file is not one JSON document after all (a
    JSON-lines file whose first line is broken), so that the caller reads it as lines.
    """
    raw = b"".join(_lines.raw_chunks(path, truncated=[]))
    # JSON, YAML (``*.yaml``/``*.yml``) or JSON values written back to back (Firehose).
    value = _formats.parse_document(raw.removeprefix(_lines.BOM_UTF8), path.name)
    if value is None:
        return None
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
        _process(run, _Block(data, 1, 0, fp, "auto", str(path), label=fmt))
    run.pending[fp] = {"offset": len(raw), "line": len(items) + 1, "format": fmt}
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
            frame = pl.DataFrame(
                {
                    "line": [line_no],
                    "reason": ["truncated-gzip"],
                    "detail": [truncated[0]],
                    "raw": [carry[:65536]],
                },
                schema={
                    "line": pl.Int64,
                    "reason": pl.String,
                    "detail": pl.String,
                    "raw": pl.Binary,
                },
            )
            _quarantine(run, f"{fp}-{start}-tail", source, frame)
            return b"", start + len(carry)
        run.partial.add(fp)
        return b"", start
    return carry + b"\n", start


# --- writing -----------------------------------------------------------------------------------


def _known_keys(run: _Run, day: dt.date) -> _dedupe.KeyIndex:
    """The keys of one partition: loaded from the lake once per run, then kept up to date."""
    key = (run.cluster, day)
    if key not in run.keys:
        index = _dedupe.KeyIndex()
        stored = _lake.partition_keys(run.lake, run.cluster, day)
        if stored is not None:
            hashes = stored.select(_dedupe.HASHES).collect()
            index.add(hashes["h1"].to_numpy(), hashes["h2"].to_numpy())
        run.keys[key] = index
    return run.keys[key]


def _accept(run: _Run, events: pa.Table) -> None:
    """Deduplicate a batch against the lake and the run so far, then buffer it by day.

    Only the 16-byte keys are looked up; the wide event rows are copied only when a batch does
    hold duplicates, which the common case (a file loaded once) never has.
    """
    run.events_read += events.num_rows
    if not events.num_rows:
        return
    hashes = pl.DataFrame(pl.from_arrow(events.select([s.AUDIT_ID, s.STAGE]))).select(
        *_dedupe.HASHES, pl.struct(*_dedupe.HASHES).is_first_distinct().alias("first")
    )
    h1, h2 = hashes["h1"].to_numpy(), hashes["h2"].to_numpy()
    new = hashes["first"].to_numpy().copy()
    days = events[s.DATE].to_numpy()
    distinct = np.unique(days)
    for day in distinct:
        # The same (audit_id, stage) has the same request_ts, so it never spans two days.
        rows = np.flatnonzero(new if len(distinct) == 1 else new & (days == day))
        index = _known_keys(run, day.astype(dt.date))
        new[rows[index.contains(h1[rows], h2[rows])]] = False
        added = rows[new[rows]]
        index.add(h1[added], h2[added])
    fresh = events if new.all() else events.filter(new)
    run.duplicates += events.num_rows - fresh.num_rows
    for day in distinct.astype(dt.date):
        part = fresh if len(distinct) == 1 else fresh.filter(pc.equal(fresh[s.DATE], day))
        if part.num_rows:
            run.buffer.setdefault(day, []).append(part.drop_columns([s.DATE]))
    run.buffered_bytes += int(pc.sum(fresh[s.EVENT_BYTES]).as_py() or 0)


def _flush(run: _Run) -> None:
    """Hand buffered events, quarantine records and progress over to the writer thread.

    Sorting and writing a flush takes as long as parsing several blocks; in a thread of its own
    it overlaps the next blocks instead of stalling them. One flush is in flight at most, which
    bounds memory, and the writer records how far each source got only after its files are in
    place, so a crash still costs at most a re-read.
    """
    if run.writing is not None:
        run.writing.result()  # also raises what went wrong in the writer
        run.writing = None
    parts = {day: pa.concat_tables(tables) for day, tables in run.buffer.items()}
    for day, part in parts.items():
        run.partitions.add(f"{s.CLUSTER}={run.cluster}/{s.DATE}={day}")
        run.events_written += part.num_rows
    quarantine, sources = run.quarantine, None
    if run.pending:
        run.sources.update(run.pending)
        run.pending.clear()
        sources = dict(run.sources)
    run.buffer, run.quarantine, run.buffered_bytes = {}, [], 0
    if parts or quarantine or sources is not None:
        run.writing = run.writer.submit(commit, run.lake, run.cluster, parts, quarantine, sources)


# --- one file, then the whole run --------------------------------------------------------------


def _unchanged(run: _Run, path: Path, stat: os.stat_result) -> bool:
    seen = run.sources.get(f"file:{run.cluster}:{path}")
    if not seen or seen.get("size") != stat.st_size or seen.get("mtime_ns") != stat.st_mtime_ns:
        return False
    stream = _stream_state(run, seen.get("fingerprint", ""))
    return int(stream.get("offset", -1)) >= int(seen.get("end", 0))


def _quarantine_file(run: _Run, path: Path, fp: str, reason: str, detail: str, raw: bytes) -> None:
    frame = pl.DataFrame(
        {"line": [0], "reason": [reason], "detail": [detail], "raw": [raw[:65536]]},
        schema={"line": pl.Int64, "reason": pl.String, "detail": pl.String, "raw": pl.Binary},
    )
    name = hashlib.sha256(f"{fp}\0{path}".encode()).hexdigest()[:32]
    _quarantine(run, f"{name}-file", str(path), frame)
    run.pending[fp] = {"offset": 0, "line": 1}


def _load_file(run: _Run, path: Path, fmt: str | None) -> None:
    stat = path.stat()
    if _unchanged(run, path, stat):
        run.files_unchanged += 1
        return
    head = _first_bytes(path)
    if not head.removeprefix(_lines.BOM_UTF8).strip():
        fp = "empty-" + hashlib.sha256(f"{run.cluster}\0{path}".encode()).hexdigest()[:26]
        _quarantine_file(run, path, fp, "empty-file", "the file holds no data", b"")
        end = 0
    else:
        fp = _fingerprint(head, run.cluster)
        kind = _formats.detect(head, stat.st_size, MAX_DOCUMENT_BYTES)
        end = None
        if kind == "document" or (kind == "unknown" and _formats.is_yaml_name(path.name)):
            end = _load_document(run, path, fp)
            kind = "document" if end is not None else kind
        if kind == "unknown" and fmt is None:
            detail = "it is neither JSON lines nor a JSON document of audit events"
            _quarantine_file(run, path, fp, "unknown-format", detail, head[:4096])
            end = 0
        elif end is None:
            end = _load_lines(run, path, fmt or "auto", fp)
    run.pending[f"file:{run.cluster}:{path}"] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "fingerprint": fp,
        "end": end,
    }


def ingest(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    *,
    cluster: str = "default",
    format: str | None = None,
    keep_secrets: bool = False,
    wait: bool = True,
    max_line_bytes: int = _lines.MAX_LINE_BYTES,
    progress: Callable[[Progress], None] | None = None,
) -> IngestStats:
    """Load audit logs into a lake, incrementally; return what was done.

    Parameters
    ----------
    sources
        Files, folders (read recursively) and glob patterns: JSON-lines logs as the
        kube-apiserver writes them (rotated, ``.gz``), webhook ``EventList`` documents,
        ``audit.k8s.io/v1beta1`` and ``v1alpha1`` events. The format is detected per file.
    lake
        The lake folder; created when missing.
    cluster
        The ``cluster`` partition the events go to.
    format
        Force one of ``FORMATS`` instead of detecting it.
    keep_secrets
        Keep Secret values and tokens in logged bodies (they are redacted by default).
    wait
        When another ingest holds the lake, wait for it (default) or raise ``LakeLockedError``.
    max_line_bytes
        Lines longer than this are quarantined.
    progress
        Called with a ``Progress`` (files, bytes and events so far) after each batch and file.

    Raises
    ------
    IngestError
        When a source does not exist or cannot be read, or an option is wrong.
    kaudit_analytics.lake.LakeError
        When the lake cannot be written.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> stats = ka.ingest(SAMPLE_DIR, tempfile.mkdtemp())
    >>> stats.events_written > 10_000, stats.quarantined
    (True, 0)
    """
    if format is not None and format not in FORMATS:
        msg = f"unknown format {format!r}: choose one of {', '.join(FORMATS)}"
        raise IngestError(msg)
    try:
        _lake.check_cluster(cluster)
    except ValueError as exc:
        raise IngestError(str(exc)) from exc
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    try:
        files = _discover.expand(paths)
    except _discover.SourceError as exc:
        raise IngestError(str(exc)) from exc
    root = Path(lake)
    began = time.perf_counter()
    with _lake.locked(root, wait=wait):
        run = _Run(
            lake=root,
            cluster=cluster,
            keep_secrets=keep_secrets,
            max_line_bytes=max_line_bytes,
            progress=progress,
            parser=_parse.Parser(),
            sources=_lake.load_sources(root),
            files=len(files),
        )
        try:
            for path in files:
                _load_file(run, path, format)
                run.files_done += 1
                _report(run)
            _flush(run)
            if run.writing is not None:
                run.writing.result()
        finally:
            run.writer.shutdown(wait=True)
            run.parser.close()
    return IngestStats(
        lake=root,
        files=len(files),
        files_unchanged=run.files_unchanged,
        bytes_read=run.bytes_read,
        events_read=run.events_read,
        events_written=run.events_written,
        duplicates=run.duplicates,
        quarantined=run.quarantined,
        partial_lines=len(run.partial),
        partitions=tuple(sorted(run.partitions)),
        problems=tuple(
            Problem(reason, count, where) for reason, (count, where) in run.problems.items()
        ),
        seconds=time.perf_counter() - began,
        skipped=sum(run.skipped.values()),
        skipped_by_kind=tuple(sorted(run.skipped.items())),
    )
