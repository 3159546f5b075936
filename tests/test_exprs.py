from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import kaudit_analytics as ka
from kaudit_analytics import exprs
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    AUDIT_SCHEMA,
    AUTHZ_DECISION,
    CODE,
    GROUPS,
    IMPERSONATED_GROUPS,
    IMPERSONATED_USER,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    SOURCE_FORMAT,
    STAGE,
    STAGE_TS,
    SUBRESOURCE,
    USER,
    USER_EXTRA,
    USER_UID,
    VERB,
)


def make_events(data: dict[str, list[Any]]) -> pl.DataFrame:
    """An events frame from a few columns; the others are null, every type from AUDIT_SCHEMA."""
    height = len(next(iter(data.values())))
    return pl.DataFrame(
        {name: data.get(name, [None] * height) for name in AUDIT_SCHEMA},
        schema=AUDIT_SCHEMA,
    )


def extra(**values: str) -> list[dict[str, Any]]:
    return [{"key": key, "values": [value]} for key, value in values.items()]


EKS_ARN = "arn:aws:iam::123412341234:role/DevAdministrator"


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        (None, None, "unknown"),
        ("system:anonymous", ["system:unauthenticated"], "anonymous"),
        ("system:unauthenticated", None, "anonymous"),
        ("someone", ["system:unauthenticated"], "anonymous"),
        (
            "system:serviceaccount:kube-system:coredns",
            ["system:serviceaccounts"],
            "service_account",
        ),
        ("system:node:ip-192-168-3-178.us-west-2.compute.internal", ["system:nodes"], "node"),
        ("system:node:suspicious-node", None, "node"),
        ("system:bootstrap:abcdef", ["system:bootstrappers"], "node"),
        ("nodeclient", ["system:nodes", "system:authenticated"], "node"),
        ("kubelet-nodepool-bootstrap", None, "node"),
        ("system:kube-proxy", None, "node"),
        ("custom-kubelet", ["system:nodes"], "node"),
        ("system:kube-controller-manager", None, "control_plane"),
        ("system:apiserver", ["system:masters"], "control_plane"),
        ("system:gke-master-healthcheck", None, "control_plane"),
        ("eks:addon-manager", ["system:authenticated"], "control_plane"),
        ("eks:node-manager", None, "control_plane"),
        ("aksService", ["system:masters", "system:authenticated"], "control_plane"),
        ("kube-apiserver-kubelet-client", ["system:masters"], "control_plane"),
        ("container-engine-robot@some-project.iam.gserviceaccount.com", None, "cloud_service"),
        ("masterclient", ["system:masters", "system:authenticated"], "human"),
        ("kubernetes-admin", ["system:masters", "system:authenticated"], "human"),
        ("john.doe@company.com", ["system:authenticated"], "human"),
        ("alice", [], "human"),
    ],
)
def test_actor_kind(user: str | None, groups: list[str] | None, expected: str) -> None:
    frame = make_events({USER: [user], GROUPS: [groups]})
    assert frame.select(exprs.ACTOR_KIND).item() == expected
    # The predicates agree with the kind they name.
    flags = frame.select(
        human=exprs.IS_HUMAN,
        service_account=exprs.IS_SERVICE_ACCOUNT,
        node=exprs.IS_NODE,
        control_plane=exprs.IS_CONTROL_PLANE,
        anonymous=exprs.IS_ANONYMOUS,
    ).row(0, named=True)
    assert {kind for kind, flag in flags.items() if flag} == (
        {expected} if expected in flags else set()
    )


def test_actor_kind_is_an_enum_of_every_kind() -> None:
    frame = make_events({USER: ["alice"]})
    assert frame.select(exprs.ACTOR_KIND).schema["actor_kind"] == exprs.ActorKind
    assert set(exprs.ACTOR_KINDS) == {
        "human",
        "service_account",
        "node",
        "control_plane",
        "cloud_service",
        "anonymous",
        "unknown",
    }


