"""The on-disk lake: the only module that knows its layout.

::

    LAKE/events/cluster=C/date=YYYY-MM-DD/part-*.parquet   the events table (zstd, hive partitions)
    LAKE/quarantine/part-*.parquet                        lines that could not become events
    LAKE/_kaudit/sources.json                             how far each source has been loaded
    LAKE/_kaudit/lock                                     one writer at a time

Every file appears under its final name by an atomic rename, so a reader (``scan``, DuckDB, Spark)
never sees a half-written file, whatever happens to the writer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kaudit_analytics import schema as s
from kaudit_analytics.window import Window, as_utc

__all__ = [
    "EXPORT_FORMATS",
    "LakeError",
    "LakeLockedError",
    "LakeOverview",
    "connect",
    "describe",
    "export",
    "scan",
    "span",
]

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


class LakeError(OSError):
    """The lake cannot be read or written (missing, not a lake, not writable)."""


class LakeLockedError(LakeError):
    """Another ingest holds the lake and the caller asked not to wait."""


#: The events table's folder inside a lake.
EVENTS = "events"


def events_dir(lake: Path) -> Path:
    """The events table's folder of a local lake."""
    return lake / EVENTS


def events_url(lake: str | os.PathLike[str]) -> str:
    """The events table's location of a lake given as a path or a URL (``s3a://…``)."""
    text = os.fspath(lake)
    return text.rstrip("/") + "/" + EVENTS if "://" in text else str(events_dir(Path(text)))


def is_lake(lake: str | os.PathLike[str]) -> bool:
    """Whether a local folder holds a lake's events table."""
    return events_dir(Path(lake)).is_dir()


