"""Sources other than local files: S3 (a real S3 API on loopback) and must-gather archives."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import discover as _sources
from kaudit_analytics.ingestion import loader

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")


def _event(n: int, *, server: str = "kube-apiserver") -> bytes:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"{server}-{n:08d}",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/default/pods/p{n}",
        "verb": "get",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "objectRef": {"resource": "pods", "namespace": "default", "name": f"p{n}"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": f"2024-09-11T10:{n % 60:02d}:00.000001Z",
        "stageTimestamp": f"2024-09-11T10:{n % 60:02d}:00.000201Z",
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _lines(events: Iterator[bytes] | list[bytes]) -> bytes:
    return b"".join(e + b"\n" for e in events)


# --- S3 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1: the real S3 wire protocol, not a mocked client."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Any:
    """An empty bucket, with the environment pointing S3 clients at the local server."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    name = "b" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    fs.mkdir(name)
    fs.name = name
    return fs


@pytest.mark.slow
def test_s3_prefix_loads_every_object_with_its_url(bucket: Any, tmp_path: Path) -> None:
    bucket.pipe(f"{bucket.name}/audit/a.log", _lines([_event(n) for n in range(10)]))
    bucket.pipe(
        f"{bucket.name}/audit/b.log.gz", gzip.compress(_lines([_event(n) for n in range(10, 15)]))
    )
    bucket.pipe(f"{bucket.name}/other/c.log", _lines([_event(99)]))
    stats = ka.ingest(f"s3://{bucket.name}/audit/", tmp_path / "lake")
    assert (stats.files, stats.events_written, stats.quarantined) == (2, 15, 0)
    files = ka.scan(tmp_path / "lake").group_by(s.SOURCE_FILE).len().sort(s.SOURCE_FILE).collect()
    assert files.rows() == [
        (f"s3://{bucket.name}/audit/a.log", 10),
        (f"s3://{bucket.name}/audit/b.log.gz", 5),
    ]


@pytest.mark.slow
def test_s3_is_incremental_like_local_files(bucket: Any, tmp_path: Path) -> None:
    key = f"{bucket.name}/audit/audit.log"
    bucket.pipe(key, _lines([_event(n) for n in range(20)]))
    first = ka.ingest(f"s3://{key}", tmp_path / "lake")
    again = ka.ingest(f"s3://{key}", tmp_path / "lake")
    assert (first.events_written, again.files_unchanged, again.events_read) == (20, 1, 0)
    # Objects cannot grow: a shipper rewrites the whole object with more lines.
    bucket.pipe(key, _lines([_event(n) for n in range(25)]))
    grown = ka.ingest(f"s3://{key}", tmp_path / "lake")
    assert (grown.files_unchanged, grown.events_read, grown.events_written) == (0, 5, 5)
    assert grown.duplicates == 0
    lines = ka.scan(tmp_path / "lake").select(s.SOURCE_LINE).collect()[s.SOURCE_LINE]
    assert sorted(lines) == list(range(1, 26))


@pytest.mark.slow
def test_s3_glob_and_cloud_formats(bucket: Any, tmp_path: Path) -> None:
    record = {
        "category": "kube-audit",
        "properties": {"log": _event(1).decode() + "\n"},
        "time": "2024-09-11T10:01:00.0000000Z",
    }
    bucket.pipe(f"{bucket.name}/aks/PT1H.json", json.dumps({"records": [record]}).encode())
    bucket.pipe(f"{bucket.name}/aks/notes.txt", b"hello\n")
    stats = ka.ingest(f"s3://{bucket.name}/aks/*.json", tmp_path / "lake")
    assert (stats.files, stats.events_written) == (1, 1)
    assert ka.scan(tmp_path / "lake").collect()[s.SOURCE_FORMAT].to_list() == ["aks"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("s3://{bucket}/nothing-here/", "no such object or prefix: s3://{bucket}/nothing-here/"),
        ("s3://{bucket}/missing.log", "no such object or prefix: s3://{bucket}/missing.log"),
    ],
)
def test_s3_missing_objects_are_one_clear_error(
    bucket: Any, tmp_path: Path, url: str, error: str
) -> None:
    with pytest.raises(loader.IngestError, match="^" + error.format(bucket=bucket.name) + "$"):
        ka.ingest(url.format(bucket=bucket.name), tmp_path / "lake")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_unsupported_store_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(loader.IngestError, match="install gcsfs to read gs:// sources"):
        ka.ingest("gs://bucket/audit/", tmp_path / "lake")


