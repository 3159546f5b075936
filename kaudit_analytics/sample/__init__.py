"""Deterministic synthetic kube-apiserver audit logs: the bundled sample and benchmark corpora.

A seeded *request stream* (kubelets renewing leases, controllers and the scheduler electing
leaders, kube-proxy and CoreDNS watching, probes, people with kubectl, CI deploying, operators,
with realistic codes, timings and bodies) is written *under an audit policy* exactly as a
kube-apiserver's log backend writes it: ``audit.k8s.io/v1`` Event JSON lines in Go's field order
and escaping. The same seed gives the same requests under any policy, so a workload can be
replayed under two policies and compared.

Profiles pair a traffic mix with a bundled policy:

``metadata``
    A GCE-like, Metadata-heavy policy on 40 nodes: about 1 % of events carry a body (0.7 % at
    night, more in office hours), ~1 KB per event.
``bodies``
    A RequestResponse-heavy policy: about 28 % of events carry a body, ~2 KB per event, p99
    line ~12 KB; bodies over 100 KiB are truncated as the truncate backend does.
``docs``
    The Kubernetes documentation's example policy on a small cluster (the committed sample).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO

from kaudit_analytics.policy import Policy, load_policy
from kaudit_analytics.sample.emit import Emitter, ordered_lines
from kaudit_analytics.sample.gojson import micro_time
from kaudit_analytics.sample.traffic import Mix, Request, requests

__all__ = [
    "DEFAULT_START",
    "PROFILES",
    "GenerateStats",
    "Profile",
    "SampleError",
    "generate",
    "iter_lines",
    "profile_policy",
    "write_sample",
]

#: Where generated time begins unless told otherwise (a Tuesday, so office hours show).
DEFAULT_START = datetime(2024, 9, 10, 0, 0, tzinfo=UTC)


class SampleError(ValueError):
    """The generator was asked for something it cannot do (unknown profile, bad size)."""


@dataclass(frozen=True)
class Profile:
    """A traffic mix and the bundled policy it is written under."""

    name: str
    policy_file: str
    mix: Mix
    description: str


PROFILES: dict[str, Profile] = {
    "metadata": Profile(
        "metadata",
        "metadata.yaml",
        Mix(nodes=40, machine_scale=1.0, human_peak=3.0, write_boost=0.6),
        "GCE-like Metadata-heavy policy on a 40-node cluster",
    ),
    "bodies": Profile(
        "bodies",
        "bodies.yaml",
        Mix(nodes=40, machine_scale=0.6, human_peak=3.0, write_boost=6.0),
        "RequestResponse-heavy policy on a 40-node cluster with write-heavy controllers",
    ),
    "docs": Profile(
        "docs",
        "default.yaml",
        Mix(nodes=3, machine_scale=1.0, human_peak=1.5, rate=0.0085),
        "the documentation's example policy on a small, quiet 3-node cluster",
    ),
}


@dataclass(frozen=True)
class GenerateStats:
    """What ``generate`` wrote.

    Attributes
    ----------
    events
        Audit events (lines) written.
    requests
        Requests of the stream that were drawn (some write no event under the policy).
    bytes
        Uncompressed bytes of JSON lines.
    files
        The files written, oldest first (one unless rotated; empty for a stream).
    first
        ``stageTimestamp`` of the first line (RFC 3339, µs).
    last
        ``stageTimestamp`` of the last line.
    """

    events: int
    requests: int
    bytes: int
    files: tuple[str, ...]
    first: str
    last: str


def _profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        msg = f"unknown generator profile {name!r}; choose one of {known}"
        raise SampleError(msg) from None


def profile_policy(profile: str = "metadata") -> Policy:
    """The bundled audit policy of a generator profile.

    Examples
    --------
    >>> from kaudit_analytics.sample import profile_policy
    >>> profile_policy("bodies").rules[-1].level
    'RequestResponse'
    """
    text = (
        resources.files("kaudit_analytics.sample")
        .joinpath("profiles", _profile(profile).policy_file)
        .read_text(encoding="utf-8")
    )
    return load_policy(text)


def _start_us(start: datetime | str | None) -> int:
    if start is None:
        start = DEFAULT_START
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            msg = f"--start {start!r} is not an ISO 8601 date or time"
            raise SampleError(msg) from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    delta = start - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timed_lines(
    *,
    events: int,
    seed: int,
    policy: Policy | str | Path | None,
    profile: str,
    start: datetime | str | None,
    counter: list[int] | None = None,
) -> Iterator[tuple[int, str]]:
    if events < 0:
        msg = f"the number of events must be zero or more, not {events}"
        raise SampleError(msg)
    chosen = _profile(profile)
    if policy is None:
        resolved = profile_policy(profile)
    elif isinstance(policy, Policy):
        resolved = policy
    else:
        resolved = load_policy(policy)
    stream = requests(seed, chosen.mix, _start_us(start))
    if counter is not None:
        stream = _counting(stream, counter)
    if events == 0:
        return
    for written, item in enumerate(ordered_lines(stream, Emitter(resolved)), start=1):
        yield item
        if written >= events:
            return


def _counting(stream: Iterator[Request], counter: list[int]) -> Iterator[Request]:
    for item in stream:
        counter[0] += 1
        yield item


def iter_lines(
    *,
    events: int,
    seed: int = 0,
    policy: Policy | str | Path | None = None,
    profile: str = "metadata",
    start: datetime | str | None = None,
) -> Iterator[str]:
    """Yield ``events`` audit log lines (each ending in ``\\n``) of a seeded synthetic cluster.

    Parameters
    ----------
    events
        How many lines to produce.
    seed
        The seed of the request stream: same seed, same requests, whatever the policy.
    policy
        A ``Policy``, a policy file or YAML text; ``None`` takes the profile's bundled policy.
    profile
        ``"metadata"``, ``"bodies"`` or ``"docs"`` (see the module docs).
    start
        When the traffic starts (``datetime`` or ISO text, UTC); default ``DEFAULT_START``.

    Examples
    --------
    >>> import json
    >>> from kaudit_analytics.sample import iter_lines
    >>> lines = list(iter_lines(events=3, seed=7))
    >>> [json.loads(line)["kind"] for line in lines]
    ['Event', 'Event', 'Event']
    >>> lines == list(iter_lines(events=3, seed=7))
    True
    """
    for _, line in _timed_lines(
        events=events, seed=seed, policy=policy, profile=profile, start=start
    ):
        yield line


def _backup_name(epoch_us: int, *, compress: bool) -> str:
    stamp = micro_time(epoch_us)[:23].replace(":", "-")  # 2024-09-10T14-16-32.123
    return f"audit-{stamp}.log" + (".gz" if compress else "")


def _gzip_file(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    # mtime=0 and no file name keep the archive byte-for-byte reproducible.
    with (
        path.open("rb") as src,
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
    path.unlink()
    return target


class _RotatingWriter:
    """Write lines like the apiserver's lumberjack logger: rotate at a size, optionally gzip."""

    def __init__(self, path: Path, rotate_bytes: int | None, *, compress: bool) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.compress = compress
        self.backups: list[Path] = []
        self.size = 0
        self.total = 0
        self.buffer: list[bytes] = []
        try:
            self.raw: IO[bytes] = path.open("wb")
        except OSError as exc:
            msg = f"cannot write {path}: {exc.strerror or exc}"
            raise SampleError(msg) from exc
        self.handle: IO[bytes] | gzip.GzipFile = self.raw
        if rotate_bytes is None and compress:
            # mtime=0 and no file name keep the archive byte-for-byte reproducible.
            self.handle = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0)

    def write(self, stage_us: int, line: str) -> None:
        data = line.encode()
        if (
            self.rotate_bytes is not None
            and self.size
            and self.size + len(data) > self.rotate_bytes
        ):
            self._rotate(stage_us)
        self.buffer.append(data)
        self.size += len(data)
        self.total += len(data)
        if len(self.buffer) >= 4096:
            self.flush()

    def flush(self) -> None:
        self.handle.write(b"".join(self.buffer))
        self.buffer.clear()

    def _rotate(self, stage_us: int) -> None:
        self.flush()
        self.raw.close()
        backup = self.path.with_name(_backup_name(stage_us, compress=False))
        self.path.rename(backup)
        self.backups.append(_gzip_file(backup) if self.compress else backup)
        self.raw = self.handle = self.path.open("wb")
        self.size = 0

    def close(self) -> tuple[str, ...]:
        self.flush()
        self.handle.close()
        self.raw.close()
        return (*map(str, self.backups), str(self.path))


