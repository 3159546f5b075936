"""Cut raw log files into batches of lines, in bounded memory, noting every bad line.

The reader works on bytes: it never decodes a whole file, it finds line ends with numpy and hands
the batch to Arrow without copying. A batch knows each line's number and byte offset, so the loader
can resume a growing file after its last complete line and point at any line it could not load.
"""

from __future__ import annotations

import codecs
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

#: Bytes read per step; a batch holds about this much text.
CHUNK_BYTES = 16 * 1024 * 1024
#: A line longer than this is quarantined instead of parsed (DuckDB's default object limit).
MAX_LINE_BYTES = 16 * 1024 * 1024

BOM_UTF8 = codecs.BOM_UTF8
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class BadLine:
    """A line that cannot become an event before it is even parsed: its bytes, whole."""

    line: int
    reason: str
    detail: str
    raw: bytes
    offset: int = 0


def too_long(length: int, limit: int) -> str:
    """The quarantine detail of a line over the line-size limit.

    Examples
    --------
    >>> too_long(52_428_800, 16_777_216)
    '52,428,800 bytes, over the line-size limit of 16,777,216 bytes (--max-line-bytes)'
    """
    return f"{length:,} bytes, over the line-size limit of {limit:,} bytes (--max-line-bytes)"


@dataclass
class LineBatch:
    """Consecutive complete lines of one file.

    ``text`` holds one string per line, pointing into the chunk's bytes without a copy: each
    string keeps its line end, which JSON parsers read as white space. ``keep`` is False for blank
    and bad lines (their text is blanked), ``nbytes`` is each line's length without its line end.
    ``end_offset``/``end_line`` say where the next batch starts, in decompressed bytes;
    ``starts`` is each line's offset in the batch (add the batch's base offset for the file's).
    """

    text: pa.LargeStringArray
    line: np.ndarray
    nbytes: np.ndarray
    keep: np.ndarray
    end_offset: int
    end_line: int
    bad: list[BadLine] = field(default_factory=list)
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _gzip_chunks(handle: BinaryIO, truncated: list[str]) -> Iterator[bytes]:
    """Decompress every gzip member; a cut-off or corrupt stream ends the iteration and is noted."""
    decomp = zlib.decompressobj(zlib.MAX_WBITS | 16)
    fed = False  # whether the current member has seen any input
    while raw := handle.read(CHUNK_BYTES // 4):
        while raw:
            fed = True
            try:
                out = decomp.decompress(raw)
            except zlib.error as exc:
                truncated.append(f"corrupt gzip data ({exc})")
                return
            if out:
                yield out
            raw = b""
            if decomp.eof:
                # `--audit-log-compress` output and `cat a.gz b.gz` both hold several members.
                raw = decomp.unused_data
                decomp = zlib.decompressobj(zlib.MAX_WBITS | 16)
                fed = False
    if fed and not decomp.eof:
        if tail := decomp.flush():
            yield tail
        truncated.append("the gzip stream ends in the middle of a member (truncated file)")


def raw_chunks(path: Path, *, start: int = 0, truncated: list[str]) -> Iterator[bytes]:
    """Yield the file's decompressed bytes from ``start`` on, in chunks of about ``CHUNK_BYTES``."""
    with path.open("rb") as handle:
        if handle.read(2) == _GZIP_MAGIC:
            handle.seek(0)
            skip = start
            for chunk in _gzip_chunks(handle, truncated):
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                yield chunk[skip:]
                skip = 0
            return
        handle.seek(start)
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


Block = tuple[bytes | memoryview, int, bytes]


def line_blocks(path: Path, start: int, truncated: list[str]) -> Iterator[Block]:
    """Yield (complete lines, their start offset, b"") blocks, then (b"", end offset, rest).

    ``rest`` holds the bytes after the last line end: a last line without a line end, or one that
    is still being written. Plain reads, not a memory map: faulting in a mapped file page by page
    cost more than the whole parse (measured: 4.6 ms per MB against 0.15 for ``read``).
    """
    carry = b""
    offset = start
    first = start == 0
    for raw in raw_chunks(path, start=start, truncated=truncated):
        chunk = raw
        if first:
            chunk, skipped = strip_bom(raw)
            offset += skipped
            first = False
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        # A view, not a slice: slicing would copy the whole block once more.
        yield memoryview(data)[: cut + 1], offset, b""
        offset += cut + 1
        carry = data[cut + 1 :]
    yield b"", offset, carry


def _utf8_errors(data: bytes | memoryview, starts: np.ndarray) -> list[int]:
    """Indexes of the lines (by their start offsets) that hold invalid UTF-8."""
    bad: list[int] = []
    pos = 0
    while True:
        try:
            str(data[pos:], "utf-8")
        except UnicodeDecodeError as exc:
            where = pos + exc.start
            index = int(np.searchsorted(starts, where, side="right")) - 1
            bad.append(index)
            nxt = bytes(data[where : where + MAX_LINE_BYTES]).find(b"\n")
            nxt = nxt + where if nxt >= 0 else -1
            if nxt < 0:
                return bad
            pos = nxt + 1
        else:
            return bad


_SCRATCH = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A reusable mask as long as a block: a fresh 16 MiB array per block cost page faults and
    zeroing of new memory (a twentieth of a load's CPU time in a profile)."""
    mask: np.ndarray | None = getattr(_SCRATCH, "mask", None)
    if mask is None or len(mask) < size:
        mask = _SCRATCH.mask = np.empty(max(size, CHUNK_BYTES + (1 << 20)), dtype=bool)
    return mask[:size]


def split_lines(
    data: bytes | memoryview,
    *,
    first_line: int,
    base_offset: int,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> LineBatch:
    """Split ``data`` (complete lines, each ending in ``\\n``) into a batch.

    Blank lines are skipped silently (several publishers end files with one); a ``\\r`` before
    the line end is not counted; invalid UTF-8 and over-long lines become ``BadLine`` records.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(np.equal(buf, 10, out=_scratch(len(buf))))
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    stops = ends.copy()
    # Windows line ends: the \r is not part of the event's length.
    stops[(stops > starts) & (buf[np.maximum(stops - 1, 0)] == 13)] -= 1
    lengths = stops - starts
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    keep = lengths > 0
    # A line of spaces or tabs only is as blank as an empty one; such lines are short and rare.
    for i in np.flatnonzero(keep & (lengths < 8)):
        keep[i] = bool(bytes(data[starts[i] : stops[i]]).strip())

    bad: list[BadLine] = []
    blank: list[int] = []
    for i in np.flatnonzero(keep & (lengths > max_line_bytes)):
        # The line is kept whole: a quarantine record is only useful if it can be re-tried.
        bad.append(
            BadLine(
                int(numbers[i]),
                "line-too-long",
                too_long(int(lengths[i]), max_line_bytes),
                bytes(data[starts[i] : stops[i]]),
                base_offset + int(starts[i]),
            )
        )
        keep[i] = False
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[:1] = 0
    offsets[1:] = ends + 1
    text = pa.LargeStringArray.from_buffers(
        len(ends), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)
    )
    try:
        text.validate(full=True)  # checks UTF-8 in C++; the Python search runs only on failure
        invalid: list[int] = []
    except pa.ArrowInvalid:
        invalid = _utf8_errors(data, starts)
    for index in invalid:
        if keep[index]:
            raw = bytes(data[starts[index] : stops[index]])
            at = base_offset + int(starts[index])
            bad.append(BadLine(int(numbers[index]), "invalid-utf8", "not valid UTF-8", raw, at))
            keep[index] = False
            blank.append(index)
    if blank:
        # Arrow strings must be valid UTF-8: blank out the bad lines in a copy (they are kept,
        # byte for byte, in their quarantine records).
        patched = bytearray(data)
        for index in blank:
            patched[starts[index] : stops[index]] = b" " * int(lengths[index])
        text = pa.LargeStringArray.from_buffers(
            len(ends), pa.py_buffer(offsets.tobytes()), pa.py_buffer(bytes(patched))
        )
    return LineBatch(
        text=text,
        line=numbers,
        nbytes=lengths.astype(np.int64),
        keep=keep,
        end_offset=base_offset + len(data),
        end_line=first_line + len(ends),
        bad=bad,
        starts=starts,
    )


def strip_bom(chunk: bytes) -> tuple[bytes, int]:
    """Drop a UTF-8 byte-order mark at the start of a file; return the bytes and how many went."""
    if chunk.startswith(BOM_UTF8):
        return chunk[len(BOM_UTF8) :], len(BOM_UTF8)
    return chunk, 0