def check_cluster(cluster: str) -> str:
    """A cluster name becomes a folder name: keep it to what every engine reads back as-is."""
    if not _CLUSTER_NAME.match(cluster):
        msg = (
            f"cluster name {cluster!r} is not allowed: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
        raise ValueError(msg)
    return cluster


def partition_dir(lake: Path, cluster: str, date: dt.date) -> Path:
    return events_dir(lake) / f"{s.CLUSTER}={cluster}" / f"{s.DATE}={date.isoformat()}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a hidden temporary file in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_partition(lake: Path, cluster: str, date: dt.date, table: pa.Table) -> Path:
    """Write one Parquet file of events (``FILE_SCHEMA``) into its partition, sorted by time.

    ``table`` is Arrow as the loader's parser makes it; pyarrow writes it without the copy into
    polars' string views that ``polars.write_parquet`` would need (BENCHMARKS.md).
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    path = partition_dir(lake, cluster, date) / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    table = table.select(s.FILE_SCHEMA.names())
    # A stable sort: the events of one request keep their stage order.
    ordered = table.take(pc.sort_indices(table[s.REQUEST_TS]))
    _atomic_write(path, lambda tmp: pq.write_table(ordered, tmp, **_PARQUET_OPTIONS))
    return path


def _leaf_paths(name: str, dtype: object) -> list[str]:
    """The Parquet column paths of one field (pyarrow names a list's items ``list.element``)."""
    if isinstance(dtype, pl.List):
        return _leaf_paths(f"{name}.list.element", dtype.inner)
    if isinstance(dtype, pl.Struct):
        return [path for f in dtype.fields for path in _leaf_paths(f"{name}.{f.name}", f.dtype)]
    return [name]


# Dictionary pages for the many repeated values (users, verbs, URIs, list items: named by their
# leaf paths, or pyarrow leaves nested columns plain, 11 % more bytes); delta encoding for the
# columns that grow steadily in a time-sorted file; no dictionary attempt on the columns that are
# unique per event (measured in BENCHMARKS.md).
_UNIQUE: Final = (s.AUDIT_ID, s.REQUEST_OBJECT, s.RESPONSE_OBJECT)
_DELTA: Final = (s.REQUEST_TS, s.STAGE_TS, s.SOURCE_LINE)
_PARQUET_OPTIONS: Final[dict[str, Any]] = {
    "compression": "zstd",
    # Level 1 writes smaller files than 3 here (dictionary pages hold most bytes) and faster.
    "compression_level": 1,
    "row_group_size": 256_000,
    # 1 MiB (the default) is too small for a day's URIs and names: the column fell back to plain.
    "dictionary_pagesize_limit": 8 << 20,
    "use_dictionary": [
        path
        for name, dtype in s.FILE_SCHEMA.items()
        if name not in (*_UNIQUE, *_DELTA)
        for path in _leaf_paths(name, dtype)
    ],
    "column_encoding": dict.fromkeys(_DELTA, "DELTA_BINARY_PACKED"),
}


def write_quarantine(lake: Path, frame: pl.DataFrame, name: str) -> Path:
    """Write quarantine records under a name derived from their source span.

    The name is deterministic, so a run that repeats a span after a crash replaces the file
    instead of recording the same bad lines twice.
    """
    path = lake / "quarantine" / f"part-{name}.parquet"
    rows = frame.select(s.QUARANTINE_SCHEMA.names()).cast(s.QUARANTINE_SCHEMA)
    _atomic_write(path, lambda tmp: rows.write_parquet(tmp, compression="zstd"))
    return path


def partition_keys(lake: Path, cluster: str, date: dt.date) -> pl.LazyFrame | None:
    """The (audit_id, stage) pairs already stored in one partition, or None if it is empty."""
    files = sorted(partition_dir(lake, cluster, date).glob("*.parquet"))
    if not files:
        return None
    return pl.scan_parquet(files, hive_partitioning=False).select(s.AUDIT_ID, s.STAGE)


# --- bookkeeping -------------------------------------------------------------------------------


def _meta_dir(lake: Path) -> Path:
    return lake / "_kaudit"


def load_sources(lake: Path) -> dict[str, dict[str, Any]]:
    """How far each source (by content fingerprint) has been loaded."""
    path = _meta_dir(lake) / "sources.json"
    if not path.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def save_sources(lake: Path, sources: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(sources, indent=1, sort_keys=True)
    _atomic_write(_meta_dir(lake) / "sources.json", lambda tmp: tmp.write_text(text, "utf-8"))


@contextlib.contextmanager
def locked(lake: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the lake's writer lock; ``wait=False`` fails at once when another ingest holds it.

    An OS file lock is released by the kernel when its holder dies, so a crashed ingest never
    leaves the lake locked.
    """
    meta = _meta_dir(lake)
    try:
        meta.mkdir(parents=True, exist_ok=True)
        handle = (meta / "lock").open("a+b")
    except OSError as exc:
        msg = f"cannot write to the lake at {lake}: {exc.strerror or exc}"
        raise LakeError(msg) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                msg = f"another ingest is writing to the lake at {lake}; try again when it is done"
                raise LakeLockedError(msg) from exc
            raise
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- reading -----------------------------------------------------------------------------------


def _partition_files(
    lake: Path, clusters: set[str] | None, first: dt.date | None, last: dt.date | None
) -> list[Path]:
    """Files of the partitions that can hold matching rows, pruned by folder name alone."""
    files: list[Path] = []
    for cluster_dir in sorted(events_dir(lake).glob(f"{s.CLUSTER}=*")):
        if clusters is not None and cluster_dir.name.split("=", 1)[1] not in clusters:
            continue
        for date_dir in sorted(cluster_dir.glob(f"{s.DATE}=*")):
            day = dt.date.fromisoformat(date_dir.name.split("=", 1)[1])
            if (first and day < first) or (last and day > last):
                continue
            files.extend(sorted(date_dir.glob("*.parquet")))
    return files


def _window_files(
    lake: Path,
    cluster: str | list[str] | None,
    since: dt.datetime | dt.date | str | None,
    until: dt.datetime | dt.date | str | None,
) -> tuple[list[Path], dt.datetime | None, dt.datetime | None]:
    """The files that can hold the window's events, and the window's bounds in UTC."""
    start, end = as_utc(since), as_utc(until)
    clusters = {cluster} if isinstance(cluster, str) else set(cluster) if cluster else None
    last = (end - dt.timedelta(microseconds=1)).date() if end else None
    return _partition_files(lake, clusters, start.date() if start else None, last), start, end


def scan(
    lake: str | os.PathLike[str],
    *,
    cluster: str | list[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
) -> pl.LazyFrame:
    """The events table of a lake as a LazyFrame in ``AUDIT_SCHEMA``.

    Partitions outside ``cluster`` and the ``[since, until)`` window (on ``request_ts``, UTC;
    naive values are UTC) are never opened; the row filter does the rest inside the files.

    Parameters
    ----------
    lake
        The lake folder given to ``ingest``.
    cluster
        One cluster name or several; all clusters when None.
    since, until
        Inclusive start and exclusive end of the time window: datetimes, dates or ISO strings.

    Raises
    ------
    LakeError
        When ``lake`` is not a folder.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> ka.scan(tempfile.mkdtemp()).collect().shape
    (0, 43)
    """
    root = Path(lake)
    if not root.is_dir():
        msg = f"no lake at {root}: the folder does not exist"
        raise LakeError(msg)
    files, start, end = _window_files(root, cluster, since, until)
    if not files:
        return s.empty_events().lazy()
    frame = pl.scan_parquet(
        files,
        hive_partitioning=True,
        hive_schema=dict(s.PARTITION_SCHEMA),
        schema=dict(s.FILE_SCHEMA),
    )
    if start is not None:
        frame = frame.filter(pl.col(s.REQUEST_TS) >= start)
    if end is not None:
        frame = frame.filter(pl.col(s.REQUEST_TS) < end)
    return s.conform(frame)


@dataclass(frozen=True)
class LakeOverview:
    """What a lake holds, in the terms ``make demo`` prints."""

    lake: Path
    events: int
    users: int
    clusters: tuple[str, ...]
    first: dt.datetime | None
    last: dt.datetime | None
    source_bytes: int
    parquet_files: int
    parquet_bytes: int

    def summary(self) -> str:
        span = (
            f"{self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC" if self.first else "-"
        )
        ratio = self.parquet_bytes / self.source_bytes if self.source_bytes else 0.0
        return "\n".join(
            [
                f"Lake {self.lake}",
                f"  events     {self.events:,} from {self.users:,} users in "
                f"{len(self.clusters)} cluster(s): {', '.join(self.clusters) or '-'}",
                f"  time span  {span}",
                f"  bytes      {self.source_bytes / 1e6:,.1f} MB of audit JSON stored as "
                f"{self.parquet_bytes / 1e6:,.1f} MB of Parquet in {self.parquet_files} file(s) "
                f"({ratio:.1%})",
            ]
        )


def describe(lake: str | os.PathLike[str]) -> LakeOverview:
    """Count what a lake holds: events, users, clusters, time span, source and Parquet bytes.

    Examples
    --------
    >>> import tempfile
    >>> from kaudit_analytics.lake import describe
    >>> describe(tempfile.mkdtemp()).events
    0
    """
    root = Path(lake)
    row = (
        scan(root)
        .select(
            pl.len().alias("events"),
            pl.col(s.USER).n_unique().alias("users"),
            pl.col(s.CLUSTER).unique().sort().alias("clusters").implode(),
            pl.col(s.REQUEST_TS).min().alias("first"),
            pl.col(s.REQUEST_TS).max().alias("last"),
            pl.col(s.EVENT_BYTES).sum().alias("source_bytes"),
        )
        .collect()
        .row(0, named=True)
    )
    files = list(events_dir(root).rglob("*.parquet"))
    return LakeOverview(
        lake=root,
        events=row["events"],
        users=row["users"] if row["events"] else 0,
        clusters=tuple(row["clusters"] or ()),
        first=row["first"],
        last=row["last"],
        source_bytes=row["source_bytes"] or 0,
        parquet_files=len(files),
        parquet_bytes=sum(f.stat().st_size for f in files),
    )


# --- the lake's span and SQL ---------------------------------------------------------------------


def require_lake(lake: str | os.PathLike[str]) -> Path:
    """``lake`` as a path, or ``LakeError`` saying in one sentence that it is not a lake."""
    if not is_lake(lake):
        msg = f"{lake} is not a kaudit lake (it has no events folder): run 'kaudit ingest' first"
        raise LakeError(msg)
    return Path(lake)


def span(lake: str | os.PathLike[str], *, cluster: str | list[str] | None = None) -> Window:
    """The lake's own time span: from its first event to just after its last.

    What "the last 7 days" means for a lake whose logs are not from this week (the bundled
    sample is from 2024): count back from ``span(lake).until`` instead of the clock.

    Raises
    ------
    LakeError
        When ``lake`` is not a lake, or holds no events (of ``cluster``).

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> _ = ka.ingest(SAMPLE_DIR, lake)
    >>> window = ka.lake.span(lake)
    >>> window.since.isoformat(), window.until.isoformat()
    ('2024-09-10T00:00:07.843150+00:00', '2024-09-12T02:45:48.219269+00:00')
    """
    require_lake(lake)
    first, last = (
        scan(lake, cluster=cluster)
        .select(pl.col(s.REQUEST_TS).min().alias("first"), pl.col(s.REQUEST_TS).max().alias("last"))
        .collect()
        .row(0)
    )
    if first is None:
        names = [cluster] if isinstance(cluster, str) else cluster or []
        which = f" of cluster {', '.join(names)}" if names else ""
        msg = f"the lake at {lake} holds no events{which}"
        raise LakeError(msg)
    return Window(first, last + dt.timedelta(microseconds=1))


# Text formats write times as ISO 8601 in UTC (the connection's time zone), as --json does.
_ISO = "TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%S.%fZ'"
#: ``--out`` suffix -> DuckDB's COPY options.
EXPORT_FORMATS: Final = {
    ".csv": f"FORMAT csv, HEADER true, {_ISO}",
    ".parquet": "FORMAT parquet, COMPRESSION zstd",
    ".json": f"FORMAT json, ARRAY true, {_ISO}",
    ".jsonl": f"FORMAT json, {_ISO}",
    ".ndjson": f"FORMAT json, {_ISO}",
}


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(
    lake: str | os.PathLike[str],
    *,
    cluster: str | list[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
) -> Any:
    """A DuckDB connection where the view ``events`` is the lake's events table.

    The view reads the Parquet files of the partitions in ``cluster`` and ``[since, until)``
    (as ``scan`` does) with DuckDB's own reader, so any SQL runs on the lake without loading
    it; columns are those of ``AUDIT_SCHEMA``, timestamps in UTC.

    Raises
    ------
    LakeError
        When ``lake`` is not a lake.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> _ = ka.ingest(SAMPLE_DIR, lake)
    >>> con = ka.lake.connect(lake, since="2024-09-11", until="2024-09-12")
    >>> con.sql("SELECT verb, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 2").fetchall()
    [('get', 3996), ('watch', 2146)]
    """
    import duckdb

    files, start, end = _window_files(require_lake(lake), cluster, since, until)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(f'"{name}"' for name in s.AUDIT_SCHEMA.names())
    if not files:
        con.register("_no_events", s.empty_events().to_arrow())
        con.execute(f"CREATE VIEW events AS SELECT {columns} FROM _no_events")
        return con
    where = [
        *([f"request_ts >= {_sql_text(start.isoformat())}::TIMESTAMPTZ"] if start else []),
        *([f"request_ts < {_sql_text(end.isoformat())}::TIMESTAMPTZ"] if end else []),
    ]
    source = (
        f"read_parquet([{', '.join(_sql_text(str(f)) for f in files)}], hive_partitioning = true,"
        " hive_types = {'cluster': VARCHAR, 'date': DATE}, union_by_name = true)"
    )
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    con.execute(f"CREATE VIEW events AS SELECT {columns} FROM {source}{condition}")
    return con


def export(connection: Any, sql: str, path: str | os.PathLike[str]) -> int:
    """Write the result of ``sql`` to ``path`` (.csv, .parquet, .json, .jsonl), streaming.

    Returns the number of rows written.

    Raises
    ------
    ValueError
        When the file's suffix is not one of ``EXPORT_FORMATS``.
    """
    target = Path(path)
    options = EXPORT_FORMATS.get(target.suffix.lower())
    if options is None:
        msg = f"cannot export to {target.name}: use one of {', '.join(EXPORT_FORMATS)}"
        raise ValueError(msg)
    statement = sql.strip().rstrip(";")
    rows = connection.execute(
        f"COPY ({statement}) TO {_sql_text(str(target))} ({options})"
    ).fetchall()
    return int(rows[0][0]) if rows else 0
