"""``kaudit_analytics.policy``: loading, validation, request info and rule matching.

The tables are ported from the Kubernetes tests named in each section; where this file
and the Go source disagree, the Go source (``reference/policy-semantics.md``) wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kaudit_analytics.policy import (
    Policy,
    PolicyError,
    PolicyWarning,
    RequestAttributes,
    load_policy,
    request_info,
)
from tests.paths import FIXTURES as TEST_FIXTURES
from tests.paths import POLICIES, POLICY_FILES, SEED_POLICIES

FIXTURES = TEST_FIXTURES / "policy"
CHECKER = yaml.safe_load((FIXTURES / "checker_cases.yaml").read_text(encoding="utf-8"))


def make_policy(
    rules: list[dict[str, Any]],
    *,
    omit_stages: list[str] | None = None,
    omit_managed_fields: bool | None = None,
) -> Policy:
    doc: dict[str, Any] = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules}
    if omit_stages is not None:
        doc["omitStages"] = omit_stages
    if omit_managed_fields is not None:
        doc["omitManagedFields"] = omit_managed_fields
    return load_policy(yaml.safe_dump(doc))


def attrs(**fields: Any) -> RequestAttributes:
    fields.setdefault("user", "tim")
    fields.setdefault("verb", "get")
    fields["groups"] = tuple(fields.get("groups") or ())
    return RequestAttributes(**fields)


# --- checker_test.go -------------------------------------------------------------------


@pytest.mark.parametrize("policy_stages", [[], ["RequestReceived", "ResponseStarted"]])
@pytest.mark.parametrize(("request_name", "level", "rule_names"), CHECKER["audit_level"])
def test_checker_audit_level(
    request_name: str, level: str, rule_names: list[str], policy_stages: list[str]
) -> None:
    policy = make_policy([CHECKER["rules"][r] for r in rule_names], omit_stages=policy_stages)
    cfg = policy.evaluate_request(attrs(**CHECKER["attrs"][request_name]))
    assert (cfg.level, cfg.omit_stages) == (level, frozenset(policy_stages))


@pytest.mark.parametrize(
    ("request_name", "level", "policy_stages", "expected", "rule_names"), CHECKER["omit_stages"]
)
def test_checker_omit_stages(
    request_name: str,
    level: str,
    policy_stages: list[str],
    expected: list[str],
    rule_names: list[str],
) -> None:
    policy = make_policy([CHECKER["rules"][r] for r in rule_names], omit_stages=policy_stages)
    cfg = policy.evaluate_request(attrs(**CHECKER["attrs"][request_name]))
    assert (cfg.level, cfg.omit_stages) == (level, frozenset(expected))


@pytest.mark.parametrize(
    ("policy_value", "rule_value", "expected"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_omit_managed_fields(policy_value: bool, rule_value: bool | None, expected: bool) -> None:
    rule: dict[str, Any] = {"level": "RequestResponse", "verbs": ["get"]}
    if rule_value is not None:
        rule["omitManagedFields"] = rule_value
    policy = make_policy([rule], omit_managed_fields=policy_value)
    assert policy.evaluate_request(attrs(user=None)).omit_managed_fields is expected


def test_no_match_uses_policy_defaults() -> None:
    policy = make_policy(
        [{"level": "Request", "verbs": ["create"], "omitStages": ["Panic"]}],
        omit_stages=["RequestReceived"],
        omit_managed_fields=True,
    )
    cfg = policy.evaluate_request(attrs())
    assert (cfg.level, cfg.rule_index, cfg.omit_stages, cfg.omit_managed_fields) == (
        "None",
        None,
        frozenset({"RequestReceived"}),
        True,
    )


# --- semantics beyond the Go tables (reference/policy-semantics.md §4) -----------------

RESOURCE_CASES = [
    # (resources item, request fields, matches)
    ({"resources": ["pods"]}, {"resource": "pods"}, True),
    ({"resources": ["pods"]}, {"resource": "pods", "subresource": "log"}, False),
    ({"resources": ["pods/log"]}, {"resource": "pods"}, False),
    ({"resources": ["pods/*"]}, {"resource": "pods"}, True),  # the quirk
    ({"resources": ["pods/*"]}, {"resource": "pods", "subresource": "exec"}, True),
    ({"resources": ["*/scale"]}, {"resource": "deployments", "subresource": "scale"}, True),
    ({"resources": ["*/scale"]}, {"resource": "deployments"}, False),
    ({"resources": ["*/*"]}, {"resource": "pods", "subresource": "log"}, False),
    ({"resources": ["pod"]}, {"resource": "pods"}, False),
    ({"resources": ["pods"]}, {"resource": "pods", "api_group": "metrics.k8s.io"}, False),
    (
        {"group": "*", "resources": ["pods"]},
        {"resource": "pods", "api_group": "metrics.k8s.io"},
        True,
    ),
    ({"group": "*", "resources": ["pods"]}, {"resource": "pods"}, True),
    (
        {"group": "apps"},
        {"resource": "deployments", "subresource": "scale", "api_group": "apps"},
        True,
    ),
    (
        {"resources": ["secrets"], "resourceNames": ["a"]},
        {"resource": "secrets", "name": "a"},
        True,
    ),
    (
        {"resources": ["secrets"], "resourceNames": ["a"]},
        {"resource": "secrets", "name": ""},
        False,
    ),
    (
        {"resources": ["secrets"], "resourceNames": ["*"]},
        {"resource": "secrets", "name": "b"},
        False,
    ),
    ({"resources": ["*"]}, {"resource": "pods", "subresource": "exec"}, True),
]


@pytest.mark.parametrize(("item", "request_fields", "matches"), RESOURCE_CASES)
def test_resource_patterns(
    item: dict[str, Any], request_fields: dict[str, Any], matches: bool
) -> None:
    policy = make_policy([{"level": "Request", "resources": [item]}])
    assert (policy.evaluate_request(attrs(**request_fields)).rule_index == 0) is matches


NAMESPACE_AND_KIND_CASES = [
    ({"namespaces": [""]}, {"resource": "nodes"}, True),
    ({"namespaces": [""]}, {"resource": "pods"}, True),  # cross-namespace list
    ({"namespaces": [""]}, {"resource": "namespaces", "namespace": "kube-system"}, False),
    ({"namespaces": ["kube-system"]}, {"resource": "namespaces", "namespace": "kube-system"}, True),
    ({"namespaces": ["*"]}, {"resource": "pods", "namespace": "a"}, False),
    ({"namespaces": ["a"]}, {"resource_request": False, "path": "/healthz"}, False),
    ({"nonResourceURLs": ["*"]}, {"resource": "pods"}, False),
    ({"nonResourceURLs": ["/api*"]}, {"resource": "pods", "path": "/api/v1/pods"}, False),
    ({"nonResourceURLs": ["/healthz*"]}, {"resource_request": False, "path": "/healthzfoo"}, True),
    ({"nonResourceURLs": ["/healthz/*"]}, {"resource_request": False, "path": "/healthz"}, False),
    (
        {"nonResourceURLs": ["/healthz"]},
        {"resource_request": False, "path": "/healthz/etcd"},
        False,
    ),
    ({"verbs": ["create"]}, {"resource_request": False, "path": "/x", "verb": "post"}, False),
    ({"users": [""]}, {"user": ""}, True),
    ({"users": [""]}, {"user": None}, False),
    (
        {"userGroups": ["system:unauthenticated"]},
        {"user": "system:anonymous", "groups": ["system:unauthenticated"]},
        True,
    ),
    ({"users": ["*"]}, {"user": "tim"}, False),
    ({}, {"resource_request": False, "path": "/metrics", "user": None}, True),
]


@pytest.mark.parametrize(("rule", "request_fields", "matches"), NAMESPACE_AND_KIND_CASES)
def test_rule_kinds(rule: dict[str, Any], request_fields: dict[str, Any], matches: bool) -> None:
    policy = make_policy([{"level": "Metadata", **rule}])
    assert (policy.evaluate_request(attrs(**request_fields)).rule_index == 0) is matches


def test_first_match_wins_and_none_rule_stops() -> None:
    policy = make_policy([{"level": "None", "verbs": ["get"]}, {"level": "RequestResponse"}])
    cfg = policy.evaluate_request(attrs())
    assert (cfg.level, cfg.rule_index) == ("None", 0)
    assert policy.evaluate_request(attrs(verb="list")).rule_index == 1


# --- validation_test.go + reader.go ----------------------------------------------------

VALID_RULES: list[dict[str, Any]] = [
    {"level": "Metadata"},
    {"level": "None", "userGroups": ["system:serviceaccounts", "system:nodes"]},
    {
        "level": "RequestResponse",
        "verbs": ["get"],
        "resources": [
            {"group": "rbac.authorization.k8s.io", "resources": ["roles", "rolebindings"]}
        ],
        "namespaces": ["kube-system"],
    },
    {
        "level": "Metadata",
        "userGroups": ["developers"],
        "nonResourceURLs": ["/logs*", "/healthz*", "/metrics", "*"],
    },
    {"level": "Metadata", "resources": [{"group": "*", "resources": ["pods"]}]},
    {"level": "Metadata", "resources": [{"resources": ["*/*", "Pods", ""]}], "namespaces": ["*"]},
]


@pytest.mark.parametrize("rules", [[rule] for rule in VALID_RULES] + [VALID_RULES])
def test_valid_policies(rules: list[dict[str, Any]]) -> None:
    assert len(make_policy(rules).rules) == len(rules)


INVALID_RULES = [
    ({}, "rules[0].level: Required value"),
    (
        {
            "verbs": ["get"],
            "resources": [{"resources": ["secrets"]}],
            "namespaces": ["kube-system"],
        },
        "rules[0].level: Required value",
    ),
    ({"level": "FooBar"}, 'rules[0].level: Unsupported value: "FooBar"'),
    ({"level": "metadata"}, 'rules[0].level: Unsupported value: "metadata"'),
    (
        {"level": "Metadata", "namespaces": ["default"], "nonResourceURLs": ["/logs*"]},
        "rules cannot apply to both regular resources and non-resource URLs",
    ),
    (
        {"level": "Metadata", "namespaces": [""], "nonResourceURLs": ["/logs*"]},
        "rules cannot apply to both regular resources and non-resource URLs",
    ),
    (
        {
            "level": "Metadata",
            "resources": [{"resources": ["secrets"]}],
            "nonResourceURLs": ["/logs*"],
        },
        "rules cannot apply to both regular resources and non-resource URLs",
    ),
    (
        {
            "level": "Metadata",
            "resources": [{"group": "rbac.authorization.k8s.io/v1beta1", "resources": ["roles"]}],
        },
        'rules[0].resources.group: Invalid value: "rbac.authorization.k8s.io/v1beta1"',
    ),
    ({"level": "Metadata", "resources": [{"group": "Apps"}]}, "RFC 1123 subdomain"),
    ({"level": "Metadata", "resources": [{"group": "*.k8s.io"}]}, "RFC 1123 subdomain"),
    ({"level": "Metadata", "nonResourceURLs": ["logs", "/healthz*"]}, "must begin with a '/'"),
    ({"level": "Metadata", "nonResourceURLs": ["", "/healthz*"]}, "rules[0].nonResourceURLs[0]"),
    (
        {"level": "Metadata", "nonResourceURLs": ["/logs/*/*", "/metrics"]},
        "must be the final character",
    ),
    (
        {"level": "Metadata", "nonResourceURLs": ["/logs/*.log", "/metrics"]},
        "must be the final character",
    ),
    ({"level": "Metadata", "nonResourceURLs": ["/logs**"]}, "must be the final character"),
    (
        {"level": "Metadata", "resources": [{"resourceNames": ["a"]}]},
        "using resourceNames requires at least one resource",
    ),
    (
        {"level": "Metadata", "omitStages": ["Received"]},
        'rules[0].omitStages[0]: Invalid value: "Received"',
    ),
]


@pytest.mark.parametrize(("rule", "message"), INVALID_RULES)
def test_invalid_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(
        PolicyError, match=message.replace("*", r"\*").replace(".", r"\.").replace("[", r"\[")
    ):
        make_policy([rule])


def test_invalid_rule_after_valid_ones_names_its_index() -> None:
    with pytest.raises(PolicyError, match=r"rules\[6\]\.level: Required value"):
        make_policy([*VALID_RULES, {}])


HEADER_CASES = [
    ("kind: Policy\nrules: [{level: Metadata}]", "apiVersion: Required value"),
    ("", "apiVersion: Required value"),
    (
        "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: Metadata}]",
        "change the header",
    ),
    ("apiVersion: audit.k8s.io/v1alpha1\nrules: [{level: Metadata}]", "change the header"),
    ("apiVersion: v1\nkind: Policy\nrules: [{level: Metadata}]", 'Unsupported value: "v1"'),
    (
        "apiVersion: audit.k8s.io/v1\nkind: Event\nrules: [{level: Metadata}]",
        'kind: Unsupported value: "Event"',
    ),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]", "0 rules"),
    (
        "apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata, users: tim}]",
        r"rules\[0\]\.users: expected a list",
    ),
    ("apiVersion: audit.k8s.io/v1\nrules: {level: Metadata}", "rules: expected a list"),
    (
        "apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata, resources: [pods]}]",
        r"resources\[0\]: expected an object",
    ),
    (
        'apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata, omitManagedFields: "x"}]',
        "expected true or false",
    ),
    (
        "apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata, verbs: [get, 1]}]",
        r"verbs\[1\]: expected a string",
    ),
    ("apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata\n", "failed decoding"),
    (
        "apiVersion: audit.k8s.io/v1\nrules: [{Level: Metadata}]",
        r"rules\[0\]\.level: Required value",
    ),
]


@pytest.mark.parametrize(("text", "message"), HEADER_CASES)
def test_refused_documents(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(text + "\n")


def test_missing_kind_is_accepted_and_json_works() -> None:
    policy = load_policy('{"apiVersion": "audit.k8s.io/v1", "rules": [{"level": "None"}]}')
    assert policy.rules[0].level == "None"


def test_unknown_fields_warn_and_broaden_the_rule() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\nrules:\n- level: None\n  verb: [get]\n"
        "  resources: [{resources: [pods], verbs: [list]}]\n"
    )
    with pytest.warns(PolicyWarning, match=r"rules\[0\]\.verb"):
        policy = load_policy(text)
    assert policy.unknown_fields == ("rules[0].verb", "rules[0].resources[0].verbs")
    assert policy.evaluate_request(attrs(verb="delete", resource="pods")).rule_index == 0


def test_load_from_path_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n", encoding="utf-8")
    assert load_policy(path).name == "p.yaml"
    assert load_policy(str(path)).name == "p.yaml"
    with pytest.raises(PolicyError, match="failed to read"):
        load_policy(str(tmp_path / "missing.yaml"))
    assert issubclass(PolicyError, ValueError)


@pytest.mark.parametrize("name", POLICY_FILES)
def test_the_test_policies_are_the_shared_seed_policies(name: str) -> None:
    """The tests use their own copies; where the shared seeds exist, they say the same."""
    ours = load_policy(POLICIES / name)
    assert ours.rules
    if not SEED_POLICIES.exists():
        pytest.skip("the shared seed policies are absent on this machine")
    seed = load_policy(SEED_POLICIES / name)
    assert (seed.rules, seed.omit_stages, seed.omit_managed_fields) == (
        ours.rules,
        ours.omit_stages,
        ours.omit_managed_fields,
    )


# --- requestinfo_test.go ---------------------------------------------------------------

# (method, url, verb, api_prefix, api_group, api_version, namespace, resource, subresource, name)
REQUEST_INFO_CASES = [
    ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", ""),
    ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other"),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", ""),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "HEAD",
        "/api/v1/namespaces/other/pods/foo",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    # The Go table once expected namespace "" here; the code (and every release since
    # namespaces carry their own name) gives "new-namespace".
    (
        "PATCH",
        "/api/v1/namespaces/new-namespace",
        "patch",
        "api",
        "",
        "v1",
        "new-namespace",
        "namespaces",
        "",
        "new-namespace",
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo",
        "proxy",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
        "proxy",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", ""),
    (
        "GET",
        "/api/v1/watch/namespaces/other/pods",
        "watch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?watch=1",
        "watch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?watch=0",
        "list",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/status",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "status",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/proxy/subpath",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "proxy",
        "foo",
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/finalize",
        "update",
        "api",
        "",
        "v1",
        "other",
        "namespaces",
        "finalize",
        "other",
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/status",
        "update",
        "api",
        "",
        "v1",
        "other",
        "namespaces",
        "status",
        "other",
    ),
    (
        "PATCH",
        "/api/v1/namespaces/other/pods/foo",
        "patch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "DELETE",
        "/api/v1/namespaces/other/pods/foo",
        "delete",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", ""),
    ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", ""),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", ""),
    (
        "DELETE",
        "/api/v1/namespaces/other/pods",
        "deletecollection",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    # The Go table says prefix "api" for the next three but never checks it; the code says "apis".
    (
        "DELETE",
        "/apis/extensions/v1/namespaces/other/pods",
        "deletecollection",
        "apis",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    (
        "POST",
        "/apis/extensions/v1/namespaces/other/pods",
        "create",
        "apis",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
        "",
    ),
    (
        "POST",
        "/apis/extensions/v1beta3/namespaces/other/pods",
        "create",
        "apis",
        "extensions",
        "v1beta3",
        "other",
        "pods",
        "",
        "",
    ),
    # reference/policy-semantics.md §5.2
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo/a/b",
        "proxy",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/log?follow=true",
        "get",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "log",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/watch",
        "get",
        "api",
        "",
        "v1",
        "default",
        "pods",
        "",
        "watch",
    ),
    ("GET", "/api/v1/namespaces/status/pods", "list", "api", "", "v1", "status", "pods", "", ""),
    ("OPTIONS", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/a/pods/b%2Fc/d", "get", "api", "", "v1", "a", "pods", "c", "b"),
]


@pytest.mark.parametrize(
    (
        "method",
        "url",
        "verb",
        "prefix",
        "group",
        "version",
        "namespace",
        "resource",
        "subresource",
        "name",
    ),
    REQUEST_INFO_CASES,
)
def test_request_info(
    method: str,
    url: str,
    verb: str,
    prefix: str,
    group: str,
    version: str,
    namespace: str,
    resource: str,
    subresource: str,
    name: str,
) -> None:
    info = request_info(request_uri=url, method=method)
    got = (info.is_resource_request, info.verb, info.api_prefix, info.api_group, info.api_version)
    assert got == (True, verb, prefix, group, version)
    assert (info.namespace, info.resource, info.subresource, info.name) == (
        namespace,
        resource,
        subresource,
        name,
    )
    # Given the verb the audit event recorded, the same attributes come out.
    assert request_info(verb, url) == info


NON_RESOURCE_URLS = [
    ("/", ""),
    ("/api/version/", ""),
    ("/apis/group/version/", "apis"),
    ("/badprefix/version/resource", ""),
    ("/apis/version/resource", "apis"),
    ("/not-api/version/resource", ""),
    ("/apis/extensions/v1beta1", "apis"),
    ("/apis/extensions/v1beta1/", "apis"),
    ("/api/version", ""),
    ("/api", ""),
    ("", ""),
    ("/healthz", ""),
    ("/openapi/v2?timeout=32s", ""),
]


@pytest.mark.parametrize(("url", "prefix"), NON_RESOURCE_URLS)
def test_non_resource_request_info(url: str, prefix: str) -> None:
    info = request_info(request_uri=url, method="GET")
    assert (info.is_resource_request, info.verb, info.api_prefix) == (False, "get", prefix)
    assert info.path == url.partition("?")[0]


@pytest.mark.parametrize(
    "url",
    [
        "/api/version/resource",
        "/apis/group/version/resource/name/subresource",
        "/apis/batch/v1/job/foo/scale",
    ],
)
def test_resource_request_info(url: str) -> None:
    assert request_info(request_uri=url, method="GET").is_resource_request


FIELD_SELECTOR_CASES = [
    ("/apis/group/version/resource", "", "list"),
    ("/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list"),
    ("/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch"),
    ("/apis/group/version/resource?fieldSelector=foo=bar", "", "list"),
    ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list"),
    ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch"),
    ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list"),
    # reference/policy-semantics.md §5.4
    ("/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ds1&watch=true", "s1", "watch"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3D%3Ds1", "s1", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%21%3Ds1", "", "list"),
    ("/api/v1/secrets?fieldSelector=a%3Db%2Cmetadata.name%3Ds1", "s1", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3D..", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Da%2Fb", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Ds1&limit=abc", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Ds1&timeoutSeconds=x", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Ds1&limit=500", "s1", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Ds1&limit=", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Da%5C%2Cb", "a,b", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Da%3Db", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Da%5Cx", "", "list"),
    ("/api/v1/secrets?fieldSelector=metadata.name%3Db,metadata.name%3Da", "a", "list"),
]


@pytest.mark.parametrize(("url", "name", "verb"), FIELD_SELECTOR_CASES)
def test_field_selector_name(url: str, name: str, verb: str) -> None:
    info = request_info(request_uri=url, method="GET")
    assert (info.name, info.verb) == (name, verb)
    assert request_info(verb, url).name == name


def test_field_selector_is_not_read_for_other_verbs() -> None:
    url = "/api/v1/secrets?fieldSelector=metadata.name%3Ds1"
    assert request_info(request_uri=url, method="DELETE").name == ""
    assert request_info(request_uri=url, method="POST").name == ""
    assert (
        request_info("watch", "/api/v1/watch/secrets?fieldSelector=metadata.name%3Ds1").name == ""
    )


@pytest.mark.parametrize("url", ["/api/v1/watch", "/apis/apps/v1/proxy"])
def test_special_verb_without_resource_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unable to determine"):
        request_info(request_uri=url, method="GET")


def test_request_info_attributes_feed_the_policy() -> None:
    policy = make_policy(
        [
            {
                "level": "RequestResponse",
                "resources": [{"resources": ["secrets"], "resourceNames": ["s1"]}],
            }
        ]
    )
    info = request_info(
        "watch", "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ds1&watch=1"
    )
    assert policy.evaluate_request(info.attributes(user="kubelet")).level == "RequestResponse"
