"""The lake: the only module that knows its layout and its table format.

::

    LAKE/events/                                 the events table, a Delta Lake table
        _delta_log/                              its transaction log: one JSON file per commit
        cluster=C/date=YYYY-MM-DD/part-*.parquet
    LAKE/quarantine/                             lines that could not become events, a Delta table
        _delta_log/  part-*.parquet

``LAKE`` is a local folder or an object-store URL (``s3://``, ``gs://``, ``az://``). A writer
writes Parquet files into their partition folders first (*staging*: no reader sees a file the
log does not list), then makes them visible by one commit to the log, which either lands whole
or not at all. The commit also carries how far each source was loaded (Delta ``txn`` actions),
so data and bookkeeping change together; several writers commit concurrently (the log's
optimistic concurrency: a commit fails if another one landed first, and the writer checks again).

Lakes written before the table format (``events/`` folders and ``_kaudit/sources.json``) are
still read; ``upgrade`` registers their files in a Delta log in place, without copying them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kaudit_analytics import schema as s
from kaudit_analytics.window import Window, as_utc

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = [
    "EXPORT_FORMATS",
    "ClusterOverview",
    "CommitConflictError",
    "LakeError",
    "LakeLockedError",
    "LakeOverview",
    "connect",
    "describe",
    "export",
    "files",
    "history",
    "scan",
    "span",
]

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


class LakeError(OSError):
    """The lake cannot be read or written (missing, not a lake, not writable)."""


class LakeLockedError(LakeError):
    """Another writer committed first and the caller asked not to wait (``wait=False``)."""


class CommitConflictError(LakeError):
    """Another writer committed between this writer's read and its commit: check again."""


#: The events table's folder inside a lake.
EVENTS: Final = "events"
#: The quarantine table's folder inside a lake.
QUARANTINE: Final = "quarantine"
#: Bookkeeping of lakes written before the table format (read by ``upgrade`` only).
_LEGACY_META: Final = "_kaudit"
_LOG: Final = "_delta_log"

#: URL schemes of object stores a lake can live in (delta-rs and polars read them natively).
REMOTE_SCHEMES: Final = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://")

#: Table properties of a new lake. The log is the lake's audit trail (``history``): keep it
#: for ten years rather than Delta's default 30 days, and do not list it for expired entries
#: after every commit (0.1 s a commit at 1,000 versions; ``vacuum`` cleans it instead). Files
#: removed by compaction or retention stay a week for readers that started before (Delta's
#: default, spelt out). The time columns keep their per-file ranges in the log whatever their
#: position (delta-rs keeps statistics of the first 32 columns only, otherwise).
TABLE_CONFIG: Final[dict[str, str | None]] = {
    "delta.logRetentionDuration": "interval 3650 days",
    "delta.enableExpiredLogCleanup": "false",
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.dataSkippingStatsColumns": "request_ts,stage_ts",
}
_QUARANTINE_CONFIG: Final = {
    k: v for k, v in TABLE_CONFIG.items() if k != "delta.dataSkippingStatsColumns"
}

# --- where a lake is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a lake lives: a local folder (absolute) or an object-store URL, and how to reach it.

    ``options`` are delta-rs storage options; credentials come from the environment as for any
    AWS, Google Cloud or Azure client (``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``,
    ``AZURE_STORAGE_*``), see the README.
    """

    uri: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def remote(self) -> bool:
        return self.uri.startswith(REMOTE_SCHEMES)

    @property
    def local(self) -> Path | None:
        return None if self.remote else Path(self.uri)

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self.options)

    def table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def __str__(self) -> str:
        return self.uri


def _user_options() -> dict[str, str]:
    extra = os.environ.get("KAUDIT_STORAGE_OPTIONS")
    if not extra:
        return {}
    try:
        return {str(k): str(v) for k, v in json.loads(extra).items()}
    except (ValueError, AttributeError) as exc:
        msg = f"KAUDIT_STORAGE_OPTIONS is not a JSON object of strings: {exc}"
        raise LakeError(msg) from exc


def storage_options(uri: str) -> dict[str, str]:
    """delta-rs options a lake at ``uri`` needs beyond what the environment gives.

    S3 has no atomic rename; concurrent writers need either S3's conditional writes (``PUT``
    with ``If-None-Match``, which AWS S3, MinIO and moto honour) or a DynamoDB lock. The
    conditional write is the default unless ``AWS_S3_LOCKING_PROVIDER`` chooses the lock.
    ``KAUDIT_STORAGE_OPTIONS`` (a JSON object) adds or overrides options, e.g. an endpoint.
    """
    options: dict[str, str] = {}
    if uri.startswith(("s3://", "s3a://")) and not os.environ.get("AWS_S3_LOCKING_PROVIDER"):
        options["conditional_put"] = "etag"
    return {**options, **_user_options()}


def locate(lake: str | os.PathLike[str] | Location) -> Location:
    """The ``Location`` of a lake given as a folder, a URL or a ``Location``.

    Examples
    --------
    >>> locate("s3a://bucket/lake/").uri
    's3://bucket/lake'
    """
    if isinstance(lake, Location):
        return lake
    text = os.fspath(lake)
    if text.startswith(REMOTE_SCHEMES):
        # Spark spells S3 s3a://; delta-rs and polars spell it s3://.
        uri = ("s3://" + text.removeprefix("s3a://")) if text.startswith("s3a://") else text
        uri = uri.rstrip("/")
        return Location(uri, tuple(sorted(storage_options(uri).items())))
    return Location(str(Path(text).absolute()))


def events_url(lake: str | os.PathLike[str]) -> str:
    """The events table's location of a lake given as a path or a URL (``s3a://…`` kept)."""
    text = os.fspath(lake)
    return text.rstrip("/") + "/" + EVENTS if "://" in text else str(Path(text) / EVENTS)