def generate(
    out: str | Path | IO[bytes],
    *,
    events: int,
    seed: int = 0,
    policy: Policy | str | Path | None = None,
    profile: str = "metadata",
    start: datetime | str | None = None,
    compress: bool = False,
    rotate_bytes: int | None = None,
) -> GenerateStats:
    """Write ``events`` synthetic audit lines to a file (or binary stream), streaming.

    Parameters
    ----------
    out
        A path (``audit.log``), or an open binary stream.
    events, seed, policy, profile, start
        As for ``iter_lines``.
    compress
        Gzip the output; with ``rotate_bytes``, gzip the rotated backups as
        ``--audit-log-compress`` does (the live ``audit.log`` stays plain).
    rotate_bytes
        Rotate like ``--audit-log-maxsize``: when the file would exceed this many bytes it is
        renamed ``audit-<time>.log`` and a fresh one started. Only for a path.

    Raises
    ------
    SampleError
        For an unknown profile, a negative count, a bad start or rotation on a stream.

    Examples
    --------
    >>> import io
    >>> from kaudit_analytics.sample import generate
    >>> buffer = io.BytesIO()
    >>> stats = generate(buffer, events=100, seed=1)
    >>> stats.events, buffer.getvalue().count(b"\\n")
    (100, 100)
    """
    if rotate_bytes is not None and rotate_bytes <= 0:
        msg = f"--rotate-bytes must be positive, not {rotate_bytes}"
        raise SampleError(msg)
    counter = [0]
    lines = _timed_lines(
        events=events, seed=seed, policy=policy, profile=profile, start=start, counter=counter
    )
    first = last = ""
    count = 0
    if isinstance(out, (str, Path)):
        writer = _RotatingWriter(Path(out), rotate_bytes, compress=compress)
        try:
            for stage_us, line in lines:
                writer.write(stage_us, line)
                if not count:
                    first = micro_time(stage_us)
                count += 1
                last_us = stage_us
        finally:
            files = writer.close()
        written = writer.total
    else:
        if rotate_bytes is not None:
            msg = "--rotate-bytes needs a file path, not a stream"
            raise SampleError(msg)
        sink: IO[bytes] | gzip.GzipFile = (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) if compress else out
        )
        files = ()
        written = 0
        chunk: list[bytes] = []
        for stage_us, line in lines:
            chunk.append(line.encode())
            if not count:
                first = micro_time(stage_us)
            count += 1
            last_us = stage_us
            if len(chunk) >= 4096:
                data = b"".join(chunk)
                written += len(data)
                sink.write(data)
                chunk.clear()
        data = b"".join(chunk)
        written += len(data)
        sink.write(data)
        if compress:
            sink.close()
    if count:
        last = micro_time(last_us)
    return GenerateStats(count, counter[0], written, files, first, last)


