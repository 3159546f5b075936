"""The loader against real logs from other projects and against every kind of bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaudit_analytics as ka
from kaudit_analytics import lake as lake_mod
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import loader
from kaudit_analytics.ingestion.dedupe import KeyIndex
from kaudit_analytics.ingestion.parse import Parser
from kaudit_analytics.testing import SAMPLE_DIR

# Native audit.k8s.io events (v1, v1beta1, v1alpha1), as JSON lines or one JSON document.
NATIVE_SAMPLES = [
    "audit2rbac/demo.2017-v1beta1-full.log",
    "audit2rbac/demo.log",
    "crowdsec-hub/k8s-audit-pod-exec-file.log",
    "crowdsec-hub/k8s-audit-priv-pod-file.log",
    "openshift-docs/audit_examples.jsonl",
    "kubernetes-website-docs/v1alpha1_events.jsonl",
    "kubernetes-website-docs/v1alpha1_webhook_eventlist.json",
    "sysdig-aks-audit-log/sample_KubeAuditLog_event.json",
    "falco-legacy-trace-files/create_configmap_sensitive_values.json",
    "falco-legacy-trace-files/create_nginx_pod_privileged.json",
    "falco-legacy-trace-files/create_secret.json",
    "falco-legacy-trace-files/attach_pod.json",
    "falco-legacy-trace-files/fal_01_003.json",
]

REQUIRED = ("auditID", "stage", "verb")


def _source_objects(path: Path) -> list[tuple[int, Any]]:
    """Reference reader: every JSON value of a file with its line (or item) number."""
    text = path.read_bytes().decode("utf-8-sig")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [
            (n, json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()
        ]
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return [(n, {**item}) for n, item in enumerate(doc["items"], 1)]
    return [(1, doc)]


def _is_event(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and all(obj.get(k) for k in REQUIRED)
        and bool(obj.get("requestReceivedTimestamp") or obj.get("timestamp"))
    )


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


@pytest.mark.parametrize("name", NATIVE_SAMPLES)
def test_real_sample_loads_every_event_with_its_values(
    shared_samples: Path, tmp_path: Path, name: str
) -> None:
    path = shared_samples / name
    objects = _source_objects(path)
    expected = [(n, o) for n, o in objects if _is_event(o)]

    stats = ka.ingest(path, tmp_path)

    assert stats.events_read == len(expected)
    assert stats.quarantined == len(objects) - len(expected)
    unique = {(o["auditID"], o["stage"]) for _, o in expected}
    assert stats.events_written == len(unique)
    rows = ka.scan(tmp_path).sort(s.SOURCE_LINE).collect()
    by_line = dict(expected)
    for row in rows.iter_rows(named=True):
        src = by_line[row[s.SOURCE_LINE]]
        ref = src.get("objectRef") or {}
        assert row[s.AUDIT_ID] == src["auditID"]
        assert row[s.STAGE] == src["stage"]
        assert row[s.VERB] == src["verb"]
        assert row[s.REQUEST_URI] == src.get("requestURI")
        assert row[s.USER] == (src.get("user") or {}).get("username")
        assert row[s.GROUPS] == (src.get("user") or {}).get("groups")
        assert row[s.SOURCE_IPS] == src.get("sourceIPs")
        assert row[s.RESOURCE] == ref.get("resource")
        assert row[s.NAMESPACE] == ref.get("namespace")
        assert row[s.NAME] == ref.get("name")
        assert row[s.CODE] == (src.get("responseStatus") or {}).get("code")
        ts = src.get("requestReceivedTimestamp") or src["timestamp"]
        assert row[s.REQUEST_TS] == _ts(ts)
        assert row[s.SOURCE_FILE] == str(path.resolve())
        assert row[s.TRUNCATED] is False


@pytest.mark.slow
def test_core_group_and_v1alpha1_group_version(shared_samples: Path, tmp_path: Path) -> None:
    ka.ingest(shared_samples / "kubernetes-website-docs" / "v1alpha1_events.jsonl", tmp_path)
    ka.ingest(shared_samples / "crowdsec-hub" / "k8s-audit-pod-exec-file.log", tmp_path)
    rows = ka.scan(tmp_path).select(s.RESOURCE, s.API_GROUP, s.API_VERSION).collect()
    # v1alpha1 writes "/v1" for core; a v1 event has no apiGroup for core: both are "".
    assert set(rows.filter(pl.col(s.RESOURCE) == "pods").rows()) == {("pods", "", "v1")}


@pytest.mark.slow
def test_all_shared_samples_load_without_errors(shared_samples: Path, tmp_path: Path) -> None:
    """Every published file goes in at once: what is not an audit event is quarantined, not lost."""
    stats = ka.ingest(shared_samples, tmp_path)
    quarantine = lake_mod.scan_quarantine(tmp_path).collect()
    assert stats.events_read > 850
    assert quarantine.height == stats.quarantined
    assert quarantine["reason"].is_in(list(loader._REASONS)).all()


# --- incremental, idempotent -------------------------------------------------------------------


def _event(n: int, *, stage: str = "ResponseComplete", minute: int = 0, **extra: Any) -> bytes:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"00000000-0000-0000-0000-{n:012d}",
        "stage": stage,
        "requestURI": f"/api/v1/namespaces/default/pods/p{n}",
        "verb": "get",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"],
        "objectRef": {
            "resource": "pods",
            "namespace": "default",
            "name": f"p{n}",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": f"2024-09-11T10:{minute:02d}:00.000001Z",
        "stageTimestamp": f"2024-09-11T10:{minute:02d}:00.000201Z",
        **extra,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _lines(*events: bytes) -> bytes:
    return b"".join(e + b"\n" for e in events)


def test_second_run_loads_nothing_new(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(*(_event(n) for n in range(100))))
    first = ka.ingest(log, tmp_path / "lake")
    again = ka.ingest(log, tmp_path / "lake")
    assert (first.events_written, again.events_written, again.events_read) == (100, 0, 0)
    assert again.files_unchanged == 1


@pytest.mark.slow
def test_growing_file_resumes_after_last_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    whole = _lines(*(_event(n) for n in range(10)))
    cut = whole.index(b"\n", len(whole) // 2) + 20  # mid-line
    log.write_bytes(whole[:cut])
    first = ka.ingest(log, tmp_path / "lake")
    assert first.partial_lines == 1
    assert first.quarantined == 0
    with log.open("ab") as handle:
        handle.write(whole[cut:])
    second = ka.ingest(log, tmp_path / "lake")
    assert first.events_written + second.events_written == 10
    assert second.duplicates == 0
    lines = ka.scan(tmp_path / "lake").select(s.SOURCE_LINE).collect()[s.SOURCE_LINE]
    assert sorted(lines) == list(range(1, 11))


@pytest.mark.slow
def test_rotated_and_compressed_copies_are_recognised(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    log.write_bytes(_lines(*(_event(n) for n in range(50))))
    lake = tmp_path / "lake"
    assert ka.ingest(log.parent, lake).events_written == 50
    # Rotation: the file is renamed, grows by what was written before the rename, and is
    # compressed; a new audit.log starts.
    rotated = log.with_name("audit-2024-09-11T14-16-32.123.log")
    log.rename(rotated)
    with rotated.open("ab") as handle:
        handle.write(_lines(*(_event(n) for n in range(50, 60))))
    with gzip.open(rotated.with_suffix(".log.gz"), "wb") as handle:
        handle.write(rotated.read_bytes())
    log.write_bytes(_lines(*(_event(n) for n in range(60, 65))))
    stats = ka.ingest(log.parent, lake)
    assert stats.events_written == 15
    assert stats.duplicates == 0
    assert ka.scan(lake).select(pl.len()).collect().item() == 65


def test_duplicates_are_dropped_on_audit_id_and_stage(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(_lines(_event(1), _event(1), _event(1, stage="RequestReceived"), _event(2)))
    other = tmp_path / "b.log"  # another file holding an event already loaded
    other.write_bytes(_lines(_event(2, minute=1)))
    stats = ka.ingest([log, other], tmp_path / "lake")
    assert (stats.events_read, stats.events_written, stats.duplicates) == (5, 3, 2)
    # The copy kept is the first one given: the evidence cites its file and line.
    kept = ka.scan(tmp_path / "lake").sort(s.AUDIT_ID, s.STAGE).collect()
    assert kept.select(s.SOURCE_FILE, s.SOURCE_LINE).rows() == [
        (str(log.resolve()), 3),
        (str(log.resolve()), 1),
        (str(log.resolve()), 4),
    ]


# --- bad input ---------------------------------------------------------------------------------


def _quarantine(lake: Path) -> pl.DataFrame:
    return lake_mod.scan_quarantine(lake).collect().sort("source", "line")


BAD_LINES = [
    pytest.param(b'{"kind":"Event","auditID":', "invalid-json", id="malformed"),
    pytest.param(b'{"kind":"Event","verb":"get\xff\xfe"}', "invalid-utf8", id="invalid-utf8"),
    pytest.param(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1"}', "missing-fields", id="fields"),
    pytest.param(b"[1,2,3]", "not-an-event", id="array"),
    pytest.param(_event(7, stage="Finished"), "unknown-stage", id="stage"),
    pytest.param(b'{"a":"' + b"x" * 5000 + b'"}', "line-too-long", id="too-long"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_bad_line_is_quarantined_and_neighbours_load(
    tmp_path: Path, bad: bytes, reason: str
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1), bad, _event(2)))
    stats = ka.ingest(log, tmp_path / "lake", max_line_bytes=4096)
    assert (stats.events_written, stats.quarantined) == (2, 1)
    record = _quarantine(tmp_path / "lake").row(0, named=True)
    assert (record["line"], record["reason"]) == (2, reason)
    # The line's bytes, whole, and where it starts in the file.
    assert record["raw"] == bad
    assert record["offset"] == len(_event(1)) + 1
    assert record["source"] == str(log.resolve())
    assert record["cluster"] == "default"


@pytest.mark.slow
def test_a_long_line_is_kept_whole_and_the_message_names_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    long_line = _event(2, requestObject={"blob": "x" * 300_000})
    log.write_bytes(_lines(_event(1), long_line))
    stats = ka.ingest(log, tmp_path / "lake", max_line_bytes=100_000)
    record = _quarantine(tmp_path / "lake").row(0, named=True)
    assert record["raw"] == long_line
    assert "over the line-size limit of 100,000 bytes (--max-line-bytes)" in record["detail"]
    assert "line-size limit of 100,000 bytes" in stats.summary()
    # With a larger limit, the same line loads.
    again = ka.ingest(log, tmp_path / "other", max_line_bytes=1_000_000)
    assert (again.events_written, again.quarantined) == (2, 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("record", "expected", "absent"),
    [
        pytest.param(
            {"kind": "Event", "verb": "get", "level": "Metadata"},
            "missing required field(s): auditID, stage, requestReceivedTimestamp",
            "verb",
            id="verb-present",
        ),
        pytest.param(
            {
                "kind": "Event",
                "auditID": "a",
                "stage": "ResponseComplete",
                "verb": "get",
                "requestReceivedTimestamp": "yesterday",
            },
            "unusable: requestReceivedTimestamp yesterday is not a time",
            "missing",
            id="timestamp-unusable",
        ),
        pytest.param(
            {"log": "{}", "time": "2024-09-11T10:00:00Z"},
            "its fields: log, time",
            "verb is",
            id="wrapper",
        ),
    ],
)
def test_quarantine_detail_names_only_what_is_missing(
    tmp_path: Path, record: dict[str, Any], expected: str, absent: str
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(json.dumps(record).encode()))
    ka.ingest(log, tmp_path / "lake")
    detail = _quarantine(tmp_path / "lake")["detail"].item()
    assert expected in detail
    assert absent not in detail


@pytest.mark.slow
def test_truncated_gzip_keeps_every_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.log.gz"
    whole = gzip.compress(_lines(*(_event(n) for n in range(2000))))
    log.write_bytes(whole[: len(whole) * 2 // 3])
    stats = ka.ingest(log, tmp_path / "lake")
    assert stats.events_written > 100
    assert stats.quarantined == 1
    record = _quarantine(tmp_path / "lake").row(0, named=True)
    assert record["reason"] == "truncated-gzip"
    assert record["line"] == stats.events_written + 1


@pytest.mark.slow
def test_empty_and_foreign_files_are_quarantined(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "empty.log").write_bytes(b"")
    (tmp_path / "logs" / "notes.txt").write_text("hello\n")
    (tmp_path / "logs" / "audit.log").write_bytes(_lines(_event(1)))
    stats = ka.ingest(tmp_path / "logs", tmp_path / "lake")
    reasons = sorted(_quarantine(tmp_path / "lake")["reason"])
    assert reasons == ["empty-file", "unknown-format"]
    assert stats.events_written == 1
    assert ka.ingest(tmp_path / "logs", tmp_path / "lake").quarantined == 0


def test_windows_line_ends_bom_and_blank_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"\xef\xbb\xbf" + _event(1) + b"\r\n\r\n   \n" + _event(2) + b"\r\n")
    stats = ka.ingest(log, tmp_path / "lake")
    assert (stats.events_written, stats.quarantined) == (2, 0)
    sizes = ka.scan(tmp_path / "lake").sort(s.SOURCE_LINE).collect()[s.EVENT_BYTES].to_list()
    assert sizes == [len(_event(1)), len(_event(2))]


@pytest.mark.parametrize(
    ("sources", "error"),
    [
        (["/no/such/audit.log"], "no such file or folder: /no/such/audit.log"),
        (["/no/such/*.log"], "no such file or folder: /no/such/*.log"),
    ],
)
def test_missing_paths_are_one_clear_error(tmp_path: Path, sources: list[str], error: str) -> None:
    with pytest.raises(loader.IngestError, match="^" + error.replace("*", r"\*") + "$"):
        ka.ingest(sources, tmp_path / "lake")


# --- secrets -----------------------------------------------------------------------------------


LAST_APPLIED = '{"data":{"password":"aHVudGVyMg=="}}'
SECRET = {
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {
        "name": "db",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED},
    },
    "data": {"password": "aHVudGVyMg=="},
    "stringData": {"token": "hunter2"},
}


def _secret_event(n: int, **extra: Any) -> bytes:
    ref = {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"}
    return _event(n, level="RequestResponse", objectRef=ref, **extra)


@pytest.mark.slow
@pytest.mark.parametrize(
    "line",
    [
        pytest.param(_secret_event(1, requestObject=SECRET, responseObject=SECRET), id="secret"),
        pytest.param(
            _secret_event(2, responseObject={"kind": "SecretList", "items": [SECRET]}), id="list"
        ),
        pytest.param(_secret_event(3, requestObject={"data": SECRET["data"]}), id="patch"),
        pytest.param(
            _secret_event(
                4, requestObject=[{"op": "replace", "path": "/data/password", "value": "aHVudGVy"}]
            ),
            id="json-patch",
        ),
        pytest.param(
            _event(
                5,
                objectRef={"resource": "tokenreviews", "apiGroup": "authentication.k8s.io"},
                requestObject={"kind": "TokenReview", "spec": {"token": "hunter2"}},
            ),
            id="tokenreview",
        ),
        pytest.param(
            _event(
                6,
                objectRef={"resource": "serviceaccounts", "subresource": "token"},
                responseObject={"kind": "TokenRequest", "status": {"token": "hunter2"}},
            ),
            id="token-request",
        ),
        pytest.param(
            # Not a secrets request: only the body's own "kind":"Secret" marks it for redaction.
            _event(
                7,
                level="RequestResponse",
                objectRef={"resource": "releases", "apiGroup": "charts.example.io"},
                requestObject={"kind": "Release", "spec": {"manifests": [SECRET]}},
            ),
            id="embedded",
        ),
    ],
)
def test_secret_values_are_redacted_by_default(tmp_path: Path, line: bytes) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(line))
    ka.ingest(log, tmp_path / "lake")
    row = ka.scan(tmp_path / "lake").collect().row(0, named=True)
    bodies = f"{row[s.REQUEST_OBJECT]}{row[s.RESPONSE_OBJECT]}"
    assert "aHVudGVy" not in bodies
    assert "hunter2" not in bodies
    assert s.REDACTED in bodies
    # Sizes are those of the logged bodies, before redaction.
    logged = json.loads(line)
    size = len(json.dumps(logged.get("requestObject"), separators=(",", ":")))
    assert row[s.REQUEST_OBJECT_BYTES] == (size if "requestObject" in logged else None)

    kept = tmp_path / "kept"
    ka.ingest(log, kept, keep_secrets=True)
    raw = ka.scan(kept).collect().row(0, named=True)
    assert "hunter2" in f"{raw[s.REQUEST_OBJECT]}{raw[s.RESPONSE_OBJECT]}" or "aHVudGVy" in (
        f"{raw[s.REQUEST_OBJECT]}{raw[s.RESPONSE_OBJECT]}"
    )


def test_truncated_events_are_flagged(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1, annotations={"audit.k8s.io/truncated": "true"}), _event(2)))
    ka.ingest(log, tmp_path / "lake")
    flags = ka.scan(tmp_path / "lake").sort(s.SOURCE_LINE).collect()[s.TRUNCATED].to_list()
    assert flags == [True, False]


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        # Go escapes <, > and & in every string: put back, the body is as logged.
        pytest.param('{"note":"a\\u003cb\\u0026c"}', '{"note":"a\\u003cb\\u0026c"}', id="go"),
        # No escape anywhere in the line: nothing to put back.
        pytest.param('{"note":"plain"}', '{"note":"plain"}', id="plain"),
        # A raw & elsewhere in the line: not written by Go, so the body stays as DuckDB wrote it.
        pytest.param('{"note":"a\\u003cb","raw":"x&y"}', '{"note":"a<b","raw":"x&y"}', id="not-go"),
    ],
)
def test_bodies_get_go_escapes_back_only_from_go_written_lines(
    tmp_path: Path, logged: str, expected: str
) -> None:
    log = tmp_path / "audit.log"
    line = _event(1, level="Request", requestObject=json.loads(logged)).replace(
        json.dumps(json.loads(logged), separators=(",", ":")).encode(), logged.encode()
    )
    assert logged.encode() in line
    log.write_bytes(_lines(line))
    ka.ingest(log, tmp_path / "lake")
    assert ka.scan(tmp_path / "lake").collect()[s.REQUEST_OBJECT].to_list() == [expected]


def test_go_escaped_bodies_are_kept_byte_for_byte(shared_samples: Path, tmp_path: Path) -> None:
    path = shared_samples / "crowdsec-hub" / "k8s-audit-priv-pod-file.log"
    ka.ingest(path, tmp_path)
    row = ka.scan(tmp_path).collect().row(0, named=True)
    raw = path.read_text()
    assert row[s.REQUEST_OBJECT] in raw
    assert row[s.RESPONSE_OBJECT] in raw
    assert row[s.REQUEST_OBJECT_BYTES] == len(row[s.REQUEST_OBJECT].encode())
    assert row[s.MANAGED_FIELDS_BYTES] > 0


# --- the lake ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_scan_prunes_by_cluster_and_time(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(*(_event(n, minute=n) for n in range(30))))
    ka.ingest(log, tmp_path / "lake", cluster="prod")
    ka.ingest(log, tmp_path / "lake", cluster="dev")
    lake = tmp_path / "lake"
    assert ka.scan(lake).select(pl.len()).collect().item() == 60
    assert ka.scan(lake, cluster="prod").select(pl.len()).collect().item() == 30
    window = ka.scan(lake, cluster=["dev"], since="2024-09-11T10:05:00Z", until="2024-09-11T10:10")
    assert window.select(pl.len()).collect().item() == 5
    assert ka.scan(lake, since=dt.date(2024, 9, 12)).collect().height == 0
    assert ka.scan(lake).collect_schema() == s.AUDIT_SCHEMA


def test_duckdb_reads_the_lake_as_a_hive_table(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(*(_event(n) for n in range(20))))
    ka.ingest(log, tmp_path / "lake", cluster="prod")
    # The table's current files (what the README shows for engines without Delta support).
    files = lake_mod.files(tmp_path / "lake")
    got = duckdb.execute(
        "SELECT cluster, date, count(*), count(DISTINCT audit_id) FROM read_parquet(?, "
        "hive_partitioning=true) GROUP BY ALL",
        [files],
    ).fetchall()
    assert got == [("prod", dt.date(2024, 9, 11), 20, 20)]


def test_rows_are_sorted_by_request_time_within_a_file(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(*(_event(n, minute=59 - n) for n in range(40))))
    ka.ingest(log, tmp_path / "lake")
    (file,) = (tmp_path / "lake" / "events").rglob("*.parquet")
    assert pl.read_parquet(file)[s.REQUEST_TS].is_sorted()


def test_unwritable_lake_is_one_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1)))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(lake_mod.LakeError, match="cannot write to the lake"):
        ka.ingest(log, blocker / "lake")


def test_parquet_files_are_zstd(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1)))
    ka.ingest(log, tmp_path / "lake")
    (file,) = (tmp_path / "lake" / "events").rglob("*.parquet")
    query = f"SELECT DISTINCT compression FROM parquet_metadata('{file}')"
    meta = duckdb.execute(query).fetchall()
    assert meta == [("ZSTD",)]


def test_cluster_names_that_are_not_folder_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(loader.IngestError, match="cluster name"):
        ka.ingest(tmp_path, tmp_path / "lake", cluster="../etc")


def test_copying_a_lake_keeps_it_readable(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1)))
    ka.ingest(log, tmp_path / "lake")
    shutil.copytree(tmp_path / "lake", tmp_path / "copy")
    assert ka.scan(tmp_path / "copy").collect().height == 1
    # The bookkeeping is in the table's log: the copy knows what it holds.
    again = ka.ingest(log, tmp_path / "copy")
    assert (again.files_unchanged, again.events_written) == (1, 0)


def _event_list(*events: bytes) -> bytes:
    items = b",".join(events)
    return (
        b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
        + items
        + b"]}"
    )


@pytest.mark.slow
def test_webhook_event_lists_one_per_line_mixed_with_events(tmp_path: Path) -> None:
    log = tmp_path / "webhook.log"
    log.write_bytes(_lines(_event_list(_event(1), _event(2)), _event(3), _event_list(_event(4))))
    stats = ka.ingest(log, tmp_path / "lake")
    assert (stats.events_written, stats.quarantined) == (4, 0)
    rows = ka.scan(tmp_path / "lake").sort(s.AUDIT_ID).collect()
    assert rows[s.SOURCE_LINE].to_list() == [1, 1, 2, 3]
    assert rows[s.SOURCE_FORMAT].to_list() == ["eventlist", "eventlist", "native", "eventlist"]
    assert rows[s.EVENT_BYTES].to_list() == [len(_event(n)) for n in (1, 2, 3, 4)]


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "written", "quarantined"), [("native", 1, 1), ("eventlist", 2, 1)])
def test_forced_format_reads_only_that_format(
    tmp_path: Path, fmt: str, written: int, quarantined: int
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1), _event_list(_event(2), _event(3))))
    stats = ka.ingest(log, tmp_path / "lake", format=fmt)
    assert (stats.events_written, stats.quarantined) == (written, quarantined)


@pytest.mark.slow
@given(batches=st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=12))
def test_key_index_agrees_with_a_set(batches: list[list[int]]) -> None:
    """The dedupe index, fed batch by batch, answers exactly as a set of the keys seen."""
    index, seen = KeyIndex(), set()
    for batch in batches:
        keys = np.array(batch, dtype=np.uint64)
        # h2 derived from h1 keeps the pair a function of the key, like two hashes of it.
        h1, h2 = keys * np.uint64(7919), keys ^ np.uint64(0x5BD1E995)
        assert index.contains(h1, h2).tolist() == [k in seen for k in batch]
        fresh = ~index.contains(h1, h2)
        unique = np.zeros(len(batch), dtype=bool)
        unique[np.unique(keys, return_index=True)[1]] = True
        index.add(h1[fresh & unique], h2[fresh & unique])
        seen.update(batch)


@pytest.mark.slow
def test_repeated_values_are_dictionary_encoded_nested_ones_too(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ka.ingest(SAMPLE_DIR, lake)
    file = next((lake / "events").rglob("*.parquet"))
    query = (
        "SELECT path_in_schema, bool_or(encodings LIKE '%DICTIONARY%') "
        f"FROM parquet_metadata('{file}') GROUP BY ALL"
    )
    dictionary = dict(duckdb.execute(query).fetchall())
    # Group names, source IPs and annotation values repeat across events: a list's items are
    # a leaf column of their own, which the writer must be told about by its path.
    for path in ("user", "groups, list, element", "annotations, list, element, value"):
        assert dictionary[path], path
    assert not dictionary[s.AUDIT_ID]  # unique per event: no dictionary attempt


# --- a newcomer's first runs -------------------------------------------------------------------


@pytest.mark.slow
def test_ingesting_the_folder_that_holds_the_lake_never_reads_the_lake(tmp_path: Path) -> None:
    """`kaudit ingest .` where the lake is `./lake`: run after run, nothing of it is read."""
    (tmp_path / "audit.log").write_bytes(_lines(*(_event(n) for n in range(5))))
    first = ka.ingest(tmp_path, tmp_path / "lake")
    second = ka.ingest(tmp_path, tmp_path / "lake")
    other = ka.ingest(tmp_path, tmp_path / "other-lake")  # another lake in the folder too
    assert (first.events_written, first.quarantined, first.files) == (5, 0, 1)
    assert (second.events_written, second.quarantined, second.files) == (0, 0, 1)
    assert (other.quarantined, other.files) == (0, 1)
    assert lake_mod.scan_quarantine(tmp_path / "lake").collect().is_empty()


def test_files_that_are_not_logs_are_skipped_and_counted(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "audit.log").write_bytes(_lines(_event(1)))
    (logs / "README.md").write_text("# our audit logs\n")
    (logs / "users.tsv").write_text("name\tteam\nalice\tops\n")
    (logs / "policy.yaml").write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
    )
    for _ in range(2):  # every run: skipped and counted, never quarantined
        stats = ka.ingest(logs, tmp_path / "lake")
        assert (stats.quarantined, stats.files_skipped) == (0, 3)
    kinds = {what: count for what, count, _ in stats.files_skipped_by_kind}
    assert kinds == {"documentation": 1, "a table": 1, "a Kubernetes Policy manifest": 1}
    assert "3 file(s) are not logs and were skipped" in stats.summary()
    assert lake_mod.scan_quarantine(tmp_path / "lake").collect().is_empty()


def test_a_folder_holding_other_files_is_not_made_a_lake(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(_lines(_event(1)))
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine\n")
    with pytest.raises(lake_mod.LakeError, match="is not a lake and not empty"):
        ka.ingest(log, home)
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    assert ka.ingest(log, tmp_path / "empty").events_written == 1


@pytest.mark.slow
def test_small_files_are_parsed_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One parse per batch of lines, not per file: a file's own overhead is a few ms."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for f in range(40):
        (logs / f"audit-{f:02d}.log").write_bytes(
            _lines(*(_event(f * 100 + n, minute=f) for n in range(20)))
        )
    calls: list[int] = []
    parse = Parser.parse

    def counting(self: Any, table: Any, source: str | None = None) -> Any:
        calls.append(table.num_rows)
        return parse(self, table, source)

    monkeypatch.setattr(Parser, "parse", counting)
    stats = ka.ingest(logs, tmp_path / "lake")
    assert (stats.files, stats.events_written) == (40, 800)
    assert calls == [800]
    lines = ka.scan(tmp_path / "lake").group_by(s.SOURCE_FILE).agg(pl.col(s.SOURCE_LINE).max())
    assert lines.collect()[s.SOURCE_LINE].to_list() == [20] * 40
