"""Several writers and a reader on one lake at once, on local disk and on S3 (moto's server).

Four ingests of different files (two clusters), a fifth re-ingesting a file the lake already
holds, and a reader counting events in a loop all start together. Every count the reader sees
must be a whole number of committed ingests, and the final table holds each event once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics import lake as lake_mod
from kaudit_analytics import schema as s

# Each writer waits for the go file, so that all of them run at the same time.
_WRITER = """
import os, sys, time
import kaudit_analytics as ka
go = sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.01)
stats = ka.ingest(sys.argv[1], sys.argv[2], cluster=sys.argv[3], threads=1)
print(stats.events_written, stats.duplicates, stats.version)
"""

_READER = """
import os, sys, time
import polars as pl
import kaudit_analytics as ka
lake, go, stop = sys.argv[1:4]
while not os.path.exists(go):
    time.sleep(0.01)
while not os.path.exists(stop):
    print(ka.scan(lake).select(pl.len()).collect().item(), flush=True)
"""

SIZES = (900, 700, 500, 300)
PRELOADED = 400


def _event(n: int) -> str:
    day = 10 + n % 3
    return json.dumps(
        {
            "kind": "Event",
            "level": "Metadata",
            "auditID": f"00000000-0000-0000-0000-{n:012d}",
            "stage": "ResponseComplete",
            "requestURI": "/api/v1/pods",
            "verb": "list",
            "user": {"username": f"user-{n % 7}"},
            "requestReceivedTimestamp": f"2024-09-{day}T10:00:{n % 60:02d}.000001Z",
            "stageTimestamp": f"2024-09-{day}T10:00:{n % 60:02d}.000201Z",
        }
    )


def _write(path: Path, first: int, count: int) -> Path:
    path.write_text("".join(_event(n) + "\n" for n in range(first, first + count)))
    return path


def _subset_sums(sizes: tuple[int, ...]) -> set[int]:
    return {
        sum(chosen) for k in range(len(sizes) + 1) for chosen in itertools.combinations(sizes, k)
    }


def _run_together(tmp_path: Path, lake: str, env: dict[str, str]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    preloaded = _write(logs / "old.log", 1_000_000, PRELOADED)
    ka.ingest(preloaded, lake, cluster="c0")
    # The same events under another name, after one new event: read again, all duplicates.
    copy = logs / "old-copy.log"
    copy.write_text(_event(2_000_000) + "\n" + preloaded.read_text())
    files, first = [], 0
    for number, size in enumerate(SIZES):
        files.append(_write(logs / f"new-{number}.log", first, size))
        first += size
    go, stop = tmp_path / "go", tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), lake, f"c{number % 2}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for number, path in enumerate([*files, copy])  # the copy goes to c0, as preloaded
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, lake, str(go), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    go.touch()
    outputs = [w.communicate(timeout=600) for w in writers]
    stop.touch()
    seen, errors = reader.communicate(timeout=120)
    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
    assert reader.returncode == 0, errors
    written = [int(out.split()[0]) for out, _ in outputs]
    duplicates = [int(out.split()[1]) for out, _ in outputs]
    assert (written, duplicates) == ([*SIZES, 1], [0, 0, 0, 0, PRELOADED])
    counts = [int(line) for line in seen.split()]
    assert counts, "the reader saw nothing"
    whole = {PRELOADED + total for total in _subset_sums((*SIZES, 1))}
    assert set(counts) <= whole, sorted(set(counts) - whole)
    assert counts == sorted(counts)  # committed versions only ever add
    ids = ka.scan(lake).select(s.CLUSTER, s.AUDIT_ID).collect()
    assert ids.height == PRELOADED + sum(SIZES) + 1
    assert ids[s.AUDIT_ID].n_unique() == ids.height
    # The lake's history has one commit per ingest, each with what it added.
    ingests = lake_mod.history(lake).filter(pl.col("operation") == "ingest")
    assert sorted(ingests["events_added"].to_list()) == sorted([PRELOADED, *SIZES, 1])


@pytest.mark.slow
def test_concurrent_ingests_and_a_reader_on_local_disk(tmp_path: Path) -> None:
    _run_together(tmp_path, str(tmp_path / "lake"), dict(os.environ))


# --- S3: moto's server on loopback -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server in a process of its own, and the environment that reaches it."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def bucket(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    import boto3  # type: ignore[import-untyped]

    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    name = f"lake-{abs(hash(request.node.name)) % 10**8}"
    boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


@pytest.mark.slow
def test_a_lake_on_s3_is_written_read_and_described(bucket: str, tmp_path: Path) -> None:
    lake = f"s3://{bucket}/lake"
    log = _write(tmp_path / "audit.log", 0, 50)
    assert ka.ingest(log, lake, cluster="prod").events_written == 50
    assert ka.ingest(log, lake, cluster="prod").files_unchanged == 1
    assert ka.scan(lake).select(pl.len()).collect().item() == 50
    overview = ka.describe(lake)
    assert (overview.version, overview.events, overview.parquet_files) == (1, 50, 3)
    assert lake_mod.history(lake)["operation"].to_list() == ["ingest", "create"]
    assert lake_mod.compact(lake).files_before == 0


@pytest.mark.slow
def test_concurrent_ingests_and_a_reader_on_s3(
    bucket: str, s3: dict[str, str], tmp_path: Path
) -> None:
    _run_together(tmp_path, f"s3://{bucket}/lake", {**os.environ, **s3})