#: The committed sample: about two days of a small cluster under the docs-like policy.
_SAMPLE_EVENTS = 20_000
_SAMPLE_SEED = 2024
#: Share of the sample's events in the gzipped backup, the plain backup and ``audit.log``.
_SAMPLE_SPLIT = (0.92, 0.05, 0.03)


def write_sample(directory: str | Path, *, events: int = _SAMPLE_EVENTS) -> GenerateStats:
    """(Re)build the bundled sample in ``directory`` as a rotated set of apiserver logs.

    The set is what ``--audit-log-path=audit.log --audit-log-compress`` leaves behind: the
    live ``audit.log``, the latest backup ``audit-<rotation time>.log`` (not compressed yet)
    and an older, gzipped ``audit-<rotation time>.log.gz``. The compressed backup holds most
    of the two days so that the repository stays small; backup names carry the time of the
    rotation, as lumberjack names them.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from kaudit_analytics.sample import write_sample
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     stats = write_sample(tmp, events=300)
    ...     names = sorted(p.name for p in Path(tmp).iterdir())
    >>> stats.events
    300
    >>> names  # doctest: +NORMALIZE_WHITESPACE
    ['audit-2024-09-10T00-53-56.503.log.gz', 'audit-2024-09-10T00-56-50.540.log',
     'audit.log']
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [
        *folder.glob("audit.log"),
        *folder.glob("audit-*.log"),
        *folder.glob("audit-*.log.gz"),
    ]:
        old.unlink()
    cuts = (round(events * _SAMPLE_SPLIT[0]), round(events * (_SAMPLE_SPLIT[0] + _SAMPLE_SPLIT[1])))
    chunks: list[list[bytes]] = [[], [], []]
    rotated_at: list[int] = []
    first = last = ""
    counter = [0]
    lines = _timed_lines(
        events=events, seed=_SAMPLE_SEED, policy=None, profile="docs", start=None, counter=counter
    )
    for index, (stage_us, line) in enumerate(lines):
        part = 0 if index < cuts[0] else 1 if index < cuts[1] else 2
        if index in cuts:
            rotated_at.append(stage_us)
        chunks[part].append(line.encode())
        first = first or micro_time(stage_us)
        last = micro_time(stage_us)
    oldest = folder / _backup_name(rotated_at[0], compress=True)
    with (
        oldest.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
    ):
        gz.write(b"".join(chunks[0]))
    newer = folder / _backup_name(rotated_at[1], compress=False)
    newer.write_bytes(b"".join(chunks[1]))
    live = folder / "audit.log"
    live.write_bytes(b"".join(chunks[2]))
    total = sum(len(line) for chunk in chunks for line in chunk)
    return GenerateStats(
        events, counter[0], total, (str(oldest), str(newer), str(live)), first, last
    )
