"""Where logs come from: files, folders, globs, object storage and archives.

The loader reads a source through three calls: ``open("rb")``, ``stat()`` (size and
modification time, to skip what has not changed) and ``str()`` (the name recorded in
``source_file`` and in the lake's bookkeeping). Local files are ``pathlib.Path``; this module
adds objects with the same three calls:

- ``RemoteFile``: an object in ``s3://``, ``gs://`` or ``az://`` (any fsspec URL), streamed
  without a local copy. Incremental like a local file: an object whose size and modification
  time (or ETag) are unchanged is skipped, and a changed one is resumed by the loader's
  fingerprint of its first line.
- ``ArchiveMember``: a file inside a ``.tar``/``.tar.gz``/``.tgz`` archive, such as an OpenShift
  ``oc adm must-gather`` audit tarball, named ``<archive>!/<member path>``. Archives are
  extracted once per run to a private temporary folder (a ``.tar.gz`` cannot be read at an
  offset without decompressing everything before it).

OpenShift must-gather audit logs sit in ``…/audit_logs/<apiserver>/<node>-audit….log.gz``, one
folder per API server (``kube-apiserver``, ``openshift-apiserver``, ``oauth-apiserver``,
``oauth-server``); ``APISERVER`` reads which one from ``source_file``.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import importlib
import os
import tarfile
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, cast

import polars as pl

from kaudit_analytics import schema as s
from kaudit_analytics.lake import is_lake_folder

__all__ = [
    "APISERVER",
    "ArchiveMember",
    "RemoteFile",
    "SourceError",
    "expand",
    "expand_archive",
    "named_files",
]

#: URL schemes read through fsspec (``s3fs``, ``gcsfs``, ``adlfs`` must be installed).
REMOTE_SCHEMES: Final = ("s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://")

_ARCHIVE_SUFFIXES: Final = (".tar", ".tar.gz", ".tgz")
_FILESYSTEM_PACKAGE: Final = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}
# must-gather writes a listing of the audit files next to them; it is not a log.
_NOT_LOGS: Final = (".audit_logs_listing",)

#: File names that plainly are not logs, and what they are: skipped and counted by an ingest,
#: never quarantined (a folder of logs often holds a README, a policy, a spreadsheet). Matched
#: case-insensitively against the file's own name.
NOT_LOG_NAMES: Final[tuple[tuple[str, str], ...]] = (
    ("readme*", "documentation"),
    ("license*", "documentation"),
    ("notice*", "documentation"),
    ("changelog*", "documentation"),
    ("*.md", "documentation"),
    ("*.rst", "documentation"),
    ("*.html", "documentation"),
    ("*.pdf", "documentation"),
    ("*.tsv", "a table"),
    ("*.csv", "a table"),
    ("*.xlsx", "a table"),
    ("*.parquet", "a table"),
    ("*.py", "code"),
    ("*.sh", "code"),
    ("*.ipynb", "a notebook"),
    ("*.toml", "configuration"),
    ("*.ini", "configuration"),
    ("*.cfg", "configuration"),
    ("*.png", "an image"),
    ("*.jpg", "an image"),
    ("*.jpeg", "an image"),
    ("*.svg", "an image"),
    ("*.zip", "a zip archive (unpack it first)"),
    ("*.pem", "a certificate or key"),
    ("*.crt", "a certificate or key"),
)

#: Which OpenShift API server wrote an event, from a must-gather ``source_file`` path (null
#: for other sources). A stand-in until the events table has an ``apiserver`` column.
APISERVER: Final = pl.col(s.SOURCE_FILE).str.extract(r"/audit_logs/([^/]+)/", 1).alias("apiserver")


class SourceError(Exception):
    """A source cannot be listed or opened (missing bucket, no credentials, missing package)."""


@dataclass(frozen=True)
class SourceStat:
    """The two fields of ``os.stat_result`` the loader reads."""

    st_size: int
    st_mtime_ns: int


def is_remote(text: str) -> bool:
    """Whether a source names object storage rather than a local path.

    Examples
    --------
    >>> is_remote("s3://bucket/audit/"), is_remote("/var/log/audit.log")
    (True, False)
    """
    return text.startswith(REMOTE_SCHEMES)


def is_archive(path: Path) -> bool:
    """Whether a local file is a tar archive to unpack, by its name."""
    return path.name.endswith(_ARCHIVE_SUFFIXES)


def is_log_name(name: str) -> bool:
    """Whether a file name can hold logs (hidden files and must-gather listings cannot)."""
    base = PurePosixPath(name).name
    return not base.startswith(".") and not base.endswith(_NOT_LOGS)


def not_a_log(name: str) -> str | None:
    """What a file plainly is, by its name, when that is not a log; None otherwise.

    Examples
    --------
    >>> not_a_log("README.md"), not_a_log("users.TSV"), not_a_log("audit.log")
    ('documentation', 'a table', None)
    """
    base = PurePosixPath(name).name.lower()
    return next((what for pattern, what in NOT_LOG_NAMES if fnmatch.fnmatch(base, pattern)), None)


def _walk(folder: Path, exclude: tuple[Path, ...]) -> list[Path]:
    """Log files under a folder, in name order, leaving out lakes and excluded folders."""
    found: list[Path] = []
    for top, dirs, names in os.walk(folder):
        here = Path(top)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and not is_lake_folder(here / d) and here / d not in exclude
        )
        found.extend(here / n for n in sorted(names) if is_log_name(n))
    return sorted(found)


# --- object storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """An object in a bucket, read through fsspec."""

    fs: Any
    path: str
    url: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def open(self, mode: str = "rb") -> IO[bytes]:
        handle: IO[bytes] = self.fs.open(self.path, mode)
        return handle

    def stat(self) -> SourceStat:
        return SourceStat(self.size, self.mtime_ns)

    def __str__(self) -> str:
        return self.url


def _mtime_ns(info: dict[str, Any]) -> int:
    """A change stamp from an fsspec listing entry: modification time and ETag, hashed.

    The loader only compares it with the last run's; listings give times to the second, so the
    ETag (which changes with the content) is part of it.
    """
    stamp = "|".join(
        str(info.get(key))
        for key in ("LastModified", "last_modified", "mtime", "updated", "ETag", "etag", "md5Hash")
        if info.get(key) is not None
    )
    return int(hashlib.sha256(stamp.encode()).hexdigest()[:15], 16)


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        # Imported by name: fsspec ships no type information, and is needed only for URLs.
        fsspec: Any = importlib.import_module("fsspec")
    except ImportError as exc:  # pragma: no cover - fsspec comes with s3fs/gcsfs/adlfs
        msg = f"cannot read {url}: install fsspec and the package for its storage"
        raise SourceError(msg) from exc
    scheme = url.split("://", 1)[0]
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        package = _FILESYSTEM_PACKAGE.get(scheme, "the fsspec package for it")
        msg = f"cannot read {url}: install {package} to read {scheme}:// sources"
        raise SourceError(msg) from exc
    # Listings are cached per filesystem instance; a second ingest in one process must see
    # objects written since the first.
    fs.invalidate_cache()
    return fs, str(root)


def expand_remote(url: str) -> list[RemoteFile]:
    """The objects a URL names: one object, every object under a prefix, or a glob's matches.

    Raises
    ------
    SourceError
        When nothing matches, or the store cannot be reached.
    """
    fs, root = _filesystem(url)
    scheme = url.split("://", 1)[0]
    try:
        if any(ch in root for ch in "*?["):
            found = fs.glob(root, detail=True)
        elif fs.isdir(root):
            found = fs.find(root, detail=True)
        else:
            found = {root: fs.info(root)}
    except FileNotFoundError as exc:
        msg = f"no such object or prefix: {url}"
        raise SourceError(msg) from exc
    except Exception as exc:
        # Stores raise their own errors (no credentials, no such bucket, access denied): the
        # user gets one sentence naming the URL, whichever it was.
        msg = f"cannot list {url}: {exc}"
        raise SourceError(msg) from exc
    files = [
        RemoteFile(fs, path, f"{scheme}://{path}", int(info.get("size") or 0), _mtime_ns(info))
        for path, info in sorted(found.items())
        if info.get("type", "file") == "file" and is_log_name(path)
    ]
    if not files:
        msg = f"no such object or prefix: {url}"
        raise SourceError(msg)
    return files


# --- archives ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveMember:
    """A file of a tar archive, extracted to ``local``, known by ``<archive>!/<member>``."""

    local: Path
    archive: Path
    member: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name

    def open(self, mode: str = "rb") -> IO[bytes]:
        return self.local.open(mode)

    def stat(self) -> SourceStat:
        st = self.local.stat()
        return SourceStat(st.st_size, st.st_mtime_ns)

    def __str__(self) -> str:
        return f"{self.archive}!/{self.member}"


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The regular files worth loading; only the audit logs of a full must-gather."""
    files = [m for m in archive.getmembers() if m.isfile() and is_log_name(m.name)]
    audit = [m for m in files if "/audit_logs/" in f"/{m.name}"]
    yield from audit or files