@pytest.mark.parametrize(
    ("user", "sa_namespace", "sa_name", "node_name"),
    [
        ("system:serviceaccount:kube-system:coredns", "kube-system", "coredns", None),
        ("system:serviceaccount:default:app-sa", "default", "app-sa", None),
        ("system:node:ip-10-0-0-1.ec2.internal", None, None, "ip-10-0-0-1.ec2.internal"),
        ("alice", None, None, None),
        (None, None, None, None),
    ],
)
def test_service_account_and_node_names(
    user: str | None, sa_namespace: str | None, sa_name: str | None, node_name: str | None
) -> None:
    row = make_events({USER: [user]}).select(exprs.SA_NAMESPACE, exprs.SA_NAME, exprs.NODE_NAME)
    assert row.row(0) == (sa_namespace, sa_name, node_name)


@pytest.mark.parametrize(
    ("user", "user_uid", "user_extra", "source_format", "expected"),
    [
        # EKS: a role mapped onto kubernetes-admin, seen in panther-analysis/eks_audit.jsonl.
        (
            "kubernetes-admin",
            "aws-iam-authenticator:123412341234:AROAEXAMPLE",
            extra(
                arn="arn:aws:sts::123412341234:assumed-role/DevAdministrator/1669660343296132000",
                canonicalArn=EKS_ARN,
                sessionName="1669660343296132000",
            ),
            None,
            ("eks", EKS_ARN, "1669660343296132000", f"kubernetes-admin [{EKS_ARN}]"),
        ),
        # Only ``arn`` (no canonicalArn): the STS arn is the principal.
        (
            "eks:addon-manager",
            None,
            extra(arn="arn:aws:sts::1:assumed-role/AddonManagerRole/session"),
            None,
            (
                "eks",
                "arn:aws:sts::1:assumed-role/AddonManagerRole/session",
                None,
                "eks:addon-manager [arn:aws:sts::1:assumed-role/AddonManagerRole/session]",
            ),
        ),
        ("eks:node-manager", None, None, None, ("eks", None, None, "eks:node-manager")),
        (
            "kubernetes-admin",
            "heptio-authenticator-aws:1:AROA",
            [],
            None,
            ("eks", None, None, "kubernetes-admin"),
        ),
        ("masterclient", None, None, None, ("aks", "masterclient", None, "masterclient")),
        ("nodeclient", None, None, "aks", ("aks", "nodeclient", None, "nodeclient")),
        (
            "system:serviceaccount:kube-system:metrics-server",
            None,
            None,
            "aks",
            ("aks", None, None, "system:serviceaccount:kube-system:metrics-server"),
        ),
        (
            "some.user@company.com",
            None,
            None,
            "gke",
            ("gke", "some.user@company.com", None, "some.user@company.com"),
        ),
        (
            "container-engine-robot@p.iam.gserviceaccount.com",
            None,
            None,
            None,
            (
                "gke",
                "container-engine-robot@p.iam.gserviceaccount.com",
                None,
                "container-engine-robot@p.iam.gserviceaccount.com",
            ),
        ),
        ("system:gke-master-healthcheck", None, None, None, ("gke", None, None, None)),
        (
            # A pod's bound token carries extra keys that are not cloud identities.
            "system:serviceaccount:kube-system:coredns",
            None,
            extra(**{"authentication.kubernetes.io/pod-name": "coredns-57ff979f67-bl27n"}),
            None,
            (None, None, None, "system:serviceaccount:kube-system:coredns"),
        ),
        ("alice", None, None, "native", (None, None, None, "alice")),
        # An Entra ID account on AKS is a cloud principal, an OIDC e-mail on a plain cluster not.
        (
            "admin@example.com",
            None,
            None,
            "aks",
            ("aks", "admin@example.com", None, "admin@example.com"),
        ),
        ("alice@example.com", None, None, "native", (None, None, None, "alice@example.com")),
    ],
)
def test_cloud_identity(
    user: str,
    user_uid: str | None,
    user_extra: list[dict[str, Any]] | None,
    source_format: str | None,
    expected: tuple[str | None, str | None, str | None, str | None],
) -> None:
    frame = make_events(
        {
            USER: [user],
            USER_UID: [user_uid],
            USER_EXTRA: [user_extra],
            SOURCE_FORMAT: [source_format],
        }
    )
    provider, principal, session, actor = expected
    got = frame.select(
        exprs.CLOUD_PROVIDER, exprs.CLOUD_PRINCIPAL, exprs.CLOUD_SESSION, exprs.ACTOR
    ).row(0)
    # ACTOR is the plain user when no EKS role is mapped (system:gke-… included).
    assert got == (provider, principal, session, actor if actor is not None else user)


