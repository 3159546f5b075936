"""Cloud and pipeline formats: real samples from other projects, then generated records.

Each real sample is read twice: by the loader, and by a small reference reader below that
applies the mapping of ``docs/formats.md`` record by record in plain Python. The two must agree
on every event's values, and on what was quarantined and skipped.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kaudit_analytics as ka
from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import formats as _formats
from kaudit_analytics.ingestion import loader

# --- the reference reader ------------------------------------------------------------------------


class Row(NamedTuple):
    """The values compared for every event: where it came from and what it says."""

    line: int
    fmt: str
    audit_id: str | None  # None: derived from the content (checked apart)
    verb: str
    user: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    code: int | None
    request_ts: dt.datetime


GRPC_TO_HTTP = {0: 200, 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 10: 409, 13: 500, 14: 503, 16: 401}


def _ts(value: str) -> dt.datetime:
    text = value.replace(" ", "T")
    if not text.endswith("Z") and "+" not in text[10:]:
        text += "Z"
    head, _, frac = text.removesuffix("Z").partition(".")
    text = head + ("." + frac[:6] if frac else "") + "+00:00"
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


class Expected(NamedTuple):
    rows: list[Row]
    quarantined: int
    skipped: int


def _native(e: dict[str, Any], line: int, fmt: str, fallback: str | None) -> Row | None:
    ts = e.get("requestReceivedTimestamp") or e.get("timestamp") or e.get("stageTimestamp")
    ts = ts or fallback
    if not e.get("verb") or not ts:
        return None
    ref = e.get("objectRef") or {}
    return Row(
        line,
        fmt,
        e.get("auditID"),
        e["verb"],
        (e.get("user") or {}).get("username"),
        ref.get("resource"),
        ref.get("namespace"),
        ref.get("name"),
        (e.get("responseStatus") or {}).get("code"),
        _ts(ts),
    )


def _gke(r: dict[str, Any], line: int) -> Row | None:
    pp = r["protoPayload"]
    ts = r.get("timestamp") or pp.get("timestamp") or r.get("p_event_time")
    ts = ts or r.get("receiveTimestamp")
    if not ts:
        return None
    method = pp["methodName"].split(".")
    parts = (pp.get("resourceName") or "").strip("/").split("/")
    named = len(method) >= 5 and len(parts) >= 3 and parts[1][:1] == "v"
    rest = parts[2:] if named else []
    ns = rest[1] if rest[:1] == ["namespaces"] and len(rest) > 1 else None
    obj = rest[2:] if rest[:1] == ["namespaces"] and len(rest) > 2 else rest
    resource = obj[0] if obj else (method[4] if len(method) >= 5 else None)
    status = pp.get("status") or r.get("status") or {}
    return Row(
        line,
        "gke",
        (r.get("operation") or {}).get("id") or r.get("insertId"),
        method[-1],
        (pp.get("authenticationInfo") or {}).get("principalEmail"),
        resource,
        ns,
        obj[1] if len(obj) > 1 else None,
        GRPC_TO_HTTP[status.get("code") or 0],
        _ts(ts),
    )


def _admission(r: dict[str, Any], line: int) -> Row | None:
    req = r["request"]
    times = [
        m["time"]
        for o in (req.get("object"), req.get("oldObject"))
        for m in ((o or {}).get("metadata") or {}).get("managedFields") or []
    ]
    ts = r.get("requestReceivedTimestamp") or max(times, default=None)
    if not ts:
        return None
    verb = {"CONNECT": "create"}.get(req["operation"], req["operation"].lower())
    return Row(
        line,
        "kube-audit-rest",
        req["uid"],
        verb,
        req["userInfo"]["username"],
        req["resource"]["resource"],
        req.get("namespace"),
        req.get("name"),
        None,
        _ts(ts),
    )


def _record(r: Any, line: int, out: Expected, hint: str | None = None) -> bool:
    """Map one record into ``out``; False when it cannot become an event (quarantine)."""
    if not isinstance(r, dict):
        return False
    category = str(r.get("category") or r.get("Category") or "").lower()
    if category.startswith("kube-audit"):
        log = r["properties"]["log"]
        inner = json.loads(log) if isinstance(log, str) else log
        fallback = r.get("time") or r.get("p_event_time")
        row = _native(inner, line, "aks", fallback)
    elif category:
        return True  # records of other categories are skipped
    elif "protoPayload" in r:
        pp = r["protoPayload"]
        if pp.get("serviceName", r.get("serviceName")) != "k8s.io" and not str(
            pp.get("methodName")
        ).startswith("io.k8s."):
            return True
        row = _gke(r, line)
    elif r.get("kind") == "AdmissionReview":
        row = _admission(r, line)
    else:
        fmt = hint or "native"
        fallback = r.get("p_event_time") if "p_log_type" in r else None
        row = _native(r, line, fmt, fallback)
    if row is not None:
        out.rows.append(row)
    return row is not None


def _is_skip(r: dict[str, Any]) -> bool:
    category = str(r.get("category") or "").lower()
    if category:
        return not category.startswith("kube-audit")
    pp = r.get("protoPayload")
    return isinstance(pp, dict) and not (
        pp.get("serviceName", r.get("serviceName")) == "k8s.io"
        or str(pp.get("methodName")).startswith("io.k8s.")
    )


def _values(path: Path) -> list[tuple[int, Any]]:
    text = path.read_bytes().decode("utf-8-sig")
    if path.suffix in (".yaml", ".yml"):
        return [(1, json.loads(json.dumps(yaml.safe_load(text), default=str)))]
    try:
        return [(1, json.loads(text))]
    except json.JSONDecodeError:
        return [(n, json.loads(t)) for n, t in enumerate(text.splitlines(), 1) if t.strip()]


def expected(path: Path) -> Expected:
    """What the loader should make of a sample file, by the documented mapping."""
    out = Expected([], 0, 0)
    skipped = quarantined = 0
    for line, value in _values(path):
        batch = value.get("records") or value.get("items") if isinstance(value, dict) else None
        hint = "eventlist" if isinstance(value, dict) and "items" in value else None
        for record in batch if isinstance(batch, list) else [value]:
            if isinstance(record, dict) and _is_skip(record):
                skipped += 1
            elif not _record(record, line, out, hint):
                quarantined += 1
    return Expected(out.rows, quarantined, skipped)


# --- real samples --------------------------------------------------------------------------------

# (sample, events, quarantined, skipped): the counts, readable at a glance; the reference
# reader derives the same numbers and every value.
SAMPLES = [
    ("sysdig-aks-audit-log/event.json", 22, 0, 0),
    ("sysdig-aks-audit-log/sample_EventHubs_event.json", 1, 0, 0),
    ("sysdig-aks-audit-log/sample_KubeAuditLog_event.json", 1, 0, 0),
    ("elastic-integrations/kubernetes-audit_logs-test-kube-audit.log", 1, 0, 0),
    ("elastic-integrations/kubernetes-audit_logs-test-audit.log", 5, 0, 0),
    ("elastic-integrations/azure-platformlogs-test-platformlogs-kube.log", 0, 1, 0),
    ("elastic-integrations/gcp-audit-test-k8s-nonmatching-resourcename.log", 1, 0, 0),
    ("panther-analysis/aks_azure_monitoractivity.jsonl", 2, 32, 0),
    ("panther-analysis/eks_audit.jsonl", 15, 173, 0),
    ("panther-analysis/gke_gcp_auditlog.jsonl", 16, 35, 0),
    ("panther-analysis/negatives_non_k8s_audit.jsonl", 0, 0, 12),
    ("khi/k8s_audit/container_recorder_test_1_1.yaml", 1, 0, 0),
    ("khi/k8s_audit/container_recorder_test_1_2.yaml", 1, 0, 0),
    ("khi/k8s_audit/container_recorder_test_1_3.yaml", 1, 0, 0),
    ("khi/oss/test-log.yaml", 1, 0, 0),
    ("khi/gke_audit/cluster_creation_finished.yaml", 0, 0, 1),
    ("khi/gke_audit/cluster_creation_started.yaml", 0, 0, 1),
    ("khi/gke_audit/cluster_creation_started_with_error.yaml", 0, 0, 1),
    ("khi/gke_audit/cluster_deletion_finished.yaml", 0, 0, 1),
    ("khi/gke_audit/cluster_deletion_started.yaml", 0, 0, 1),
    ("khi/gke_audit/nodepool_creation_finished.yaml", 0, 0, 1),
    ("khi/gke_audit/nodepool_creation_started.yaml", 0, 0, 1),
    ("khi/gke_audit/nodepool_deletion_finished.yaml", 0, 0, 1),
    ("khi/gke_audit/nodepool_deletion_started.yaml", 0, 0, 1),
    ("kube-audit-rest/kube-audit-rest.log", 59, 0, 0),
]


def _row(frame_row: dict[str, Any]) -> Row:
    audit_id = frame_row[s.AUDIT_ID] if "audit_id" not in frame_row[s.LOSSY_FIELDS] else None
    if frame_row[s.SOURCE_FORMAT] == "kube-audit-rest":
        audit_id = frame_row[s.AUDIT_ID]  # the admission uid, named lossy: not an audit ID
    return Row(
        frame_row[s.SOURCE_LINE],
        frame_row[s.SOURCE_FORMAT],
        audit_id,
        frame_row[s.VERB],
        frame_row[s.USER],
        frame_row[s.RESOURCE],
        frame_row[s.NAMESPACE],
        frame_row[s.NAME],
        frame_row[s.CODE],
        frame_row[s.REQUEST_TS],
    )


def _loaded_rows(stats: ka.IngestStats, lake: Path) -> list[Row]:
    """Every event read, duplicates included (they are read but stored once)."""
    rows = ka.scan(lake).collect().to_dicts() if stats.events_written else []
    return sorted((_row(r) for r in rows), key=repr)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "events", "quarantined", "skipped"), SAMPLES)
def test_real_sample_matches_the_documented_mapping(
    shared_samples: Path, tmp_path: Path, name: str, events: int, quarantined: int, skipped: int
) -> None:
    path = shared_samples / name
    ref = expected(path)
    assert (len(ref.rows), ref.quarantined, ref.skipped) == (events, quarantined, skipped)

    stats = ka.ingest(path, tmp_path)

    assert (stats.events_read, stats.quarantined, stats.skipped) == (events, quarantined, skipped)
    stored = _loaded_rows(stats, tmp_path)
    unique = {(r.line, r.audit_id, r.request_ts) for r in ref.rows}
    assert len(stored) == stats.events_written
    # Samples reuse audit IDs (Elastic writes abcde12345 everywhere): the lake keeps one row
    # per (audit_id, stage); every stored row is one the reference expects.
    assert set(stored) <= set(ref.rows)
    if stats.duplicates == 0:
        assert stored == sorted(ref.rows, key=repr)
        assert len(unique) == len(ref.rows)


@pytest.mark.slow
def test_all_cloud_samples_at_once_skip_and_quarantine_apart(
    shared_samples: Path, tmp_path: Path
) -> None:
    stats = ka.ingest(shared_samples, tmp_path)
    assert stats.skipped_by_kind == (
        ("azure:administrative", 6),
        ("gcp:compute.googleapis.com", 1),
        ("gcp:container.googleapis.com", 9),
        ("gcp:deploymentmanager.googleapis.com", 5),
    )
    assert "21 record(s) were not Kubernetes audit data and skipped" in stats.summary()
    quarantine = pl.read_parquet(tmp_path / "quarantine" / "*.parquet")
    assert quarantine.height == stats.quarantined
    formats = dict(ka.scan(tmp_path).group_by(s.SOURCE_FORMAT).len().collect().iter_rows())
    assert {"aks", "gke", "kube-audit-rest", "native", "eventlist"} <= set(formats)


@pytest.mark.slow
def test_gke_entry_field_by_field(shared_samples: Path, tmp_path: Path) -> None:
    ka.ingest(shared_samples / "khi" / "k8s_audit" / "container_recorder_test_1_2.yaml", tmp_path)
    row = ka.scan(tmp_path).collect().row(0, named=True)
    name = "nginx-deployment-surge-8655b4b8c5-xf5f4"
    assert row[s.AUDIT_ID] == "c7842d26-11fe-446a-b985-b2b67ddbab09"
    assert (row[s.STAGE], row[s.LEVEL], row[s.VERB]) == ("ResponseComplete", "Request", "patch")
    assert (row[s.API_GROUP], row[s.API_VERSION], row[s.RESOURCE]) == ("", "v1", "pods")
    assert (row[s.SUBRESOURCE], row[s.NAMESPACE], row[s.NAME]) == (
        "status",
        "1-2-deployment-update",
        name,
    )
    assert row[s.REQUEST_URI] == f"/api/v1/namespaces/1-2-deployment-update/pods/{name}/status"
    assert row[s.USER] == "system:node:gke-sample-cluster-default-abcdefgh-abcd"
    assert row[s.GROUPS] is None
    assert row[s.SOURCE_IPS] == ["10.146.0.7"]
    assert row[s.USER_AGENT] == "kubelet/v1.28.14 (linux/amd64) kubernetes/a4ef1a6"
    assert row[s.AUTHZ_DECISION] == "allow"
    assert {"key": "kaudit.io/cluster", "value": "sample-cluster"} in row[s.ANNOTATIONS]
    assert json.loads(row[s.REQUEST_OBJECT])["@type"] == "k8s.io/Patch"
    assert row[s.STAGE_TS] is None
    assert row[s.LOSSY_FIELDS] == ["code", "groups", "level", "request_uri", "stage", "stage_ts"]


@pytest.mark.slow
def test_aks_string_log_keeps_the_event_byte_for_byte(shared_samples: Path, tmp_path: Path) -> None:
    path = shared_samples / "elastic-integrations" / "kubernetes-audit_logs-test-kube-audit.log"
    ka.ingest(path, tmp_path)
    row = ka.scan(tmp_path).collect().row(0, named=True)
    logged = json.loads(path.read_text())["properties"]["log"]
    assert row[s.EVENT_BYTES] == len(logged.encode())
    assert (row[s.USER], row[s.RESOURCE], row[s.LOSSY_FIELDS]) == ("aksService", "leases", [])


@pytest.mark.slow
def test_kube_audit_rest_names_what_an_admission_review_lacks(
    shared_samples: Path, tmp_path: Path
) -> None:
    ka.ingest(shared_samples / "kube-audit-rest" / "kube-audit-rest.log", tmp_path)
    rows = ka.scan(tmp_path).sort(s.SOURCE_LINE).collect()
    first = rows.row(0, named=True)
    assert (first[s.API_GROUP], first[s.RESOURCE], first[s.VERB]) == (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "create",
    )
    assert first[s.GROUPS] == ["system:masters", "system:authenticated"]
    assert json.loads(first[s.REQUEST_OBJECT])["kind"] == "SelfSubjectAccessReview"
    assert {"stage", "code", "response_object", "reads", "request_ts"} <= set(first[s.LOSSY_FIELDS])
    updates = rows.filter(pl.col(s.VERB) == "update")
    assert updates.height == 2
    assert all("verb" in lossy for lossy in updates[s.LOSSY_FIELDS])


# --- generated records ---------------------------------------------------------------------------


def _event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"00000000-0000-0000-0000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/default/pods/p{n}",
        "verb": "get",
        "user": {
            "username": "kubernetes-admin",
            "uid": "aws-iam-authenticator:123412341234:AROAEXAMPLE",
            "groups": ["system:masters", "system:authenticated"],
            "extra": {
                "arn": ["arn:aws:sts::123412341234:assumed-role/Admin/alice"],
                "sessionName": ["alice"],
                "accessKeyId": ["ASIAEXAMPLE"],
            },
        },
        "sourceIPs": ["10.0.0.1"],
        "objectRef": {
            "resource": "pods",
            "namespace": "default",
            "name": f"p{n}",
            "apiVersion": "v1",
        },
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": f"2024-09-11T10:{n % 60:02d}:00.000001Z",
        "stageTimestamp": f"2024-09-11T10:{n % 60:02d}:00.000201Z",
        **extra,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _delivery(
    events: list[dict[str, Any]], stream: str = "kube-apiserver-audit-0a1b2c3d4e5f6a7b8c9d"
) -> str:
    message = {
        "messageType": "DATA_MESSAGE",
        "owner": "123412341234",
        "logGroup": "/aws/eks/prod-eks/cluster",
        "logStream": stream,
        "subscriptionFilters": ["audit"],
        "logEvents": [
            {"id": str(i), "timestamp": 1726048800000 + i, "message": _dumps(e)}
            for i, e in enumerate(events)
        ],
    }
    return base64.b64encode(gzip.compress(_dumps(message).encode())).decode()


def _load(
    tmp_path: Path, content: str | bytes, name: str = "export.log", **kw: Any
) -> tuple[ka.IngestStats, pl.DataFrame]:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    stats = ka.ingest(path, tmp_path / "lake", **kw)
    frame = ka.scan(tmp_path / "lake").sort(s.SOURCE_LINE, s.AUDIT_ID).collect()
    return stats, frame


@pytest.mark.slow
def test_cloudwatch_export_task_text_lines(tmp_path: Path) -> None:
    lines = [f"2024-09-11T10:0{n}:00.123Z {_dumps(_event(n))}" for n in range(3)]
    lines.insert(1, "2024-09-11T10:00:30.000Z I0911 10:00:30.000000  10 controller.go:42] synced")
    stats, rows = _load(tmp_path, "\n".join(lines) + "\n")
    assert (stats.events_written, stats.quarantined, stats.skipped) == (3, 0, 1)
    assert rows[s.SOURCE_FORMAT].unique().to_list() == ["eks"]
    assert rows[s.SOURCE_LINE].to_list() == [1, 3, 4]
    # The event is the message, byte for byte; the export's own timestamp is not used.
    assert rows[s.EVENT_BYTES].to_list() == [len(_dumps(_event(n))) for n in range(3)]
    extra = {e["key"]: e["values"] for e in rows.row(0, named=True)[s.USER_EXTRA]}
    assert extra["sessionName"] == ["alice"]
    assert extra["arn"] == ["arn:aws:sts::123412341234:assumed-role/Admin/alice"]


@pytest.mark.slow
def test_subscription_deliveries_base64_gzip(tmp_path: Path) -> None:
    content = "\n".join(
        [
            _delivery([_event(1), _event(2)]),
            _delivery([_event(4), {"kind": "x"}]),
            _dumps({"records": [{"recordId": "1", "data": _delivery([_event(3)])}]}),
        ]
    )
    stats, rows = _load(tmp_path, content + "\n", name="firehose.log")
    # A log event that is not an audit event is quarantined alone; its neighbours load.
    assert (stats.events_written, stats.quarantined) == (4, 1)
    assert rows[s.SOURCE_LINE].to_list() == [1, 1, 2, 3]
    record = pl.read_parquet(tmp_path / "lake" / "quarantine" / "*.parquet").row(0, named=True)
    assert (record["line"], record["raw"]) == (2, b'{"kind":"x"}')
    assert rows[s.SOURCE_FORMAT].unique().to_list() == ["eks"]


@pytest.mark.slow
def test_subscription_control_messages_and_other_streams_are_skipped(tmp_path: Path) -> None:
    control = {
        "messageType": "CONTROL_MESSAGE",
        "logGroup": "",
        "logStream": "",
        "logEvents": [{"id": "", "timestamp": 1726048800000, "message": "CWL CONTROL MESSAGE"}],
    }
    klog = _delivery([], stream="kube-controller-manager-0a1b2c3d4e5f6a7b8c9d")
    decoded = json.loads(gzip.decompress(base64.b64decode(klog)))
    decoded["logEvents"] = [{"id": "1", "timestamp": 1, "message": "I0911 10:00:00 synced"}]
    content = (
        _dumps(control) + "\n" + base64.b64encode(gzip.compress(_dumps(decoded).encode())).decode()
    )
    stats, _ = _load(tmp_path, content + "\n")
    assert (stats.events_read, stats.quarantined) == (0, 0)
    assert stats.skipped_by_kind == (
        ("cloudwatch:kube-controller-manager", 1),
        ("cloudwatch:text", 1),
    )


@pytest.mark.slow
def test_filter_log_events_document_and_insights_rows(tmp_path: Path) -> None:
    doc = {
        "events": [
            {
                "logStreamName": "kube-apiserver-audit-1",
                "timestamp": 1,
                "message": _dumps(_event(1)),
                "ingestionTime": 2,
                "eventId": "a",
            },
            {
                "logStreamName": "kube-apiserver-audit-1",
                "timestamp": 1,
                "message": _dumps(_event(2)),
                "ingestionTime": 2,
                "eventId": "b",
            },
        ],
        "searchedLogStreams": [],
    }
    stats, rows = _load(tmp_path, json.dumps(doc, indent=2), name="events.json")
    assert stats.events_written == 2
    insights = _dumps({"@timestamp": "2024-09-11 10:03:00.000", "@message": _dumps(_event(3))})
    stats, rows = _load(tmp_path, insights + "\n", name="insights.jsonl")
    assert stats.events_written == 1
    assert rows[s.SOURCE_FORMAT].to_list() == ["eks", "eks", "eks"]


@pytest.mark.slow
def test_firehose_concatenated_json_objects(tmp_path: Path) -> None:
    raw = json.loads(gzip.decompress(base64.b64decode(_delivery([_event(1)]))))
    two = _dumps(raw) + _dumps(
        {**raw, "logEvents": [{**raw["logEvents"][0], "message": _dumps(_event(2))}]}
    )
    stats, _ = _load(tmp_path, gzip.compress(two.encode()), name="delivery-1.gz")
    assert (stats.events_written, stats.quarantined) == (2, 0)


AKS_ROW = {
    "TenantId": "t",
    "TimeGenerated": "2024-09-11T10:00:01.5Z",
    "Level": "RequestResponse",
    "AuditId": "aaaaaaaa-0000-0000-0000-000000000001",
    "Stage": "ResponseComplete",
    "RequestUri": "/api/v1/namespaces/default/configmaps/big",
    "Verb": "update",
    "User": {"username": "alice", "groups": ["system:authenticated"]},
    "SourceIps": ["10.0.0.7"],
    "UserAgent": "kubectl/v1.30.0",
    "ObjectRef": {
        "resource": "configmaps",
        "namespace": "default",
        "name": "big",
        "apiVersion": "v1",
    },
    "ResponseStatus": {"metadata": {}, "code": 200},
    "RequestObject": "skipped-too-big-size-object",
    "ResponseObject": {"kind": "ConfigMap"},
    "RequestReceivedTime": "2024-09-11T10:00:00.000001Z",
    "StageReceivedTime": "2024-09-11T10:00:00.000301Z",
    "Annotations": {"authorization.k8s.io/decision": "allow"},
    "PodName": "kube-apiserver-1",
    "Type": "AKSAuditAdmin",
    "_ResourceId": "/subscriptions/x/resourcegroups/rg/providers/microsoft.containerservice/"
    "managedclusters/prod",
}


@pytest.mark.slow
@pytest.mark.parametrize("as_strings", [False, True], ids=["json-export", "dynamic-as-strings"])
def test_log_analytics_aks_audit_rows(tmp_path: Path, as_strings: bool) -> None:
    row = dict(AKS_ROW)
    if as_strings:  # a CSV-to-JSON or API export writes dynamic columns as JSON text
        row = {k: _dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}
    second = {
        **row,
        "AuditId": "aaaaaaaa-0000-0000-0000-000000000002",
        "RequestObject": row["ResponseObject"],
    }
    stats, rows = _load(tmp_path, _dumps([row, second]), name="AKSAuditAdmin.json")
    assert (stats.events_written, stats.quarantined) == (2, 0)
    first = rows.filter(pl.col(s.AUDIT_ID).str.ends_with("1")).row(0, named=True)
    assert (first[s.USER], first[s.VERB], first[s.RESOURCE], first[s.CODE]) == (
        "alice",
        "update",
        "configmaps",
        200,
    )
    assert first[s.REQUEST_OBJECT] is None
    assert first[s.LOSSY_FIELDS] == ["request_object"]
    assert first[s.SOURCE_FORMAT] == "aks"
    other = rows.filter(pl.col(s.AUDIT_ID).str.ends_with("2")).row(0, named=True)
    assert other[s.LOSSY_FIELDS] == []
    assert json.loads(other[s.REQUEST_OBJECT]) == {"kind": "ConfigMap"}


@pytest.mark.slow
def test_aks_other_categories_and_too_big_records_are_skipped(tmp_path: Path) -> None:
    def record(category: str, log: Any) -> dict[str, Any]:
        return {
            "category": category,
            "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
            "resourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/"
            "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD",
            "properties": {"log": log, "stream": "stderr", "pod": "kube-apiserver-1"},
            "time": "2024-09-11T10:00:00.0000000Z",
        }

    batch = {
        "records": [
            record("kube-audit", _dumps(_event(1)) + "\n"),
            record("kube-apiserver", "I0911 10:00:00.000000 1 server.go:1] started\n"),
            record("guard", "W0911 10:00:00.000000 1 guard.go:1] denied\n"),
            record("kube-audit-admin", "skipped-too-big-size-object"),
            record("kube-audit-admin", _dumps(_event(2)) + "\n"),
            record("kube-audit", '{"kind":'),  # a damaged record: quarantined alone
            {"category": "kube-audit", "operationName": "x", "properties": {}},  # no event
        ]
    }
    stats, rows = _load(tmp_path, _dumps(batch) + "\n", name="PT1H.json")
    assert (stats.events_written, stats.quarantined, stats.skipped) == (2, 2, 3)
    assert stats.skipped_by_kind == (
        ("aks:guard", 1),
        ("aks:kube-apiserver", 1),
        ("aks:skipped-too-big-size-object", 1),
    )
    assert rows[s.SOURCE_FORMAT].to_list() == ["aks", "aks"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("grpc", "http"),
    [
        (None, 200),
        (0, 200),
        (3, 400),
        (5, 404),
        (6, 409),
        (7, 403),
        (10, 409),
        (16, 401),
        (14, 503),
    ],
)
def test_gke_grpc_status_to_http(tmp_path: Path, grpc: int | None, http: int) -> None:
    status = {} if grpc is None else {"code": grpc, "message": "denied"}
    entry = {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "methodName": "io.k8s.apps.v1.deployments.delete",
            "resourceName": "apps/v1/namespaces/web/deployments/front",
            "serviceName": "k8s.io",
            "status": status,
        },
        "insertId": "abc",
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "prod"}},
        "timestamp": "2024-09-11T10:00:00.5Z",
    }
    _, rows = _load(tmp_path, _dumps(entry) + "\n")
    row = rows.row(0, named=True)
    assert row[s.CODE] == http
    assert (row[s.API_GROUP], row[s.RESOURCE], row[s.NAMESPACE], row[s.NAME]) == (
        "apps",
        "deployments",
        "web",
        "front",
    )
    assert row[s.REQUEST_URI] == "/apis/apps/v1/namespaces/web/deployments/front"
    annotations = {a["key"]: a["value"] for a in row[s.ANNOTATIONS]}
    assert annotations.get("kaudit.io/grpc-code") == (None if grpc is None else str(grpc))
    assert row[s.MESSAGE] == (None if grpc is None else "denied")


@pytest.mark.slow
def test_gke_exec_command_goes_into_the_request_uri(tmp_path: Path) -> None:
    entry = {
        "protoPayload": {
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "methodName": "io.k8s.core.v1.pods.exec.create",
            "resourceName": "core/v1/namespaces/default/pods/web-0/exec",
            "serviceName": "k8s.io",
            "request": {
                "@type": "core.k8s.io/v1.PodExecOptions",
                "command": ["sh", "-c", "id && ls"],
                "container": "app",
            },
        },
        "timestamp": "2024-09-11T10:00:00Z",
        "operation": {"id": "op-1", "producer": "k8s.io"},
    }
    _, rows = _load(tmp_path, _dumps(entry) + "\n")
    row = rows.row(0, named=True)
    assert row[s.REQUEST_URI] == (
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=id%20%26%26%20ls&container=app"
    )
    assert (row[s.SUBRESOURCE], row[s.VERB], row[s.AUDIT_ID]) == ("exec", "create", "op-1")


@pytest.mark.slow
def test_partial_events_get_a_deterministic_id_and_say_so(tmp_path: Path) -> None:
    partial = _event(1)
    del partial["auditID"], partial["stage"], partial["requestReceivedTimestamp"]
    no_time = _event(2)
    del no_time["requestReceivedTimestamp"], no_time["stageTimestamp"]
    text = _dumps(partial)
    stats, rows = _load(tmp_path, text + "\n" + _dumps(no_time) + "\n")
    assert (stats.events_written, stats.quarantined) == (1, 1)
    row = rows.row(0, named=True)
    digest = hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - an id, not a secret
    assert (
        row[s.AUDIT_ID]
        == f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
    )
    assert row[s.STAGE] == "ResponseComplete"
    assert row[s.REQUEST_TS] == dt.datetime(2024, 9, 11, 10, 1, 0, 201, tzinfo=dt.UTC)
    assert row[s.LOSSY_FIELDS] == ["audit_id", "request_ts", "stage"]
    # The same line loaded again (another file, another run) is the same event.
    again = ka.ingest(tmp_path / "export.log", tmp_path / "lake2")
    assert ka.scan(tmp_path / "lake2").collect()[s.AUDIT_ID].to_list() == [row[s.AUDIT_ID]]
    assert again.events_written == 1


@pytest.mark.slow
def test_panther_records_space_separated_times_and_p_keys(tmp_path: Path) -> None:
    record = _event(1, p_log_type="Amazon.EKS.Audit", p_event_time="2022-11-29 00:09:04.38")
    record["requestReceivedTimestamp"] = "2022-11-29 00:09:04.38"
    del record["auditID"]
    _, rows = _load(tmp_path, _dumps(record) + "\n")
    row = rows.row(0, named=True)
    assert row[s.REQUEST_TS] == dt.datetime(2022, 11, 29, 0, 9, 4, 380000, tzinfo=dt.UTC)
    assert (row[s.SOURCE_FORMAT], row[s.LOSSY_FIELDS]) == ("native", ["audit_id"])


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "written"), [("gke", 1), ("aks", 1), ("native", 1), ("eks", 0)])
def test_forced_format_reads_only_that_format(tmp_path: Path, fmt: str, written: int) -> None:
    gke = {
        "protoPayload": {
            "methodName": "io.k8s.core.v1.pods.get",
            "resourceName": "core/v1/namespaces/a/pods/b",
            "serviceName": "k8s.io",
        },
        "timestamp": "2024-09-11T10:00:00Z",
        "insertId": "g1",
    }
    aks = {"category": "kube-audit", "properties": {"log": _dumps(_event(2))}}
    stats, _ = _load(
        tmp_path, "\n".join(_dumps(v) for v in (gke, aks, _event(3))) + "\n", format=fmt
    )
    assert stats.events_written == written
    assert stats.quarantined == 3 - written


SECRET = {
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {"name": "db"},
    "data": {"pw": "aHVudGVy"},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            {
                "protoPayload": {
                    "methodName": "io.k8s.core.v1.secrets.create",
                    "resourceName": "core/v1/namespaces/default/secrets/db",
                    "serviceName": "k8s.io",
                    "request": {"@type": "core.k8s.io/v1.Secret", **SECRET},
                    "response": {"@type": "core.k8s.io/v1.Secret", **SECRET},
                },
                "timestamp": "2024-09-11T10:00:00Z",
                "insertId": "s1",
            },
            id="gke",
        ),
        pytest.param(
            {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": {
                    "uid": "u1",
                    "resource": {"group": "", "version": "v1", "resource": "secrets"},
                    "namespace": "default",
                    "name": "db",
                    "operation": "CREATE",
                    "userInfo": {"username": "alice"},
                    "object": SECRET,
                },
                "requestReceivedTimestamp": "2024-09-11T10:00:00.000001Z",
            },
            id="kube-audit-rest",
        ),
        pytest.param(
            {
                "category": "kube-audit",
                "properties": {"log": _dumps(_event(1, requestObject=SECRET))},
            },
            id="aks",
        ),
    ],
)
def test_secret_values_are_redacted_in_every_format(tmp_path: Path, record: dict[str, Any]) -> None:
    _, rows = _load(tmp_path, _dumps(record) + "\n")
    row = rows.row(0, named=True)
    bodies = f"{row[s.REQUEST_OBJECT]}{row[s.RESPONSE_OBJECT]}"
    assert "aHVudGVy" not in bodies
    assert s.REDACTED in bodies


def test_formats_are_the_ones_the_loader_accepts() -> None:
    assert loader.FORMATS == _formats.FORMATS
    assert {"aks", "eks", "gke", "kube-audit-rest"} <= set(loader.FORMATS)


@pytest.mark.slow
def test_native_lines_do_not_reach_the_other_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path: a file of native events is parsed once, never normalised."""
    calls: list[int] = []
    real = _formats.decode_deliveries

    def counting(text: Any) -> Any:
        calls.append(len(text))
        return real(text)

    monkeypatch.setattr(_formats, "decode_deliveries", counting)
    stats, _ = _load(tmp_path, "\n".join(_dumps(_event(n)) for n in range(50)) + "\n")
    assert (stats.events_written, calls) == (50, [])
    _load(tmp_path, _dumps({"category": "kube-audit", "properties": {"log": _dumps(_event(99))}}))
    assert calls == [1]