def expand_archive(path: Path) -> list[ArchiveMember]:
    """Extract a tar archive's log files to a private folder; return them in member order.

    The folder lives as long as the returned members (it is removed when the last one is
    garbage-collected, or at interpreter exit).

    Raises
    ------
    SourceError
        When the file is not a readable tar archive.
    """
    scratch = tempfile.TemporaryDirectory(prefix="kaudit-archive-")
    root = Path(scratch.name)
    members: list[ArchiveMember] = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in _members(archive):
                # The "data" filter refuses absolute paths, "..", links out and devices.
                archive.extract(info, root, filter="data")
                members.append(ArchiveMember(root / info.name, path, info.name.lstrip("./")))
    except (tarfile.TarError, OSError) as exc:
        scratch.cleanup()
        msg = f"cannot read the archive {path}: {exc}"
        raise SourceError(msg) from exc
    if members:
        # Tie the folder's life to the members (frozen dataclasses: attach to the first).
        weakref.finalize(members[0], scratch.cleanup)
    else:
        scratch.cleanup()
    return members


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def expand(
    sources: Iterable[str | os.PathLike[str]], *, exclude: Iterable[Path] = ()
) -> list[Path]:
    """Files named by paths, folders (walked), globs and object-storage URLs, in a stable order.

    Objects in buckets and files inside tar archives are not ``Path``s but offer the three
    calls the loader makes on one (``open``, ``stat``, ``str``).

    Raises
    ------
    SourceError
        When a source does not exist, cannot be read or listed, or an archive is broken.
    """
    files, others = named_files(sources, exclude=exclude)
    out: list[Path] = []
    for path in files:
        if not is_archive(path):
            out.append(path)
            continue
        out.extend(cast("list[Path]", expand_archive(path)))
    return out + others