def test_impersonation_splits_real_and_effective_actor() -> None:
    frame = make_events(
        {
            USER: ["alice", "system:serviceaccount:ci:deployer"],
            GROUPS: [["devs"], ["system:serviceaccounts"]],
            IMPERSONATED_USER: [None, "system:node:worker-1"],
            IMPERSONATED_GROUPS: [None, ["system:nodes"]],
        }
    )
    got = frame.select(
        exprs.REAL_USER,
        exprs.EFFECTIVE_USER,
        exprs.EFFECTIVE_GROUPS,
        exprs.IS_IMPERSONATED,
        exprs.ACTOR_KIND.cast(pl.String),
        exprs.EFFECTIVE_ACTOR_KIND.cast(pl.String),
    )
    expected = pl.DataFrame(
        {
            "real_user": ["alice", "system:serviceaccount:ci:deployer"],
            "effective_user": ["alice", "system:node:worker-1"],
            "effective_groups": [["devs"], ["system:nodes"]],
            "is_impersonated": [False, True],
            "actor_kind": ["human", "service_account"],
            "effective_actor_kind": ["human", "node"],
        }
    )
    assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    ("verb", "is_write", "is_read"),
    [
        ("create", True, False),
        ("update", True, False),
        ("patch", True, False),
        ("delete", True, False),
        ("deletecollection", True, False),
        ("post", True, False),
        ("get", False, True),
        ("list", False, True),
        ("watch", False, True),
        ("impersonate", False, False),
        (None, False, False),
    ],
)
def test_verb_classes(verb: str | None, is_write: bool, is_read: bool) -> None:
    frame = make_events({VERB: [verb]})
    assert frame.select(exprs.IS_WRITE_VERB, exprs.IS_READ_VERB.alias("r")).row(0) == (
        is_write,
        is_read,
    )
    # Null verbs are "neither", so negations stay two-valued.
    assert frame.select(~exprs.IS_WRITE_VERB).item() is (not is_write)


@pytest.mark.parametrize(
    ("code", "decision", "outcome", "denied", "server_error"),
    [
        (200, "allow", "success", False, False),
        (101, "allow", "success", False, False),
        (304, None, "success", False, False),
        (401, None, "denied", True, False),
        (403, "forbid", "denied", True, False),
        (200, "forbid", "denied", True, False),
        (404, "allow", "client_error", False, False),
        (422, "allow", "client_error", False, False),
        (500, "allow", "server_error", False, True),
        (503, None, "server_error", False, True),
        (None, None, "unknown", False, False),
    ],
)
def test_outcome(
    code: int | None, decision: str | None, outcome: str, denied: bool, server_error: bool
) -> None:
    frame = make_events({CODE: [code], AUTHZ_DECISION: [decision]})
    got = frame.select(exprs.OUTCOME.cast(pl.String), exprs.IS_DENIED, exprs.IS_SERVER_ERROR)
    assert got.row(0) == (outcome, denied, server_error)


@pytest.mark.parametrize(
    ("resource", "api_group", "subresource", "expected"),
    [
        ("pods", "", None, "pods"),
        ("pods", "", "exec", "pods/exec"),
        ("deployments", "apps", "scale", "deployments.apps/scale"),
        (
            "clusterroles",
            "rbac.authorization.k8s.io",
            None,
            "clusterroles.rbac.authorization.k8s.io",
        ),
        ("namespaces", None, None, "namespaces"),
        (None, None, None, None),
    ],
)
def test_resource_key(
    resource: str | None, api_group: str | None, subresource: str | None, expected: str | None
) -> None:
    frame = make_events({RESOURCE: [resource], API_GROUP: [api_group], SUBRESOURCE: [subresource]})
    assert frame.select(exprs.RESOURCE_KEY).item() == expected