# --- OpenShift must-gather -----------------------------------------------------------------------

SERVERS = ("kube-apiserver", "openshift-apiserver", "oauth-apiserver")
ROOT = "must-gather.local.5340/quay-io-openshift-release-dev-sha256-abc/audit_logs"


def _must_gather(root: Path) -> dict[str, int]:
    """A must-gather audit folder as `oc adm must-gather -- gather_audit_logs` lays it out."""
    counts: dict[str, int] = {}
    for i, server in enumerate(SERVERS):
        folder = root / ROOT / server
        folder.mkdir(parents=True)
        n = 3 + i
        (folder / "master-0-audit-2024-09-11T10-00-00.000.log.gz").write_bytes(
            gzip.compress(_lines([_event(k, server=server) for k in range(n)]))
        )
        (folder / "master-0-audit.log").write_bytes(_lines([_event(100, server=server)]))
        counts[server] = n + 1
    (root / ROOT / "kube-apiserver.audit_logs_listing").write_text("master-0-audit.log\n")
    (root / "must-gather.local.5340" / "event-filter.html").write_text("<html></html>\n")
    return counts


def _by_apiserver(lake: Path) -> dict[str, int]:
    frame = ka.scan(lake).select(_sources.APISERVER).collect()
    return dict(frame.group_by("apiserver").len().iter_rows())


def test_must_gather_folder_records_the_apiserver(tmp_path: Path) -> None:
    counts = _must_gather(tmp_path / "mg")
    stats = ka.ingest(
        tmp_path / "mg" / "must-gather.local.5340" / "quay-io-openshift-release-dev-sha256-abc",
        tmp_path / "lake",
    )
    assert stats.quarantined == 0
    assert _by_apiserver(tmp_path / "lake") == counts


def test_must_gather_tarball_loads_only_audit_logs(tmp_path: Path) -> None:
    counts = _must_gather(tmp_path / "mg")
    archive = tmp_path / "must-gather.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "mg" / "must-gather.local.5340", arcname="must-gather.local.5340")
    stats = ka.ingest(archive, tmp_path / "lake")
    assert (stats.files, stats.quarantined) == (6, 0)
    assert stats.events_written == sum(counts.values())
    assert _by_apiserver(tmp_path / "lake") == counts
    sources = ka.scan(tmp_path / "lake").select(s.SOURCE_FILE).unique().collect()[s.SOURCE_FILE]
    assert f"{archive.resolve()}!/{ROOT}/oauth-apiserver/master-0-audit.log" in sources.to_list()
    again = ka.ingest(archive, tmp_path / "lake")
    assert (again.files_unchanged, again.events_read) == (6, 0)


def test_unsafe_archive_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        data = _lines([_event(1)])
        info = tarfile.TarInfo("../../escaped/audit.log")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(loader.IngestError, match="cannot read the archive"):
        ka.ingest(archive, tmp_path / "lake")
    assert not (tmp_path.parent / "escaped").exists()


def test_apiserver_expression_is_null_for_other_sources() -> None:
    frame = pl.DataFrame(
        {s.SOURCE_FILE: [f"/x/{ROOT}/oauth-apiserver/a.log", "/var/log/audit.log"]}
    )
    assert frame.select(_sources.APISERVER)["apiserver"].to_list() == ["oauth-apiserver", None]