def check_cluster(cluster: str) -> str:
    """A cluster name becomes a folder name: keep it to what every engine reads back as-is."""
    if not _CLUSTER_NAME.match(cluster):
        msg = (
            f"cluster name {cluster!r} is not allowed: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
        raise ValueError(msg)
    return cluster


LakeState = Literal["delta", "folder", "empty", "missing", "foreign"]


def state(lake: str | os.PathLike[str] | Location) -> LakeState:
    """What is at a lake's location.

    ``delta``: a lake with a table log; ``folder``: a lake from before the table format
    (readable; ``upgrade`` converts it); ``empty``: an empty folder; ``missing``: nothing there;
    ``foreign``: a file, or a folder holding something else. An object-store location is
    ``delta`` or ``missing`` (a prefix is not a folder).
    """
    where = locate(lake)
    root = where.local
    if root is None:
        return "delta" if _is_table(where, EVENTS) else "missing"
    if not root.is_dir():
        return "foreign" if root.exists() else "missing"
    if (root / EVENTS / _LOG).is_dir():
        return "delta"
    if (root / _LEGACY_META / "sources.json").is_file() or (root / EVENTS).is_dir():
        return "folder"
    with os.scandir(root) as entries:
        busy = any(not entry.name.startswith(".") for entry in entries)
    return "foreign" if busy else "empty"


def is_lake(lake: str | os.PathLike[str]) -> bool:
    """Whether a location holds a lake (of either generation)."""
    return state(lake) in ("delta", "folder")


def is_lake_folder(path: Path) -> bool:
    """Whether a local folder is a lake or one of its tables: never read one as input logs."""
    return (
        (path / _LOG).is_dir()
        or (path / EVENTS / _LOG).is_dir()
        or (path / _LEGACY_META).is_dir()
        or path.name in (_LOG, _LEGACY_META)
    )


def not_a_lake_message(lake: str | os.PathLike[str] | Location) -> str:
    where = locate(lake)
    kind = state(where)
    if kind == "foreign":
        return f"{where} is not a lake: it holds other files (a lake holds events/ and quarantine/)"
    what = "the folder does not exist" if kind == "missing" else "the folder is empty"
    return f"no lake at {where}: {what}; load logs into it with `kaudit ingest LOGS --lake {where}`"


def require_lake(lake: str | os.PathLike[str] | Location) -> Location:
    """The lake's location, or ``LakeError`` with one sentence when there is no lake there."""
    where = locate(lake)
    if state(where) not in ("delta", "folder"):
        raise LakeError(not_a_lake_message(where))
    return where


def _deltalake() -> Any:
    """The ``deltalake`` module, imported on first use (it costs 0.1 s to import)."""
    import deltalake

    return deltalake


def _is_table(where: Location, name: str) -> bool:
    try:
        return bool(
            _deltalake().DeltaTable.is_deltatable(
                where.table_uri(name), storage_options=where.storage_options
            )
        )
    except OSError as exc:
        msg = f"cannot reach the lake at {where}: {exc}"
        raise LakeError(msg) from exc


def open_table(
    lake: str | os.PathLike[str] | Location,
    name: str = EVENTS,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
) -> DeltaTable | None:
    """The table ``name`` at its latest version (or ``version``/``as_of``); None if absent.

    Raises
    ------
    LakeError
        When the version or time asked for does not exist, or the store cannot be reached.
    """
    where = locate(lake)
    root = where.local
    if root is not None and not (root / name / _LOG).is_dir():
        return None
    deltalake = _deltalake()
    errors = deltalake.exceptions
    try:
        table: DeltaTable = deltalake.DeltaTable(
            where.table_uri(name), storage_options=where.storage_options
        )
    except errors.TableNotFoundError:
        return None
    except (errors.DeltaError, OSError) as exc:
        msg = f"cannot read the lake at {where}: {exc}"
        raise LakeError(msg) from exc
    if version is None and as_of is None:
        return table
    latest = table.version()
    try:
        if version is not None:
            table.load_as_version(version)
        if as_of is not None:
            table.load_as_version(_as_of(as_of))
    except (errors.DeltaError, ValueError, OSError) as exc:
        asked = f"version {version}" if version is not None else f"a version as of {as_of}"
        msg = f"the lake at {where} has no {asked}: its versions run from 0 to {latest}"
        raise LakeError(msg) from exc
    return table


def _as_of(value: dt.datetime | str) -> dt.datetime:
    moment = as_utc(value)
    if moment is None:  # pragma: no cover - as_utc returns None only for None
        msg = "as_of needs a time"
        raise LakeError(msg)
    return moment


# --- the table's schema and Parquet files -----------------------------------------------------


def _arrow_type(dtype: pl.DataType) -> pa.DataType:
    """The Delta-compatible Arrow type of an events-table column (enums are strings there)."""
    if isinstance(dtype, pl.Enum):
        return pa.string()
    arrow: pa.DataType = (
        pl.DataFrame(schema={"x": dtype})
        .to_arrow(compat_level=pl.CompatLevel.oldest())
        .schema.field("x")
        .type
    )
    return arrow


#: The events table's schema in the Delta log: the partition columns, then the file's.
TABLE_SCHEMA: Final = pa.schema(
    [(name, _arrow_type(dtype)) for name, dtype in s.AUDIT_SCHEMA.items()]
)
QUARANTINE_TABLE_SCHEMA: Final = pa.schema(
    [(name, _arrow_type(dtype)) for name, dtype in s.QUARANTINE_SCHEMA.items()]
)
PARTITIONS: Final = [s.CLUSTER, s.DATE]
_BYTE_COLUMNS: Final = (
    s.EVENT_BYTES,
    s.REQUEST_OBJECT_BYTES,
    s.RESPONSE_OBJECT_BYTES,
    s.MANAGED_FIELDS_BYTES,
)


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

#: Columns whose range each file's log entry records, so readers skip files outside a window.
_STATS_COLUMNS: Final = (s.REQUEST_TS, s.STAGE_TS)


@dataclass(frozen=True)
class StagedFile:
    """A Parquet file written into a table's folder but not committed (no reader sees it yet).

    ``keys`` are opaque per-row arrays the writer wants back in the file's row order (the
    loader's deduplication hashes): the file's rows are sorted, so are they.
    """

    table: str
    path: str  # relative to the table's folder, '/'-separated
    size: int
    rows: int
    partition: tuple[tuple[str, str], ...]
    stats: str
    keys: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)

    @property
    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The first and last ``request_ts`` of the file's events, as its log entry has them."""
        stats = json.loads(self.stats) if self.stats else {}
        low = stats.get("minValues", {}).get(s.REQUEST_TS)
        high = stats.get("maxValues", {}).get(s.REQUEST_TS)
        if low is None or high is None:
            return None
        return as_utc(low) or dt.datetime.min, as_utc(high) or dt.datetime.max

    def action(self, *, data_change: bool = True) -> Any:
        return _deltalake().transaction.AddAction(
            path=self.path,
            size=self.size,
            partition_values=dict(self.partition),
            modification_time=int(time.time() * 1000),
            data_change=data_change,
            stats=self.stats,
        )


def _iso_ms(value: dt.datetime, *, up: bool) -> str:
    """A log entry's time bound: milliseconds (as Delta writes them), rounded outwards."""
    value = value.astimezone(dt.UTC)
    ms, rest = divmod(value.microsecond, 1000)
    bound = value.replace(microsecond=ms * 1000)
    if up and rest:
        bound += dt.timedelta(milliseconds=1)
    return bound.strftime("%Y-%m-%dT%H:%M:%S.") + f"{bound.microsecond // 1000:03d}Z"