@pytest.mark.parametrize(
    ("verb", "uri", "subresource", "expected"),
    [
        ("watch", "/api/v1/pods?watch=true", None, True),
        ("list", "/api/v1/namespaces/a/configmaps?watch=1&resourceVersion=5", None, True),
        ("list", "/api/v1/pods?limit=500", None, False),
        ("create", "/api/v1/namespaces/a/pods/p/exec?command=sh", "exec", True),
        ("get", "/api/v1/namespaces/a/pods/p/attach", "attach", True),
        ("create", "/api/v1/namespaces/a/pods/p/portforward", "portforward", True),
        ("get", "/api/v1/namespaces/a/pods/p/log?follow=true", "log", True),
        ("get", "/api/v1/namespaces/a/pods/p/log?container=c", "log", False),
        ("get", "/api/v1/namespaces/a/pods/p", None, False),
        (None, None, None, False),
    ],
)
def test_is_long_running(
    verb: str | None, uri: str | None, subresource: str | None, expected: bool
) -> None:
    frame = make_events({VERB: [verb], REQUEST_URI: [uri], SUBRESOURCE: [subresource]})
    assert frame.select(exprs.IS_LONG_RUNNING).item() is expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "/api/v1/namespaces/default/pods/nginx/exec?command=sh&command=-c"
            "&command=echo+h%C3%A9llo%3B%20ls&container=nginx&stdin=true&tty=true",
            ["sh", "-c", "echo héllo; ls"],
        ),
        ("/api/v1/namespaces/a/pods/p/exec?container=c&command=%2Fbin%2Fbash", ["/bin/bash"]),
        ("/api/v1/namespaces/a/pods/p/exec?stdin=true", []),
        # A stray "%" and bytes that are not UTF-8 are shown as logged, not dropped.
        ("/exec?command=100%&command=%ZZ&command=%ff%fe", ["100%", "%ZZ", "%ff%fe"]),
        # ``subcommand=`` is not ``command=``.
        ("/exec?subcommand=x&command=id", ["id"]),
        ("/exec?command=", [""]),
        (None, None),
    ],
)
def test_exec_command(uri: str | None, expected: list[str] | None) -> None:
    frame = make_events({REQUEST_URI: [uri]})
    assert frame.select(exprs.exec_command())["command"].to_list() == [expected]
    joined = frame.select(exprs.EXEC_COMMAND).item()
    assert joined == (" ".join(expected) if expected else None)


def reference_unquote(text: str) -> str:
    """What Go/Python form decoding does, with our fallback for non-UTF-8 escapes."""
    plus = text.replace("+", " ")
    try:
        return urllib.parse.unquote_to_bytes(plus).decode("utf-8")
    except UnicodeDecodeError:
        return plus


@pytest.mark.slow
@given(text=st.text(max_size=30) | st.text(alphabet="%+aZ09fF€é", max_size=20))
@example(text="%C3%A9")
@example(text="%e2%82")
@example(text="%%41")
@example(text="a%2")
def test_percent_decode_agrees_with_urllib(text: str) -> None:
    got = pl.DataFrame({"q": [text]}).select(exprs.percent_decode(pl.col("q"))).item()
    assert got == reference_unquote(text)


@pytest.mark.slow
@given(argv=st.lists(st.text(min_size=0, max_size=15), max_size=5))
def test_exec_command_round_trips_kubectl_encoding(argv: list[str]) -> None:
    query = urllib.parse.urlencode([("command", arg) for arg in argv] + [("stdin", "true")])
    uri = f"/api/v1/namespaces/a/pods/p/exec?{query}"
    got = make_events({REQUEST_URI: [uri]}).select(exprs.exec_command())["command"].to_list()
    assert got == [argv]


