"""Compliance controls: one table of cases per control, assessability, coverage, real samples."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import kaudit_analytics as ka
from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.policy import load_policy
from kaudit_analytics.report import assess
from tests.paths import POLICIES

UTC = dt.UTC
#: Monday 2026-11-23 10:00 UTC: inside the default working hours.
T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WINDOW = c.Window(T0 - dt.timedelta(days=3), T0 + dt.timedelta(days=1))

SA = "system:serviceaccount:default:app"
SA_GROUPS = ["system:serviceaccounts", "system:authenticated"]
NODE = {"user": "system:node:n1", "groups": ["system:nodes", "system:authenticated"]}
ANON = {"user": "system:anonymous", "groups": ["system:unauthenticated"]}
RBAC = "rbac.authorization.k8s.io"
_ids = itertools.count()


def event(**fields: Any) -> dict[str, Any]:
    """One event as a dict; anything not given gets a plausible default."""
    n = next(_ids)
    row: dict[str, Any] = {
        s.CLUSTER: "test",
        s.AUDIT_ID: f"id-{n}",
        s.STAGE: "ResponseComplete",
        s.LEVEL: "Metadata",
        s.VERB: "get",
        s.REQUEST_URI: "/api/v1/namespaces/default/pods/web",
        s.USER: "alice@example.com",
        s.GROUPS: ["system:authenticated"],
        s.SOURCE_IPS: ["10.0.0.1"],
        s.USER_AGENT: "kubectl/v1.31.0",
        s.API_GROUP: "",
        s.API_VERSION: "v1",
        s.RESOURCE: "pods",
        s.NAMESPACE: "default",
        s.NAME: "web",
        s.CODE: 200,
        s.REQUEST_TS: T0,
        s.AUTHZ_DECISION: "allow",
        s.SOURCE_FILE: "test.log",
        s.SOURCE_LINE: n,
    }
    row.update(fields)
    row[s.STAGE_TS] = row[s.REQUEST_TS]
    return row


def frame(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """An events table (``AUDIT_SCHEMA``) from event dicts."""
    if not rows:
        return s.empty_events().lazy()
    given_columns = {name for row in rows for name in row}
    schema = {name: dtype for name, dtype in s.AUDIT_SCHEMA.items() if name in given_columns}
    data = pl.DataFrame(rows, schema=schema, orient="row")
    return s.conform(
        data.lazy().with_columns(
            pl.col(s.REQUEST_TS).dt.date().alias(s.DATE),
            *[pl.lit(None).alias(n) for n in s.AUDIT_SCHEMA if n not in given_columns | {s.DATE}],
        )
    )


def found(rows: list[dict[str, Any]], control_id: str, **ctx: Any) -> pl.DataFrame:
    """The evidence one control finds in ``rows``."""
    context = c.Context(ctx.pop("window", WINDOW), **ctx)
    return c.control_evidence(frame(rows), c.control(control_id), context).collect()


def burst(n: int, **fields: Any) -> list[dict[str, Any]]:
    """``n`` events one second apart (all within one burst bucket)."""
    return [event(request_ts=T0 + dt.timedelta(seconds=i), **fields) for i in range(n)]


def body(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


PRIVILEGED_POD = body(
    {
        "kind": "Pod",
        "spec": {"containers": [{"name": "a", "securityContext": {"privileged": True}}]},
    }
)
PLAIN_POD = body({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx"}]}})
# kubectl's last-applied annotation holds the manifest as escaped JSON: not the live spec.
ESCAPED_ONLY = body(
    {
        "kind": "Pod",
        "metadata": {"annotations": {"last-applied": '{"securityContext":{"privileged":true}}'}},
        "spec": {"containers": [{"name": "a"}]},
    }
)
HOST_NETWORK_DEPLOYMENT = body(
    {"kind": "Deployment", "spec": {"template": {"spec": {"hostNetwork": True}}}}
)
ADMIN_BINDING = body({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": []})
VIEW_BINDING = body({"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": []})
WILDCARD_ROLE = body({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]})
ESCALATE_ROLE = body(
    {"rules": [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]}]}
)
TOKEN_SECRET = body({"kind": "Secret", "type": "kubernetes.io/service-account-token"})

_pod_create = {"verb": "create", "level": "Request", "name": None, "code": 201}
_rbac = {"api_group": RBAC, "level": "RequestResponse", "verb": "create", "code": 201}
_wide = dataclasses.replace(c.Settings(), gap_threshold=dt.timedelta(days=30))


def test_control_ids_are_unique_and_clauses_cover_the_frameworks() -> None:
    ids = [ctrl.id for ctrl in c.CONTROLS]
    assert len(ids) == len(set(ids))
    clauses = {clause for ctrl in c.CONTROLS for clause in ctrl.clauses}
    pci = {clause.ref for clause in clauses if clause.framework == c.PCI}
    assert {f"10.2.1.{i}" for i in range(1, 8)} | {"10.2.2"} <= pci
    assert {clause.framework for clause in clauses} == set(c.FRAMEWORKS)
    assert all(ctrl.probes for ctrl in c.CONTROLS)


def test_every_control_names_techniques_and_what_it_leaves_out() -> None:
    for ctrl in c.CONTROLS:
        assert ctrl.attack, ctrl.id
        assert set(ctrl.attack) <= set(c.TECHNIQUES), ctrl.id
        assert ctrl.tactics, ctrl.id
        assert ctrl.excludes, ctrl.id


def test_failed_attempts_are_findings_of_their_own_kind() -> None:
    ids = {ctrl.id for ctrl in c.CONTROLS}
    for base in ("pod-exec", "impersonation", "secret-read-by-human", "rbac-escalation"):
        assert f"{base}-failed" in ids
    attempts = [ctrl for ctrl in c.CONTROLS if ctrl.id.endswith("-failed")]
    assert all(c.Clause(c.PCI, "10.2.1.4") in ctrl.clauses for ctrl in attempts)


def test_events_outside_the_window_are_ignored() -> None:
    late = event(resource="secrets", request_ts=WINDOW.until)
    early = event(resource="secrets", request_ts=WINDOW.since - dt.timedelta(microseconds=1))
    assert found([late, early], "secret-read-by-human").height == 0


def test_one_finding_per_request_across_stages() -> None:
    stages = [
        event(audit_id="x", subresource="exec", verb="create", stage=stage, code=code)
        for stage, code in [
            ("RequestReceived", None),
            ("ResponseStarted", 101),
            ("ResponseComplete", 101),
        ]
    ]
    rows = found(stages, "pod-exec")
    assert rows.height == 1
    assert rows["source_line"][0] == stages[-1][s.SOURCE_LINE]


def test_evidence_rows_carry_who_what_when_where_outcome_and_source() -> None:
    row = event(
        impersonated_user="bob",
        verb="create",
        subresource="exec",
        code=101,
        request_uri="/api/v1/namespaces/default/pods/web/exec?command=sh",
        source_file="/var/log/audit.log",
        source_line=42,
    )
    got = found([row], "pod-exec").row(0, named=True)
    assert got == {
        "control": "pod-exec",
        "severity": "high",
        "when": T0,
        "who": "alice@example.com as bob",
        "what": "create /api/v1/namespaces/default/pods/web/exec?command=sh",
        "where": "10.0.0.1",
        "outcome": "101 (allow)",
        "detail": "command: sh (shell)",
        "cluster": "test",
        "namespace": "default",
        "user_agent": "kubectl/v1.31.0",
        "audit_id": row[s.AUDIT_ID],
        "source_file": "/var/log/audit.log",
        "source_line": 42,
    }


@pytest.mark.parametrize(
    ("body_json", "detail"),
    [
        (PRIVILEGED_POD, "privileged"),
        (
            body({"spec": {"hostPID": True, "volumes": [{"hostPath": {"path": "/"}}]}}),
            "hostPath, hostPID",
        ),
        (body({"spec": {"hostIPC": True, "hostNetwork": True}}), "hostNetwork, hostIPC"),
        (
            body({"spec": {"securityContext": {"runAsNonRoot": False}}}),
            "runAsNonRoot false",
        ),
    ],
)
def test_privileged_pod_detail_names_what_matched(body_json: str, detail: str) -> None:
    got = found([event(request_object=body_json, **_pod_create)], "privileged-pod")
    assert got["detail"].to_list() == [detail]


def test_bursts_are_counted_per_identity() -> None:
    half = [
        event(resource="secrets", user=f"u{i % 2}", request_ts=T0 + dt.timedelta(seconds=i))
        for i in range(30)
    ]
    assert found(half, "secret-read-burst").height == 0
    rows = found(burst(25, resource="secrets", namespace="a", user=SA), "secret-read-burst")
    assert rows["detail"].to_list() == ["25 Secret reads in 1 namespace(s) within 10 minutes"]


def test_denied_requests_group_by_identity_and_address() -> None:
    rows = [event(code=403, source_ips=[ip]) for ip in ["10.0.0.1", "10.0.0.1", "10.0.0.2"]]
    got = found(rows, "denied-requests")
    assert got.sort("where")["detail"].to_list() == [
        "2 denied request(s) from this identity and address (401: 0, 403: 2)",
        "1 denied request(s) from this identity and address (401: 0, 403: 1)",
    ]


def test_off_hours_respects_timezone_setting() -> None:
    # 10:00 UTC on a Monday is 19:00 in Tokyo: outside 08-18 there.
    tokyo = dataclasses.replace(c.Settings(), timezone="Asia/Tokyo")
    assert found([event()], "off-hours-human").height == 0
    assert found([event()], "off-hours-human", settings=tokyo).height == 1


# --------------------------------------------------------------------------- audit-gap


def _gap_window() -> c.Window:
    return c.Window(T0, T0 + dt.timedelta(hours=6))


@pytest.mark.parametrize(
    ("offsets_minutes", "expected_details"),
    [
        ([0, 30, 60, 90, 150, 210, 270, 330], []),
        ([0, 30, 200, 230, 290, 350], ["no events for 2h50m before this one"]),
        ([90, 120, 180, 240, 300, 359], ["no events for 1h30m before this one"]),
        ([0, 60, 120, 180], ["no events for 3h0m after this one, up to the window's end"]),
    ],
)
def test_audit_gap(offsets_minutes: list[int], expected_details: list[str]) -> None:
    rows = [event(request_ts=T0 + dt.timedelta(minutes=m)) for m in offsets_minutes]
    got = found(rows, "audit-gap", window=_gap_window())
    assert got["detail"].to_list() == expected_details


def test_audit_gap_is_per_cluster() -> None:
    rows = [
        event(request_ts=T0 + dt.timedelta(minutes=m), cluster=cl)
        for m in range(0, 360, 30)
        for cl in ["a"]
    ]
    rows += [event(request_ts=T0 + dt.timedelta(minutes=m), cluster="b") for m in (0, 350)]
    got = found(rows, "audit-gap", window=_gap_window())
    assert got["cluster"].to_list() == ["b"]


def _gaps_reference(minutes: list[int], threshold: int, end: int) -> int:
    points = sorted(minutes)
    edges = [0, *points]
    inner = sum(1 for a, b in itertools.pairwise(edges) if b - a > threshold)
    return inner + (1 if end - points[-1] > threshold else 0)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    minutes=st.lists(st.integers(min_value=0, max_value=359), min_size=1, max_size=40),
    threshold=st.integers(min_value=1, max_value=120),
)
@example(minutes=[0], threshold=60)
def test_audit_gap_agrees_with_reference(minutes: list[int], threshold: int) -> None:
    rows = [event(request_ts=T0 + dt.timedelta(minutes=m)) for m in minutes]
    tuned = dataclasses.replace(c.Settings(), gap_threshold=dt.timedelta(minutes=threshold))
    got = found(rows, "audit-gap", window=_gap_window(), settings=tuned)
    assert got.height == _gaps_reference(minutes, threshold, 360)


# --------------------------------------------------------------------------- first-seen


def test_new_agent_or_address_against_baseline() -> None:
    before = T0 - dt.timedelta(days=3)
    baseline = frame([event(request_ts=before), event(request_ts=before, user="carol")])
    now = [
        event(),  # known agent and address
        event(user_agent="curl/8.5.0"),
        event(source_ips=["203.0.113.9"]),
        event(user="dave", user_agent="curl/8.5.0"),  # unknown person: nothing to compare with
    ]
    got = found(now, "new-agent-or-address", baseline=baseline)
    assert sorted(got["detail"].to_list()) == [
        "new source IP for this identity: 203.0.113.9 (first on a request; 1 request(s))",
        "new user agent for this identity: curl/8.5.0 (first on a request; 1 request(s))",
    ]


def test_new_agent_or_address_without_baseline_is_not_assessable() -> None:
    result = assess(
        frame([event()]), c.Context(WINDOW), controls=[c.control("new-agent-or-address")]
    )
    assert result.results[0].status == "not assessable"
    assert result.results[0].reason == "no events in the previous window to compare with"


# --------------------------------------------------------------------------- decisions


def _result(rows: list[dict[str, Any]], control_id: str, **kwargs: Any) -> c.ControlResult:
    ctx = c.Context(WINDOW, settings=_wide)
    return assess(frame(rows), ctx, controls=[c.control(control_id)], **kwargs).results[0]


def test_metadata_pods_make_privileged_detection_not_assessable() -> None:
    result = _result([event(verb="create", name=None, level="Metadata")], "privileged-pod")
    assert (result.status, result.findings, result.severity) == ("not assessable", 0, None)
    assert result.reason == (
        "all pod and workload writes are logged at Metadata; "
        "Privileged and host-access pods needs Request"
    )


def test_partial_level_is_named_with_counts() -> None:
    rows = [event(request_object=PLAIN_POD, **_pod_create), event(verb="create", name=None)]
    result = _result(rows, "privileged-pod")
    assert result.status == "not assessable"
    assert result.reason.startswith("1 of 2 pod and workload writes are logged at Metadata")


def test_findings_fail_even_when_coverage_is_partial() -> None:
    rows = [event(request_object=PRIVILEGED_POD, **_pod_create), event(verb="create", name=None)]
    result = _result(rows, "privileged-pod")
    assert (result.status, result.findings, result.severity) == ("fail", 1, "high")
    assert "coverage is incomplete" in result.reason


def test_pass_names_what_it_rests_on() -> None:
    result = _result([event(request_object=PLAIN_POD, **_pod_create)], "privileged-pod")
    assert (result.status, result.reason) == (
        "pass",
        "no findings in 1 pod and workload writes",
    )


@pytest.mark.slow
def test_empty_window_is_never_a_pass() -> None:
    for ctrl in c.CONTROLS:
        result = assess(frame([]), c.Context(WINDOW), controls=[ctrl]).results[0]
        assert (result.status, result.reason) == ("not assessable", "no audit events in the window")


def test_missing_stage_is_not_assessable() -> None:
    result = _result([event()], "incomplete-request")
    assert result.status == "not assessable"
    assert result.reason.startswith("no RequestReceived events in the window")


def test_policy_that_cannot_support_a_control_makes_it_not_assessable() -> None:
    policy = load_policy(POLICIES / "metadata-all.yaml")
    coverage = c.policy_coverage(policy, [c.control("privileged-pod")])
    result = _result([event()], "privileged-pod", coverage=coverage)
    assert result.status == "not assessable"
    assert result.reason == (
        "under the given policy, create pods in default by alice@example.com is logged at "
        "Metadata; Privileged and host-access pods needs Request"
    )


# --------------------------------------------------------------------------- coverage


@pytest.mark.parametrize(
    ("policy_file", "expected"),
    [
        (
            "metadata-all.yaml",
            {
                "privileged-pod": "none",
                "rbac-escalation": "none",
                "pod-exec": "full",
                "secret-read-by-human": "full",
                "incomplete-request": "full",
            },
        ),
        (
            "tuned.yaml",
            {
                "privileged-pod": "full",
                "secret-read-by-human": "none",
                "pod-exec": "partial",
                "incomplete-request": "none",
                "rbac-escalation": "full",
            },
        ),
        (
            "docs-example.yaml",
            {
                "privileged-pod": "partial",
                "secret-read-by-human": "full",
                "rbac-escalation": "none",
                "incomplete-request": "none",
            },
        ),
    ],
)
def test_policy_coverage(policy_file: str, expected: dict[str, str]) -> None:
    coverage = {row.control: row for row in c.policy_coverage(load_policy(POLICIES / policy_file))}
    assert set(coverage) == {ctrl.id for ctrl in c.CONTROLS}
    assert {cid: coverage[cid].support for cid in expected} == expected


def test_policy_coverage_reason_names_the_probe() -> None:
    policy = load_policy(POLICIES / "tuned.yaml")
    (row,) = c.policy_coverage(policy, [c.control("pod-exec")])
    assert row.reason == "get pods/exec in default by alice@example.com is not logged at all"


# --------------------------------------------------------------------------- real samples


@pytest.fixture(scope="session")
def sample_report_lake(tmp_path_factory: pytest.TempPathFactory, shared_samples: Path) -> Path:
    lake = tmp_path_factory.mktemp("compliance-samples")
    ka.ingest([shared_samples / "falco-legacy-trace-files", shared_samples / "crowdsec-hub"], lake)
    return lake


SAMPLE_WINDOW = c.Window(dt.datetime(2018, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("control_id", "files", "not_files"),
    [
        (
            "privileged-pod",
            {
                "create_nginx_pod_privileged.json",
                "create_nginx_pod_hostnetwork.json",
                "create_nginx_pod_sensitive_mount.json",
                "k8s-audit-priv-pod-file.log",
            },
            {
                "create_nginx_pod_unprivileged.json",
                "create_nginx_pod_nohostnetwork.json",
                "create_nginx_pod_unsensitive_mount.json",
            },
        ),
        ("pod-exec", {"exec_pod.json", "attach_pod.json", "k8s-audit-pod-exec-file.log"}, set()),
        (
            "rbac-escalation",
            {
                "attach_cluster_admin_role.json",
                "create_cluster_role_wildcard_verbs.json",
                "create_cluster_role_wildcard_resources.json",
            },
            {"create_clusterrole.json", "create_cluster_role_pod_exec.json"},
        ),
        (
            "anonymous-allowed",
            {"anonymous_creates_namespace_foo.json"},
            {"minikube_creates_namespace_foo.json"},
        ),
        (
            "system-namespace-change",
            {"create_kube_system_secret.json"},
            {"create_service_account_token_secret.json"},
        ),
        (
            "cluster-scoped-create-delete",
            {"delete_namespace_foo.json", "create_clusterrole.json"},
            set(),
        ),
    ],
)
def test_real_samples(
    sample_report_lake: Path, control_id: str, files: set[str], not_files: set[str]
) -> None:
    result = assess(
        ka.scan(sample_report_lake), c.Context(SAMPLE_WINDOW), controls=[c.control(control_id)]
    )
    seen = {Path(name).name for name in result.evidence["source_file"].to_list()}
    assert files <= seen
    assert not (not_files & seen)
    assert result.results[0].status == "fail"
    assert (result.evidence["source_line"] >= 1).all()


def test_binding_to_a_role_flagged_in_the_window_is_an_escalation() -> None:
    role = event(resource="clusterroles", name="pods-all", request_object=WILDCARD_ROLE, **_rbac)
    safe = event(resource="clusterroles", name="viewer", request_object=VIEW_BINDING, **_rbac)
    bindings = [
        event(
            resource="clusterrolebindings",
            name=f"to-{target}",
            request_object=body({"roleRef": {"kind": "ClusterRole", "name": target}}),
            **_rbac,
        )
        for target in ("pods-all", "viewer")
    ]
    got = found([role, safe, *bindings], "rbac-escalation")
    assert sorted(got.select("what", "detail").rows()) == [
        ("create /api/v1/namespaces/default/pods/web", "binds flagged ClusterRole pods-all"),
        ("create /api/v1/namespaces/default/pods/web", "wildcard verbs"),
    ]
    assert sorted(got["source_line"].to_list()) == sorted(
        [role[s.SOURCE_LINE], bindings[0][s.SOURCE_LINE]]
    )


@pytest.mark.parametrize(("hours_before_last", "expected"), [(1, 0), (3, 1)])
def test_incomplete_requests_near_the_streams_end_are_left_alone(
    hours_before_last: int, expected: int
) -> None:
    # The stream stopped at T0 (audit-gap reports that); a watch received an hour before may
    # simply not have finished yet, one received three hours before should have.
    rows = [
        event(
            stage="ResponseStarted",
            verb="watch",
            request_ts=T0 - dt.timedelta(hours=hours_before_last),
        ),
        event(request_ts=T0),
    ]
    assert found(rows, "incomplete-request").height == expected