def _file_stats(table: pa.Table, columns: Sequence[str]) -> str:
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in columns:
        if name not in table.column_names:
            continue
        column = table[name]
        nulls[name] = column.null_count
        bounds = pc.min_max(column).as_py()
        if bounds["min"] is not None:
            mins[name] = _iso_ms(bounds["min"], up=False)
            maxs[name] = _iso_ms(bounds["max"], up=True)
    return json.dumps(
        {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    )


def _store(where: Location, name: str) -> Any:
    """delta-rs's own object store, rooted at a remote table's folder (same options as the log).

    Its Python wrapper (``deltalake.fs.DeltaStorageHandler``) hands Arrow buffers to a writer
    that takes only ``bytes``; the handler underneath takes them.
    """
    from deltalake.fs import DeltaStorageHandler

    return DeltaStorageHandler(where.table_uri(name), where.storage_options)._handler


def _write_parquet(where: Location, name: str, rel: str, table: pa.Table, **options: Any) -> int:
    """Write a Parquet file durably under a table's folder; return its size."""
    root = where.local
    if root is None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        data = sink.getvalue().to_pybytes()
        stream = _store(where, name).open_output_stream(rel, None)
        try:
            stream.write(data)
        finally:
            stream.close()
        return len(data)
    path = root / name / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    # The commit makes the file visible: it must be on disk before the log names it.
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
    return path.stat().st_size


def _read_parquet(
    where: Location, name: str, rel: str, columns: list[str] | None = None
) -> pa.Table:
    root = where.local
    if root is None:
        handle = pa.PythonFile(_store(where, name).open_input_file(rel), mode="r")
        with handle:
            return pq.read_table(handle, columns=columns)
    return pq.read_table(root / name / rel, columns=columns)


def _part_name() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"part-{stamp}-{uuid.uuid4().hex[:16]}.parquet"


def partition_path(cluster: str, date: dt.date) -> str:
    return f"{s.CLUSTER}={cluster}/{s.DATE}={date.isoformat()}"


#: The events table's Parquet columns (Arrow), with the byte columns as int64.
def _conform_file(table: pa.Table) -> pa.Table:
    table = table.select(s.FILE_SCHEMA.names())
    for name in _BYTE_COLUMNS:
        at = table.schema.get_field_index(name)
        if table.schema.field(at).type != pa.int64():
            table = table.set_column(at, name, table[name].cast(pa.int64()))
    return table


def stage_events(
    lake: Location,
    cluster: str,
    date: dt.date,
    table: pa.Table,
    *,
    keys: Sequence[np.ndarray] = (),
) -> StagedFile:
    """Write one Parquet file of events (``FILE_SCHEMA``) into its partition, sorted by time.

    Nothing is visible until ``commit`` names the file. ``table`` is Arrow as the loader's
    parser makes it; pyarrow writes it without the copy into polars' string views that
    ``polars.write_parquet`` would need (BENCHMARKS.md).
    """
    # A stable sort: the events of one request keep their stage order.
    order = pc.sort_indices(table[s.REQUEST_TS])
    ordered = _conform_file(table.take(order))
    rel = f"{partition_path(cluster, date)}/{_part_name()}"
    size = _write_parquet(lake, EVENTS, rel, ordered, **_PARQUET_OPTIONS)
    at = order.to_numpy()
    return StagedFile(
        table=EVENTS,
        path=rel,
        size=size,
        rows=ordered.num_rows,
        partition=((s.CLUSTER, cluster), (s.DATE, date.isoformat())),
        stats=_file_stats(ordered, _STATS_COLUMNS),
        keys=tuple(np.asarray(k)[at] for k in keys),
    )


def restage(lake: Location, staged: StagedFile, keep: np.ndarray) -> StagedFile | None:
    """A staged file without the rows ``keep`` is False for (a new file; the old one is gone).

    Returns None when no row is kept.
    """
    try:
        if keep.all():
            return staged
        rows = np.flatnonzero(keep)
        if not len(rows):
            return None
        table = _read_parquet(lake, staged.table, staged.path).take(pa.array(rows))
        rel = f"{staged.path.rsplit('/', 1)[0]}/{_part_name()}"
        size = _write_parquet(lake, staged.table, rel, table, **_PARQUET_OPTIONS)
        return StagedFile(
            table=staged.table,
            path=rel,
            size=size,
            rows=table.num_rows,
            partition=staged.partition,
            stats=_file_stats(table, _STATS_COLUMNS),
            keys=tuple(k[rows] for k in staged.keys),
        )
    finally:
        if not keep.all():
            discard(lake, [staged])


def stage_quarantine(lake: Location, frame: pl.DataFrame) -> StagedFile:
    """Write quarantine records (``QUARANTINE_SCHEMA``) as one uncommitted file."""
    rows = frame.select(s.QUARANTINE_SCHEMA.names()).cast(s.QUARANTINE_SCHEMA)
    table = rows.to_arrow(compat_level=pl.CompatLevel.oldest())
    rel = _part_name()
    size = _write_parquet(lake, QUARANTINE, rel, table, compression="zstd")
    stats = json.dumps({"numRecords": table.num_rows})
    return StagedFile(
        table=QUARANTINE, path=rel, size=size, rows=table.num_rows, partition=(), stats=stats
    )


def discard(lake: Location, staged: Iterable[StagedFile]) -> None:
    """Delete staged files that will not be committed (best effort: ``vacuum`` gets the rest)."""
    root = lake.local
    for item in staged:
        with contextlib.suppress(OSError):
            if root is None:
                _store(lake, item.table).delete_file(item.path)
            else:
                (root / item.table / item.path).unlink(missing_ok=True)


# --- committing --------------------------------------------------------------------------------


def _create(where: Location, name: str) -> None:
    """Create an empty table (idempotent: another writer may create it at the same moment)."""
    deltalake = _deltalake()
    schema, partitions, config = (
        (TABLE_SCHEMA, PARTITIONS, TABLE_CONFIG)
        if name == EVENTS
        else (QUARANTINE_TABLE_SCHEMA, None, _QUARANTINE_CONFIG)
    )
    try:
        deltalake.DeltaTable.create(
            where.table_uri(name),
            schema=schema,
            partition_by=partitions,
            mode="ignore",
            configuration=config,
            storage_options=where.storage_options,
            commit_properties=deltalake.CommitProperties(
                custom_metadata={"kaudit": {"operation": "create", **_who()}}
            ),
        )
    except deltalake.exceptions.DeltaError as exc:
        if open_table(where, name) is None:  # not a lost race: a real failure
            msg = f"cannot create the lake's {name} table at {where}: {exc}"
            raise LakeError(msg) from exc
    except OSError as exc:
        msg = f"cannot write to the lake at {where}: {exc.strerror or exc}"
        raise LakeError(msg) from exc


def writable_table(lake: Location, name: str = EVENTS) -> DeltaTable:
    """The table ``name`` at its latest version, created when the lake has none yet.

    Raises
    ------
    LakeError
        When the location holds something else, or cannot be written.
    """
    kind = state(lake)
    if kind == "folder":
        msg = (
            f"the lake at {lake} was written by an earlier version of kaudit: "
            f"run `kaudit lake upgrade --lake {lake}` once, then ingest again"
        )
        raise LakeError(msg)
    if kind == "foreign":
        msg = (
            f"{lake} is not a lake and not empty: ingest into a new or empty folder, "
            "or into an existing lake"
        )
        raise LakeError(msg)
    root = lake.local
    if root is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot write to the lake at {lake}: {exc.strerror or exc}"
            raise LakeError(msg) from exc
    table = open_table(lake, name)
    if table is None:
        _create(lake, name)
        table = open_table(lake, name)
    if table is None:  # pragma: no cover - created just above
        msg = f"cannot create the lake at {lake}"
        raise LakeError(msg)
    return table


def _who() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("kaudit-analytics")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        release = "unknown"
    return {
        "host": socket.gethostname(),
        "user": os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid()),
        "kaudit": release,
    }


def commit(
    table: DeltaTable,
    name: str = EVENTS,
    *,
    adds: Sequence[StagedFile] = (),
    removes: Sequence[Mapping[str, Any]] = (),
    txns: Mapping[str, int] | None = None,
    info: Mapping[str, Any] | None = None,
    data_change: bool = True,
) -> int:
    """One atomic commit on top of the version ``table`` was read at; return the new version.

    Nothing is retried inside: when another writer committed since ``table`` was read, this
    raises ``CommitConflictError`` and the caller checks its work against the new version.
    ``txns`` are Delta application transactions (``appId -> version``), part of the same
    commit; ``info`` goes into the commit's ``kaudit`` metadata (``history`` shows it).
    """
    deltalake = _deltalake()
    removed_at = int(time.time() * 1000)
    actions: list[Any] = [
        deltalake.transaction.RemoveAction(
            path=str(r["path"]),
            data_change=bool(r.get("data_change", True)),
            deletion_timestamp=removed_at,
            size=int(r["size"]),
            partition_values=dict(r.get("partition") or {}),
        )
        for r in removes
    ]
    actions += [f.action(data_change=data_change) for f in adds]
    schema = QUARANTINE_TABLE_SCHEMA if name == QUARANTINE else TABLE_SCHEMA
    partitions = None if name == QUARANTINE else PARTITIONS
    props = deltalake.CommitProperties(
        custom_metadata={"kaudit": {**_who(), **(info or {})}},
        max_commit_retries=0,
        app_transactions=[deltalake.Transaction(app, int(v)) for app, v in (txns or {}).items()]
        or None,
    )
    hooks = deltalake.PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)
    try:
        table.create_write_transaction(
            actions,
            mode="append",
            schema=schema,
            partition_by=partitions,
            commit_properties=props,
            post_commithook_properties=hooks,
        )
    except deltalake.exceptions.CommitFailedError as exc:
        raise CommitConflictError(str(exc)) from exc
    except OSError as exc:
        msg = f"cannot commit to the lake: {exc}"
        raise LakeError(msg) from exc
    table.update_incremental()
    return int(table.version())