@pytest.mark.parametrize(
    ("ts", "hour", "weekday", "hour_of_week"),
    [
        (datetime(2026, 11, 23, 0, 0, tzinfo=UTC), 0, 1, 0),  # Monday midnight
        (datetime(2026, 11, 27, 6, 59, tzinfo=UTC), 6, 5, 102),
        (datetime(2026, 11, 29, 23, 30, tzinfo=UTC), 23, 7, 167),  # Sunday, last hour
    ],
)
def test_time_buckets(ts: datetime, hour: int, weekday: int, hour_of_week: int) -> None:
    frame = make_events({REQUEST_TS: [ts]})
    got = frame.select(exprs.hour_of_day(), exprs.day_of_week(), exprs.hour_of_week())
    assert got.row(0) == (hour, weekday, hour_of_week)


def test_is_last_stage_keeps_one_row_per_request() -> None:
    frame = make_events(
        {
            AUDIT_ID: ["a", "a", "b", "b", "b", "c", None, None],
            STAGE: [
                "RequestReceived",
                "ResponseComplete",
                "RequestReceived",
                "ResponseStarted",
                "Panic",
                "ResponseStarted",
                "ResponseComplete",
                "ResponseComplete",
            ],
        }
    )
    kept = frame.filter(exprs.IS_LAST_STAGE).select(AUDIT_ID, pl.col(STAGE).cast(pl.String))
    expected = pl.DataFrame(
        {
            AUDIT_ID: ["a", "b", "c", None, None],
            STAGE: [
                "ResponseComplete",
                "Panic",
                "ResponseStarted",
                "ResponseComplete",
                "ResponseComplete",
            ],
        }
    )
    assert_frame_equal(kept, expected)


def test_latency_ms() -> None:
    start = datetime(2026, 11, 27, 6, 0, 0, 0, tzinfo=UTC)
    end = datetime(2026, 11, 27, 6, 0, 1, 250_500, tzinfo=UTC)
    frame = make_events({REQUEST_TS: [start, start], STAGE_TS: [end, None]})
    assert frame.select(exprs.LATENCY_MS)["latency_ms"].to_list() == [1250.5, None]


# --------------------------------------------------------------------------- real samples

# Every identity in panther-analysis/eks_audit.jsonl: actor label -> (kind, provider, principal).
ADDON_ROLE = (
    "arn:aws:iam::123412341234:role/AWSWesleyClusterManagerLambda-Add-AddonManagerRole-G332QAM69HWF"
)
ADDON_SESSION = "arn:aws:sts::123412341234:assumed-role/AWSWesleyClusterManagerLambda-Add-AddonManagerRole/session"  # noqa: E501
EKS_IDENTITIES: dict[str | None, tuple[str, str | None, str | None]] = {
    f"kubernetes-admin [{EKS_ARN}]": ("human", "eks", EKS_ARN),
    "kubernetes-admin": ("human", None, None),  # a client certificate, no IAM mapping
    f"eks:addon-manager [{ADDON_ROLE}]": ("control_plane", "eks", ADDON_ROLE),
    f"eks:addon-manager [{ADDON_SESSION}]": ("control_plane", "eks", ADDON_SESSION),
    "eks:node-manager": ("control_plane", "eks", None),
    "system:kube-controller-manager": ("control_plane", None, None),
    "system:anonymous": ("anonymous", None, None),
    "system:unauthenticated": ("anonymous", None, None),
    "system:node:ip-192-168-3-178.us-west-2.compute.internal": ("node", None, None),
    "system:node:suspicious-node": ("node", None, None),
    None: ("unknown", None, None),
    **{
        f"system:serviceaccount:{sa}": ("service_account", None, None)
        for sa in (
            "kube-system:coredns",
            "kube-system:controller",
            "kube-system:operator",
            "kube-system:namespace-controller",
            "kube-system:cronjob-controller",
            "kube-system:daemon-set-controller",
            "kube-system:debug",
            "kube-system:daemon",
            "kube-system:deployment-controller",
            "kube-system:kube-state-metrics",
            "kube-system:kube-proxy",
            "default:compromised-sa",
            "default:app-sa",
            "default:test",
            "default:app",
        )
    },
    **dict.fromkeys(
        (
            "admin@example.com",
            "attacker@example.com",
            "developer@example.com",
            "suspicious-user@example.com",
            "john.doe@company.com",
            "john.doe@example.com",
            "user@example.com",
            "user@company.com",
            "developer@company.com",
        ),
        ("human", None, None),
    ),
}