def named_files(
    sources: Iterable[str | os.PathLike[str]], *, exclude: Iterable[Path] = ()
) -> tuple[list[Path], list[Path]]:
    """The local files (tar archives unopened) and the bucket objects that sources name.

    Each local file is one unit an ingest may load on its own (``spark.ingest`` gives each to
    a task); folders are walked for log names, globs matched, and unreadable files refused.
    Lakes are never read as input: a folder that is a lake, and everything under ``exclude``
    (the lake being written), is left out.

    Raises
    ------
    SourceError
        When a source does not exist or a file cannot be read.
    """
    excluded = tuple(p.resolve() for p in exclude)
    files: list[Path] = []
    others: list[Path] = []
    for source in sources:
        text = os.fspath(source)
        if is_remote(text):
            others.extend(cast("list[Path]", expand_remote(text)))
            continue
        # Path.glob takes no absolute patterns; the glob module does.
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]  # noqa: PTH207
        if not matches and Path(text).exists():
            matches = [Path(text)]
        if not matches:
            msg = f"no such file or folder: {text}"
            raise SourceError(msg)
        for match in matches:
            if match.is_dir():
                if not is_lake_folder(match) and match.resolve() not in excluded:
                    files.extend(_walk(match.resolve(), excluded))
            elif not _inside(match.resolve(), excluded) and not is_lake_folder(match.parent):
                files.append(match)
    unreadable = [str(p) for p in files if not os.access(p, os.R_OK)]
    if unreadable:
        msg = f"cannot read {unreadable[0]}: permission denied"
        raise SourceError(msg)
    # The same file named twice (a folder and a glob inside it) is read once.
    return list(dict.fromkeys(p.resolve() for p in files)), list(
        {str(p): p for p in others}.values()
    )