# --- property: partial events, vectorised against the reference ----------------------------------

OPTIONAL = ("auditID", "stage", "requestReceivedTimestamp", "stageTimestamp", "verb", "user")


@pytest.mark.slow
@given(
    drops=st.lists(st.sets(st.sampled_from(OPTIONAL)), min_size=1, max_size=30),
    wrapper=st.sampled_from(["line", "aks", "eventlist"]),
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_partial_events_agree_with_the_reference(
    tmp_path_factory: pytest.TempPathFactory, drops: list[set[str]], wrapper: str
) -> None:
    events = []
    for n, dropped in enumerate(drops):
        event = _event(n)
        for key in dropped:
            del event[key]
        events.append(event)
    if wrapper == "line":
        text = "\n".join(_dumps(e) for e in events)
    elif wrapper == "aks":
        text = "\n".join(
            _dumps({"category": "kube-audit", "properties": {"log": _dumps(e)}}) for e in events
        )
    else:
        text = _dumps({"kind": "EventList", "items": events})
    tmp = tmp_path_factory.mktemp("partial")
    path = tmp / "mixed.log"
    path.write_text(text + "\n")
    ref = expected(path)
    stats = ka.ingest(path, tmp / "lake")
    assert (stats.events_read, stats.quarantined) == (len(ref.rows), ref.quarantined)
    assert _loaded_rows(stats, tmp / "lake") == sorted(ref.rows, key=repr)