Identity = tuple[str, str | None, str | None]


def aks(kind: str, principal: str | None = None) -> Identity:
    return (kind, "aks", principal)


def gke(kind: str, principal: str | None = None) -> Identity:
    return (kind, "gke", principal)


# Every identity in the Panther AKS and GKE samples and in Sysdig's AKS batch.
AKS_IDENTITIES: dict[str | None, Identity] = {
    "masterclient": aks("human", "masterclient"),  # the admin certificate
    "aksService": aks("control_plane", "aksService"),
    "nodeclient": aks("node", "nodeclient"),
    "kubelet-nodepool-bootstrap": aks("node"),
    "system:node:aks-nodepool1-12345-vmss000001": aks("node"),
    "system:anonymous": aks("anonymous"),
    "test-user": aks("human"),
    **{
        f"system:serviceaccount:kube-system:{sa}": aks("service_account")
        for sa in (
            "csi-azuredisk-node-sa",
            "csi-azurefile-node-sa",
            "metrics-server",
            "resourcequota-controller",
        )
    },
    **{
        person: aks("human", person)  # Entra ID accounts
        for person in (
            "admin@example.com",
            "attacker@company.com",
            "compromised-user@example.com",
            "developer@example.com",
            "malicious-user@example.com",
            "persistence-user@example.com",
            "policy-admin@example.com",
            "user@example.com",
        )
    },
}
ROBOT = "container-engine-robot@some-project.iam.gserviceaccount.com"
GKE_IDENTITIES: dict[str | None, Identity] = {
    ROBOT: gke("cloud_service", ROBOT),
    "system:anonymous": gke("anonymous"),
    "system:gke-master-healthcheck": gke("control_plane"),
    "system:serviceaccount:kube-system:default": gke("service_account"),
    "system:serviceaccount:kube-system:deployment-controller": gke("service_account"),
    **{
        person: gke("human", person)  # Google accounts
        for person in (
            "disallowed.user@example.com",
            "example-allowed-user@example.com",
            "john.doe@company.com",
            "malicious@example.com",
            "some.user@company.com",
            "user@company.com",
            "user@example.com",
        )
    },
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "identities", "must_see"),
    [
        (
            "panther-analysis/eks_audit.jsonl",
            EKS_IDENTITIES,
            {f"kubernetes-admin [{EKS_ARN}]", f"eks:addon-manager [{ADDON_ROLE}]"},
        ),
        ("sysdig-aks-audit-log/event.json", AKS_IDENTITIES, {"aksService", "nodeclient"}),
        ("panther-analysis/aks_azure_monitoractivity.jsonl", AKS_IDENTITIES, set()),
        (
            "panther-analysis/gke_gcp_auditlog.jsonl",
            GKE_IDENTITIES,
            {ROBOT, "john.doe@company.com"},
        ),
    ],
)
def test_identities_in_cloud_samples(
    source: str,
    identities: dict[str | None, Identity],
    must_see: set[str],
    tmp_path: Path,
    shared_samples: Path,
) -> None:
    stats = ka.ingest(shared_samples / source, tmp_path / "lake")
    assert stats.events_written > 0
    seen = (
        ka.scan(tmp_path / "lake")
        .select(
            exprs.ACTOR,
            exprs.ACTOR_KIND.cast(pl.String),
            exprs.CLOUD_PROVIDER,
            exprs.CLOUD_PRINCIPAL,
        )
        .unique()
        .collect()
    )
    got: dict[str | None, Identity] = {
        actor: (kind, provider, principal) for actor, kind, provider, principal in seen.rows()
    }
    # The identities each sample exists for must have been loaded.
    assert must_see <= set(got)
    assert set(got) <= set(identities), set(got) - set(identities)
    assert got == {actor: identities[actor] for actor in got}