def txn(table: DeltaTable | None, app: str) -> int | None:
    """The version an application transaction last committed (Delta ``txn``), or None."""
    if table is None:
        return None
    value = table.transaction_version(app)
    return None if value is None else int(value)


# --- the data files of a version ---------------------------------------------------------------


def data_files(
    table: DeltaTable,
    *,
    clusters: Iterable[str] | None = None,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> pl.DataFrame:
    """The table's live files: ``path`` (relative), ``size``, ``rows``, ``cluster``, ``date``,
    and the range of their events' ``request_ts`` (``first``, ``last``; null where unknown)."""
    # Read through the Arrow stream: ``pa.table()`` would first ask whether it was given a
    # pandas frame, and importing pandas for that is a third of ``kaudit describe``'s time.
    actions = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()
    names = actions.column_names
    columns = {
        "path": "path",
        "size": "size_bytes",
        "rows": "num_records",
        s.CLUSTER: f"partition.{s.CLUSTER}",
        s.DATE: f"partition.{s.DATE}",
        "first": f"min.{s.REQUEST_TS}",
        "last": f"max.{s.REQUEST_TS}",
    }
    frame = pl.DataFrame(
        {ours: actions[theirs] if theirs in names else None for ours, theirs in columns.items()},
        schema={
            "path": pl.String,
            "size": pl.Int64,
            "rows": pl.Int64,
            s.CLUSTER: pl.String,
            s.DATE: pl.Date,
            "first": pl.Datetime("us", "UTC"),
            "last": pl.Datetime("us", "UTC"),
        },
    )
    if clusters is not None:
        frame = frame.filter(pl.col(s.CLUSTER).is_in(list(clusters)))
    if first is not None:
        frame = frame.filter(pl.col(s.DATE) >= first)
    if last is not None:
        frame = frame.filter(pl.col(s.DATE) <= last)
    return frame.sort(s.CLUSTER, s.DATE, "path")


def file_uri(where: Location, name: str, rel: str) -> str:
    return f"{where.table_uri(name)}/{urllib.parse.unquote(rel)}"


def read_keys(where: Location, name: str, rels: Sequence[str]) -> pl.LazyFrame:
    """``audit_id`` and ``stage`` of some of a table's files (what deduplication compares)."""
    uris = [file_uri(where, name, rel) for rel in rels]
    return pl.scan_parquet(uris, hive_partitioning=False).select(s.AUDIT_ID, s.STAGE)


# --- reading -----------------------------------------------------------------------------------


def _legacy_files(
    root: Path, clusters: set[str] | None, first: dt.date | None, last: dt.date | None
) -> list[str]:
    """Files of a folder lake's partitions that can hold matching rows, pruned by folder name."""
    found: list[str] = []
    for cluster_dir in sorted((root / EVENTS).glob(f"{s.CLUSTER}=*")):
        if clusters is not None and cluster_dir.name.split("=", 1)[1] not in clusters:
            continue
        for date_dir in sorted(cluster_dir.glob(f"{s.DATE}=*")):
            day = dt.date.fromisoformat(date_dir.name.split("=", 1)[1])
            if (first and day < first) or (last and day > last):
                continue
            found.extend(str(p) for p in sorted(date_dir.glob("*.parquet")))
    return found


def _unsupported_features(table: DeltaTable) -> list[str]:
    """Reader features that make a plain file list wrong (written by other engines)."""
    features = table.protocol().reader_features or []
    return [f for f in features if f in ("deletionVectors", "columnMapping")]


@dataclass(frozen=True)
class _Window:
    clusters: set[str] | None
    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def first(self) -> dt.date | None:
        return self.start.date() if self.start else None

    @property
    def last(self) -> dt.date | None:
        return (self.end - dt.timedelta(microseconds=1)).date() if self.end else None


def _window(
    cluster: str | Sequence[str] | None,
    since: dt.datetime | dt.date | str | None,
    until: dt.datetime | dt.date | str | None,
) -> _Window:
    clusters = {cluster} if isinstance(cluster, str) else set(cluster) if cluster else None
    return _Window(clusters, as_utc(since), as_utc(until))


def files(
    lake: str | os.PathLike[str] | Location,
    *,
    cluster: str | Sequence[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
) -> list[str]:
    """The Parquet files (paths or URLs) of the events table that can hold matching rows.

    The table's own file list at one version, pruned by partition: what ``scan`` reads, and
    what another engine reads to see exactly one committed version (never a file being
    staged, nor one compaction has replaced).

    Raises
    ------
    LakeError
        When there is no lake at ``lake``, or no such version.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> _ = ka.ingest(SAMPLE_DIR, lake, cluster="prod")
    >>> [f.split("/events/")[1][:28] for f in files(lake, since="2024-09-12")]
    ['cluster=prod/date=2024-09-12']
    """
    where = require_lake(lake)
    window = _window(cluster, since, until)
    return _files(where, window, version=version, as_of=as_of)


def _files(
    where: Location,
    window: _Window,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
) -> list[str]:
    root = where.local
    if root is not None and state(where) == "folder":
        if version is not None or as_of is not None:
            msg = (
                f"the lake at {where} has no versions (it predates the table format): "
                f"run `kaudit lake upgrade --lake {where}` to keep them from now on"
            )
            raise LakeError(msg)
        return _legacy_files(root, window.clusters, window.first, window.last)
    table = open_table(where, EVENTS, version=version, as_of=as_of)
    if table is None:
        return []
    live = data_files(table, clusters=window.clusters, first=window.first, last=window.last)
    return [file_uri(where, EVENTS, rel) for rel in live["path"]]


def scan(
    lake: str | os.PathLike[str],
    *,
    cluster: str | list[str] | None = None,
    since: dt.datetime | dt.date | str | None = None,
    until: dt.datetime | dt.date | str | None = None,
    version: int | None = None,
    as_of: dt.datetime | dt.date | str | None = None,
) -> pl.LazyFrame:
    """The events table of a lake as a LazyFrame in ``AUDIT_SCHEMA``.

    Reads one committed version of the table (the latest by default): an ingest committing
    meanwhile is seen whole or not at all. Partitions outside ``cluster`` and the
    ``[since, until)`` window (on ``request_ts``, UTC; naive values are UTC) are never opened;
    the row filter does the rest inside the files.

    Parameters
    ----------
    lake
        The lake given to ``ingest``: a folder, or an ``s3://``, ``gs://`` or ``az://`` URL.
    cluster
        One cluster name or several; all clusters when None.
    since, until
        Inclusive start and exclusive end of the time window: datetimes, dates or ISO strings.
    version
        Read the table as it was at this version (``kaudit lake history`` lists them).
    as_of
        Read the table as it was at this time (the last version committed by then).

    Raises
    ------
    LakeError
        When there is no lake at ``lake``, or no such version.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> ka.scan(tempfile.mkdtemp()).collect().shape
    (0, 43)
    """
    where = locate(lake)
    kind = state(where)
    if kind in ("missing", "foreign"):
        raise LakeError(not_a_lake_message(where))
    window = _window(cluster, since, until)
    if kind == "empty":
        return s.empty_events().lazy()
    when = as_utc(as_of) if isinstance(as_of, dt.date) else as_of
    table = None if kind == "folder" else open_table(where, EVENTS, version=version, as_of=when)
    if table is not None and _unsupported_features(table):
        # Deletion vectors or column mapping (another engine wrote them): let delta-rs read.
        frame = pl.scan_delta(table)
    else:
        paths = _files(where, window, version=version, as_of=when)
        if not paths:
            return s.empty_events().lazy()
        frame = pl.scan_parquet(
            paths,
            hive_partitioning=True,
            hive_schema=dict(s.PARTITION_SCHEMA),
            schema=dict(s.FILE_SCHEMA),
            # Lakes written before the byte columns became int64 hold int32 ones.
            cast_options=pl.ScanCastOptions(integer_cast="upcast"),
            # polars reads the stores' settings from the environment as delta-rs does.
            storage_options=(_user_options() or None) if where.remote else None,
        )
    if window.clusters is not None:
        frame = frame.filter(pl.col(s.CLUSTER).is_in(sorted(window.clusters)))
    if window.start is not None:
        frame = frame.filter(pl.col(s.REQUEST_TS) >= window.start)
    if window.end is not None:
        frame = frame.filter(pl.col(s.REQUEST_TS) < window.end)
    return s.conform(frame)


def scan_quarantine(lake: str | os.PathLike[str]) -> pl.LazyFrame:
    """The quarantine of a lake as a LazyFrame in ``QUARANTINE_SCHEMA``.

    Raises
    ------
    LakeError
        When there is no lake at ``lake``.
    """
    where = require_lake(lake)
    empty = pl.DataFrame(schema=s.QUARANTINE_SCHEMA).lazy()
    root = where.local
    if root is not None and state(where) == "folder":
        old = sorted((root / QUARANTINE).glob("*.parquet"))
        if not old:
            return empty
        return pl.concat(
            [empty, pl.scan_parquet(old).with_columns(pl.col("raw").cast(pl.Binary))],
            how="diagonal_relaxed",
        )
    table = open_table(where, QUARANTINE)
    if table is None:
        return empty
    rels = data_files(table)["path"].to_list()
    if not rels:
        return empty
    frame = pl.scan_parquet([file_uri(where, QUARANTINE, rel) for rel in rels])
    return frame.select(pl.col(name).cast(dtype) for name, dtype in s.QUARANTINE_SCHEMA.items())


# --- what a lake holds -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterOverview:
    """One cluster's share of a lake."""

    cluster: str
    events: int
    users: int
    first: dt.datetime | None
    last: dt.datetime | None
    source_bytes: int
    files: int
    parquet_bytes: int
    quarantined: int


@dataclass(frozen=True)
class LakeOverview:
    """What a lake holds, in the terms ``kaudit describe`` prints."""

    lake: str
    format: str
    version: int | None
    events: int
    users: int
    clusters: tuple[str, ...]
    first: dt.datetime | None
    last: dt.datetime | None
    source_bytes: int
    parquet_files: int
    parquet_bytes: int
    quarantined: int = 0
    by_cluster: tuple[ClusterOverview, ...] = ()

    def summary(self) -> str:
        span = (
            f"{self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC" if self.first else "-"
        )
        ratio = self.parquet_bytes / self.source_bytes if self.source_bytes else 0.0
        table = (
            f"Delta table, version {self.version}"
            if self.version is not None
            else "folder lake (run `kaudit lake upgrade` for versions)"
        )
        return "\n".join(
            [
                f"Lake {self.lake} ({table})",
                f"  events      {self.events:,} from {self.users:,} users in "
                f"{len(self.clusters)} cluster(s): {', '.join(self.clusters) or '-'}",
                f"  time span   {span}",
                f"  bytes       {self.source_bytes / 1e6:,.1f} MB of audit JSON stored as "
                f"{self.parquet_bytes / 1e6:,.1f} MB of Parquet in {self.parquet_files:,} "
                f"file(s) ({ratio:.1%})",
                f"  quarantine  {self.quarantined:,} line(s)",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "by_cluster"}
        out["by_cluster"] = [c.__dict__ for c in self.by_cluster]
        return out


def _file_sizes(where: Location, kind: str, table: DeltaTable | None) -> pl.DataFrame:
    """Files and bytes per cluster."""
    schema = {s.CLUSTER: pl.String, "files": pl.Int64, "parquet_bytes": pl.Int64}
    root = where.local
    if kind == "folder" and root is not None:
        paths = [Path(p) for p in _legacy_files(root, None, None, None)]
        live = pl.DataFrame(
            {
                s.CLUSTER: [p.parent.parent.name.split("=", 1)[1] for p in paths],
                "size": [p.stat().st_size for p in paths],
            },
            schema={s.CLUSTER: pl.String, "size": pl.Int64},
        )
    elif table is not None:
        live = data_files(table).select(s.CLUSTER, "size")
    else:
        return pl.DataFrame(schema=schema)
    return live.group_by(s.CLUSTER).agg(
        pl.len().cast(pl.Int64).alias("files"), pl.col("size").sum().alias("parquet_bytes")
    )


def describe(lake: str | os.PathLike[str]) -> LakeOverview:
    """Count what a lake holds: events, users, clusters, time span, bytes, files, quarantine.

    Raises
    ------
    LakeError
        When there is no lake at ``lake``.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> _ = ka.ingest(SAMPLE_DIR, lake, cluster="prod")
    >>> overview = describe(lake)
    >>> overview.version, overview.events > 10_000, [c.cluster for c in overview.by_cluster]
    (1, True, ['prod'])
    """
    where = locate(lake)
    kind = state(where)
    if kind in ("missing", "foreign"):
        raise LakeError(not_a_lake_message(where))
    table = open_table(where) if kind == "delta" else None
    per_cluster = (
        scan(where.uri)
        .group_by(s.CLUSTER)
        .agg(
            pl.len().cast(pl.Int64).alias("events"),
            pl.col(s.USER).n_unique().cast(pl.Int64).alias("users"),
            pl.col(s.REQUEST_TS).min().alias("first"),
            pl.col(s.REQUEST_TS).max().alias("last"),
            pl.col(s.EVENT_BYTES).cast(pl.Int64).sum().alias("source_bytes"),
        )
    )
    # One pass over the files for both (users over all clusters are not a sum of clusters').
    per, everyone = pl.collect_all([per_cluster, scan(where.uri).select(pl.col(s.USER).n_unique())])
    users = everyone.item()
    quarantine = (
        scan_quarantine(where.uri).group_by(s.CLUSTER).agg(pl.len().alias("quarantined")).collect()
        if kind != "empty"
        else pl.DataFrame(schema={s.CLUSTER: pl.String, "quarantined": pl.UInt32})
    )
    sizes = _file_sizes(where, kind, table)
    rows = (
        per.join(sizes, on=s.CLUSTER, how="full", coalesce=True)
        .join(quarantine, on=s.CLUSTER, how="full", coalesce=True)
        .with_columns(
            pl.col("events", "users", "source_bytes", "files", "parquet_bytes", "quarantined")
            .fill_null(0)
            .cast(pl.Int64)
        )
        .sort(s.CLUSTER, nulls_last=True)
    )
    by_cluster = tuple(
        ClusterOverview(
            cluster=r[s.CLUSTER] if r[s.CLUSTER] is not None else "(unknown)",
            events=r["events"],
            users=r["users"],
            first=r["first"],
            last=r["last"],
            source_bytes=r["source_bytes"],
            files=r["files"],
            parquet_bytes=r["parquet_bytes"],
            quarantined=r["quarantined"],
        )
        for r in rows.iter_rows(named=True)
    )
    events = int(per["events"].sum())
    return LakeOverview(
        lake=where.uri,
        format="delta" if kind == "delta" else "folder" if kind == "folder" else "empty",
        version=int(table.version()) if table is not None else None,
        events=events,
        users=int(users) if events else 0,
        clusters=tuple(sorted(per[s.CLUSTER].to_list())),
        first=per["first"].min() if events else None,  # type: ignore[arg-type]
        last=per["last"].max() if events else None,  # type: ignore[arg-type]
        source_bytes=int(per["source_bytes"].sum()),
        parquet_files=int(sizes["files"].sum()),
        parquet_bytes=int(sizes["parquet_bytes"].sum()),
        quarantined=int(quarantine["quarantined"].sum()),
        by_cluster=by_cluster,
    )


# --- the lake's own audit trail ----------------------------------------------------------------

HISTORY_SCHEMA: Final = pl.Schema(
    {  # type: ignore[arg-type]  # polars' stubs reject dtype instances in a dict literal
        "version": pl.Int64,
        "time": pl.Datetime("ms", "UTC"),
        "operation": pl.String,
        "cluster": pl.String,
        "files_added": pl.Int64,
        "files_removed": pl.Int64,
        "events_added": pl.Int64,
        "sources": pl.Int64,
        "user": pl.String,
        "host": pl.String,
        "detail": pl.String,
    }
)


def _history_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    found = entry.get("kaudit")
    ours: dict[str, Any] = found if isinstance(found, dict) else {}
    metrics = entry.get("operationMetrics") or {}
    sources = ours.get("sources") or []
    added = ours.get("files_added", metrics.get("num_added_files", metrics.get("numAddedFiles")))
    removed = ours.get(
        "files_removed", metrics.get("num_removed_files", metrics.get("numRemovedFiles"))
    )
    detail = {k: v for k, v in ours.items() if k not in ("host", "user", "kaudit")}
    return {
        "version": entry.get("version"),
        "time": dt.datetime.fromtimestamp(int(entry.get("timestamp") or 0) / 1000, dt.UTC),
        "operation": ours.get("operation") or str(entry.get("operation", "")).lower(),
        "cluster": ours.get("cluster"),
        "files_added": None if added is None else int(added),
        "files_removed": None if removed is None else int(removed),
        "events_added": ours.get("events_added"),
        "sources": len(sources) if ours.get("operation") == "ingest" else None,
        "user": ours.get("user"),
        "host": ours.get("host"),
        "detail": json.dumps(detail or entry.get("operationParameters") or {}, sort_keys=True),
    }


def history(lake: str | os.PathLike[str], *, limit: int | None = None) -> pl.DataFrame:
    """The events table's commits, newest first: which ingest added what, when, from where.

    One row per version (``HISTORY_SCHEMA``); ``detail`` holds the commit's own record as JSON
    (for an ingest: every source with the byte offsets and lines it was loaded from and to).

    Raises
    ------
    LakeError
        When there is no lake at ``lake``, or it predates the table format.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> _ = ka.ingest(SAMPLE_DIR, lake, cluster="prod")
    >>> history(lake).select("version", "operation", "cluster", "sources").rows()
    [(1, 'ingest', 'prod', 3), (0, 'create', None, None)]
    """
    where = require_lake(lake)
    table = open_table(where)
    if table is None:
        msg = (
            f"the lake at {where} has no history (it predates the table format): "
            f"run `kaudit lake upgrade --lake {where}` to keep one from now on"
        )
        raise LakeError(msg)
    try:
        entries = table.history(limit)
    except OSError as exc:
        msg = f"cannot read the lake's history at {where}: {exc}"
        raise LakeError(msg) from exc
    rows = [_history_row(e) for e in entries]
    return pl.DataFrame(rows, schema=HISTORY_SCHEMA).sort("version", descending=True)


def commit_info(lake: str | os.PathLike[str], version: int) -> dict[str, Any]:
    """The ``kaudit`` record of one commit (what ``history`` summarises in ``detail``)."""
    table = open_table(require_lake(lake))
    if table is None:
        return {}
    for entry in table.history():
        if entry.get("version") == version:
            ours = entry.get("kaudit")
            return dict(ours) if isinstance(ours, dict) else {}
    return {}


# --- keeping the table in shape ----------------------------------------------------------------

#: Application id that every maintenance commit (compaction, retention) carries: two of them
#: at once conflict in the log, so they never remove the same files twice.
MAINTENANCE: Final = "kaudit/maintenance"
#: A compacted file holds up to this many events (four row groups; about 40 MB of Parquet and
#: 0.5 GB of memory while it is written, for Metadata-level events).
COMPACT_ROWS: Final = 1_000_000


@dataclass(frozen=True)
class CompactStats:
    """What ``compact`` did."""

    version: int | None
    partitions: int
    files_before: int
    files_after: int
    rows: int
    bytes_before: int
    bytes_after: int


def _bins(frame: pl.DataFrame, target: int) -> list[list[dict[str, Any]]]:
    """Groups of small files of one partition to merge, each up to ``target`` rows."""
    small = frame.filter(pl.col("rows") < target // 2).sort("path")
    bins: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    total = 0
    for row in small.iter_rows(named=True):
        if current and total + row["rows"] > target:
            bins.append(current)
            current, total = [], 0
        current.append(row)
        total += row["rows"]
    bins.append(current)
    return [b for b in bins if len(b) > 1]


def compact(
    lake: str | os.PathLike[str],
    *,
    cluster: str | Sequence[str] | None = None,
    target_rows: int = COMPACT_ROWS,
) -> CompactStats:
    """Merge each partition's small files into files of up to ``target_rows`` events.

    Hourly loads leave a file per partition per load; readers open fewer, larger files after
    this. Rows are re-sorted by ``request_ts`` and written with the lake's Parquet settings; the
    replaced files stay on storage for readers that started before, until ``vacuum``. Ingests
    may run meanwhile (they only add files); two compactions or a compaction and a retention
    never remove the same file (their commits conflict and the later one is refused).

    Raises
    ------
    LakeError
        When there is no table at ``lake``, or another maintenance commit won.

    Examples
    --------
    >>> import tempfile, kaudit_analytics as ka
    >>> from kaudit_analytics.testing import SAMPLE_DIR
    >>> lake = tempfile.mkdtemp()
    >>> for path in sorted(SAMPLE_DIR.iterdir()):
    ...     _ = ka.ingest(path, lake)
    >>> stats = compact(lake)
    >>> stats.files_before > stats.files_after
    True
    """
    where = require_lake(lake)
    table = _delta_only(where, "compact")
    clusters = [cluster] if isinstance(cluster, str) else cluster
    live = data_files(table, clusters=clusters)
    adds: list[StagedFile] = []
    removes: list[dict[str, Any]] = []
    touched = 0
    for (cluster_name, day), group in live.group_by(s.CLUSTER, s.DATE, maintain_order=True):
        assert isinstance(day, dt.date)
        bins = _bins(group, target_rows)
        touched += bool(bins)
        for files_ in bins:
            parts = [_conform_file(_read_parquet(where, EVENTS, f["path"])) for f in files_]
            merged = pa.concat_tables(parts, promote_options="permissive")
            adds.append(stage_events(where, str(cluster_name), day, merged))
            removes += [
                {
                    "path": f["path"],
                    "size": f["size"],
                    "data_change": False,
                    "partition": {s.CLUSTER: cluster_name, s.DATE: str(day)},
                }
                for f in files_
            ]
    if not adds:
        return CompactStats(table.version(), 0, 0, 0, 0, 0, 0)
    info = {
        "operation": "compact",
        "files_added": len(adds),
        "files_removed": len(removes),
        "partitions": touched,
    }
    version = _maintenance_commit(where, table, adds, removes, info)
    return CompactStats(
        version=version,
        partitions=touched,
        files_before=len(removes),
        files_after=len(adds),
        rows=sum(a.rows for a in adds),
        bytes_before=sum(int(r["size"]) for r in removes),
        bytes_after=sum(a.size for a in adds),
    )


def _delta_only(where: Location, what: str) -> DeltaTable:
    if state(where) == "folder":
        msg = (
            f"cannot {what} the lake at {where}: it predates the table format; "
            f"run `kaudit lake upgrade --lake {where}` first"
        )
        raise LakeError(msg)
    table = open_table(where)
    if table is None:
        msg = f"no lake at {where}: it has no events table"
        raise LakeError(msg)
    return table


def _maintenance_commit(
    where: Location,
    table: DeltaTable,
    adds: Sequence[StagedFile],
    removes: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any],
) -> int:
    base = int(table.version())
    try:
        return commit(
            table,
            adds=adds,
            removes=removes,
            txns={MAINTENANCE: base},
            info=info,
            data_change=any(r.get("data_change", True) for r in removes),
        )
    except CommitConflictError:
        discard(where, adds)
        # Ingests only add files: a maintenance commit can be retried over them safely only
        # if no other maintenance commit removed one of ours.
        fresh = open_table(where)
        assert fresh is not None
        still = set(data_files(fresh)["path"].to_list())
        if txn(fresh, MAINTENANCE) != txn(table, MAINTENANCE) or not all(
            r["path"] in still for r in removes
        ):
            msg = f"another compaction or retention changed the lake at {where}: run it again"
            raise LakeError(msg) from None
        raise
    except BaseException:
        discard(where, adds)
        raise


@dataclass(frozen=True)
class RetainStats:
    """What ``retain`` did."""

    version: int | None
    cutoff: dt.date
    partitions: int
    files: int
    events: int
    bytes: int
    quarantined: int
    vacuumed: int


def retain(
    lake: str | os.PathLike[str],
    older_than: dt.timedelta,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> RetainStats:
    """Delete the events of days that ended more than ``older_than`` ago, and their files.

    Whole day partitions go (a day is kept while any of it is inside the window), with the
    quarantine records made before the cutoff; then the deleted files are removed from
    storage at once (they are past retention: no reader should see them again), and files
    that compaction replaced more than the table's retention ago with them (``vacuum``).
    Reading an older version afterwards fails for the deleted days: that is the point.

    Raises
    ------
    LakeError
        When there is no table at ``lake``, or another maintenance commit won.
    """
    where = require_lake(lake)
    table = _delta_only(where, "apply retention to")
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cutoff = (moment - older_than).date()
    old = data_files(table).filter(pl.col(s.DATE) < cutoff)
    quarantined = _retain_quarantine(where, moment - older_than, dry_run=dry_run)
    if dry_run or old.is_empty():
        return RetainStats(
            None if dry_run else int(table.version()),
            cutoff,
            old.select(s.CLUSTER, s.DATE).n_unique() if not old.is_empty() else 0,
            old.height,
            int(old["rows"].sum() or 0),
            int(old["size"].sum() or 0),
            quarantined,
            0,
        )
    removes = [
        {
            "path": r["path"],
            "size": r["size"],
            "data_change": True,
            "partition": {s.CLUSTER: r[s.CLUSTER], s.DATE: str(r[s.DATE])},
        }
        for r in old.iter_rows(named=True)
    ]
    info = {
        "operation": "retain",
        "cutoff": cutoff.isoformat(),
        "older_than_days": older_than.total_seconds() / 86400,
        "files_removed": len(removes),
        "events_removed": int(old["rows"].sum() or 0),
    }
    version = _maintenance_commit(where, table, [], removes, info)
    discard(where, [StagedFile(EVENTS, r["path"], 0, 0, (), "") for r in removes])
    vacuumed = vacuum(where)
    return RetainStats(
        version,
        cutoff,
        old.select(s.CLUSTER, s.DATE).n_unique(),
        old.height,
        int(old["rows"].sum() or 0),
        int(old["size"].sum() or 0),
        quarantined,
        vacuumed,
    )


def _retain_quarantine(where: Location, before: dt.datetime, *, dry_run: bool) -> int:
    """Delete quarantine records made before ``before``; return how many there were."""
    if open_table(where, QUARANTINE) is None:
        return 0
    old = pl.col("quarantined_at") < before
    if dry_run:
        return int(scan_quarantine(where.uri).filter(old).select(pl.len()).collect().item())
    return _rewrite_quarantine(
        where, lambda rows: rows.filter(~old.fill_null(value=False)), {"operation": "retain"}
    )


#: Delta's default ``delta.deletedFileRetentionDuration`` in hours (``TABLE_CONFIG`` sets it).
RETENTION_HOURS: Final = 168


def vacuum(
    lake: str | os.PathLike[str] | Location,
    *,
    retention_hours: int = RETENTION_HOURS,
    orphan_hours: int = 24,
) -> int:
    """Delete files no version within the retention reads; return how many.

    Files that compaction or retention removed more than ``retention_hours`` ago, and files no
    commit ever named (ingests that crashed before their commit) once older than that and than
    ``orphan_hours``: a file staged by an ingest still running is younger, and is kept. Expired
    log entries go too.
    """
    where = locate(lake)
    deleted = 0
    for name in (EVENTS, QUARANTINE):
        table = open_table(where, name)
        if table is None:
            continue
        deleted += len(
            table.vacuum(
                retention_hours=max(retention_hours, orphan_hours),
                dry_run=False,
                enforce_retention_duration=False,
                full=True,
            )
        )
        table.cleanup_metadata()
    return deleted


# --- lakes from before the table format --------------------------------------------------------


@dataclass(frozen=True)
class UpgradeStats:
    """What ``upgrade`` did."""

    version: int
    files: int
    events: int
    sources: int
    quarantined: int


def _stats_from_footer(path: Path) -> str:
    meta = pq.read_metadata(path)
    columns = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in _STATS_COLUMNS:
        if name not in columns:
            continue
        lows, highs, count = [], [], 0
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(columns[name]).statistics
            if stats is None or not stats.has_min_max:
                break
            lows.append(stats.min)
            highs.append(stats.max)
            count += stats.null_count or 0
        else:
            if lows:
                mins[name] = _iso_ms(min(lows), up=False)
                maxs[name] = _iso_ms(max(highs), up=True)
                nulls[name] = count
    return json.dumps(
        {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    )


#: How the loader names a source stream's state in the log (``txn`` application ids).
def stream_app(fp: str, what: str) -> str:
    return f"kaudit/{fp}/{what}"


def file_app(cluster: str, source: str) -> str:
    return f"kaudit/file/{cluster}/{source}"


def file_mark(size: int, mtime_ns: int) -> int:
    """A source file's size and modification time as one ``txn`` version (63 bits)."""
    digest = hashlib.sha256(f"{size}:{mtime_ns}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def check_mark(sha_hex: str) -> int:
    """A resume check (SHA-256 of the last loaded line) as one ``txn`` version (63 bits)."""
    return int(sha_hex[:16], 16) >> 1


def _legacy_txns(root: Path) -> dict[str, int]:
    """The bookkeeping of a folder lake (``_kaudit/sources.json``) as ``txn`` versions."""
    path = root / _LEGACY_META / "sources.json"
    if not path.is_file():
        return {}
    sources: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    txns: dict[str, int] = {}
    for key, entry in sources.items():
        if key.startswith("file:"):
            continue
        txns[stream_app(key, "offset")] = int(entry.get("offset", 0))
        txns[stream_app(key, "line")] = int(entry.get("line", 1))
        if "check" in entry:
            txns[stream_app(key, "check_at")] = int(entry.get("check_at", 0))
            txns[stream_app(key, "check")] = check_mark(str(entry["check"]))
    for key, entry in sources.items():
        if not key.startswith("file:"):
            continue
        _, cluster, source = key.split(":", 2)
        stream = sources.get(str(entry.get("fingerprint")), {})
        if int(stream.get("offset", -1)) >= int(entry.get("end", 0)):
            mark = file_mark(int(entry["size"]), int(entry["mtime_ns"]))
            txns[file_app(cluster, source)] = mark
    return txns


def upgrade(lake: str | os.PathLike[str]) -> UpgradeStats:
    """Make a folder lake (written before the table format) a Delta lake, in place.

    The Parquet files stay where they are: one commit registers them all, with the sources'
    bookkeeping, so the upgrade happens whole or not at all; the quarantine is moved into its
    table. Running it again on an upgraded lake does nothing.

    Raises
    ------
    LakeError
        When there is no lake at ``lake``, or it is not a local folder.
    """
    where = require_lake(lake)
    root = where.local
    if state(where) == "delta":
        table = open_table(where)
        assert table is not None
        if root is not None:
            _upgrade_quarantine(where, root)
        return UpgradeStats(int(table.version()), 0, 0, 0, 0)
    assert root is not None  # a folder lake is local by definition
    deltalake = _deltalake()
    adds = []
    events = 0
    for text in _legacy_files(root, None, None, None):
        path = Path(text)
        rel = path.relative_to(root / EVENTS).as_posix()
        stats = _stats_from_footer(path)
        events += json.loads(stats)["numRecords"]
        cluster = path.parent.parent.name.split("=", 1)[1]
        day = path.parent.name.split("=", 1)[1]
        adds.append(
            deltalake.transaction.AddAction(
                path=rel,
                size=path.stat().st_size,
                partition_values={s.CLUSTER: cluster, s.DATE: day},
                modification_time=int(path.stat().st_mtime * 1000),
                data_change=True,
                stats=stats,
            )
        )
    txns = _legacy_txns(root)
    sources = sorted({k.split("/")[1] for k in txns if not k.startswith("kaudit/file/")})
    info = {
        "operation": "upgrade",
        "files_added": len(adds),
        "events_added": events,
        "sources": sources,
    }
    try:
        deltalake.transaction.create_table_with_add_actions(
            where.table_uri(EVENTS),
            deltalake.Schema.from_arrow(TABLE_SCHEMA),
            adds,
            mode="error",
            partition_by=PARTITIONS,
            configuration=TABLE_CONFIG,
            commit_properties=deltalake.CommitProperties(
                custom_metadata={"kaudit": {**_who(), **info}},
                app_transactions=[deltalake.Transaction(a, v) for a, v in txns.items()] or None,
            ),
        )
    except (deltalake.exceptions.DeltaError, OSError) as exc:
        msg = f"cannot upgrade the lake at {where}: {exc}"
        raise LakeError(msg) from exc
    quarantined = _upgrade_quarantine(where, root)
    legacy = root / _LEGACY_META
    with contextlib.suppress(OSError):
        (legacy / "sources.json").rename(legacy / "sources.json.before-delta")
        (legacy / "lock").unlink(missing_ok=True)
    table = open_table(where)
    assert table is not None
    return UpgradeStats(int(table.version()), len(adds), events, len(sources), quarantined)


def _upgrade_quarantine(where: Location, root: Path) -> int:
    """Move a folder lake's quarantine files into the quarantine table (idempotent)."""
    folder = root / QUARANTINE
    table = open_table(where, QUARANTINE)
    tracked = set(data_files(table)["path"].to_list()) if table is not None else set()
    old = [p for p in sorted(folder.glob("part-*.parquet")) if p.name not in tracked]
    if not old:
        return 0
    done = txn(table, "kaudit/upgrade") is not None
    rows = 0
    if not done:
        frame = pl.concat(
            [
                pl.DataFrame(schema=s.QUARANTINE_SCHEMA),
                *(pl.read_parquet(p) for p in old),
            ],
            how="diagonal_relaxed",
        )
        staged = stage_quarantine(where, frame)
        fresh = table if table is not None else writable_table(where, QUARANTINE)
        commit(
            fresh,
            QUARANTINE,
            adds=[staged],
            txns={"kaudit/upgrade": 1},
            info={"operation": "upgrade", "rows": frame.height},
        )
        rows = frame.height
    for path in old:
        path.unlink(missing_ok=True)
    return rows


def drop_quarantine(lake: Location, rows: pl.DataFrame) -> int:
    """Remove quarantine records (matched on every column ``rows`` has); return how many."""
    if rows.is_empty():
        return 0
    return _rewrite_quarantine(
        lake,
        lambda current: current.join(rows, on=rows.columns, how="anti", nulls_equal=True),
        {"operation": "retry"},
    )


def _rewrite_quarantine(
    lake: Location,
    keep: Callable[[pl.DataFrame], pl.DataFrame],
    info: Mapping[str, Any],
) -> int:
    """Rewrite the quarantine table as ``keep`` of its rows; return how many rows went.

    The quarantine is small: its files are rewritten as one, in a commit that is tried again
    if another writer changed the table meanwhile.
    """
    while True:
        table = open_table(lake, QUARANTINE)
        if table is None:
            return 0
        live = data_files(table)
        current = scan_quarantine(lake.uri).collect()
        kept = keep(current)
        dropped = current.height - kept.height
        if not dropped:
            return 0
        adds = [stage_quarantine(lake, kept)] if not kept.is_empty() else []
        removes = [
            {"path": p, "size": z, "data_change": True, "partition": {}}
            for p, z in live.select("path", "size").iter_rows()
        ]
        try:
            commit(
                table,
                QUARANTINE,
                adds=adds,
                removes=removes,
                info={**info, "rows_removed": dropped},
            )
        except CommitConflictError:
            discard(lake, adds)
            continue
        discard(lake, [StagedFile(QUARANTINE, p, 0, 0, (), "") for p in live["path"]])
        return dropped


# --- the lake's span and SQL ---------------------------------------------------------------------


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
        When ``lake`` is not a lake, or is in a bucket.

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

    where = require_lake(lake)
    if where.local is None:
        msg = (
            f"SQL over {where} needs the lake on this machine: DuckDB reads a bucket's Delta "
            "table with its delta extension, Spark with `kaudit_analytics.spark.scan`"
        )
        raise LakeError(msg)
    paths = files(where, cluster=cluster, since=since, until=until)
    start, end = as_utc(since), as_utc(until)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(f'"{name}"' for name in s.AUDIT_SCHEMA.names())
    if not paths:
        con.register("_no_events", s.empty_events().to_arrow())
        con.execute(f"CREATE VIEW events AS SELECT {columns} FROM _no_events")
        return con
    bounds = [
        *([f"request_ts >= {_sql_text(start.isoformat())}::TIMESTAMPTZ"] if start else []),
        *([f"request_ts < {_sql_text(end.isoformat())}::TIMESTAMPTZ"] if end else []),
    ]
    source = (
        f"read_parquet([{', '.join(_sql_text(str(f)) for f in paths)}], hive_partitioning = true,"
        " hive_types = {'cluster': VARCHAR, 'date': DATE}, union_by_name = true)"
    )
    condition = f" WHERE {' AND '.join(bounds)}" if bounds else ""
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
