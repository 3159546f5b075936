"""``Policy.evaluate`` (polars) agrees with ``evaluate_request`` + ``request_info`` on every row.

Generated requests mix resource and non-resource URIs, the deprecated ``/watch/`` and
``/proxy/`` prefixes, namespace objects and their subresources, empty segments, percent
escapes and field selectors; generated policies draw from the same vocabulary so that
rules actually hit. The real samples of other projects are checked too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kaudit_analytics as ka
from kaudit_analytics.policy import (
    POLICY_KEEPS_STAGE,
    POLICY_LEVEL,
    POLICY_RULE,
    Policy,
    RequestAttributes,
    load_policy,
    request_info,
)
from kaudit_analytics.policy.requestinfo import _list_name, list_query_key
from kaudit_analytics.schema import (
    API_GROUP,
    GROUPS,
    NAME,
    NAMESPACE,
    REQUEST_URI,
    RESOURCE,
    STAGE,
    STAGES,
    SUBRESOURCE,
    USER,
    VERB,
)
from kaudit_analytics.testing import events_frame
from tests.paths import FIXTURES, POLICIES, POLICY_FILES

pytestmark = pytest.mark.slow

SEGMENTS = [
    "pods",
    "secrets",
    "namespaces",
    "deployments",
    "a",
    "kube-system",
    "status",
    "finalize",
    "log",
    "exec",
    "scale",
    "proxy",
    "watch",
    "*",
    "default",
    "x",
    "",
]
GROUPS_VOCAB = ["apps", "rbac.authorization.k8s.io", "metrics.k8s.io"]
VERBS = [
    "get",
    "list",
    "watch",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "post",
    "put",
    "",
]
USERS = [None, "", "tim", "system:kube-proxy", "system:serviceaccount:kube-system:x"]
GROUP_NAMES = ["system:authenticated", "system:serviceaccounts", "humans", "system:nodes"]
NON_RESOURCE = [
    "/healthz",
    "/healthz/etcd",
    "/healthzfoo",
    "/metrics",
    "/logs/a.log",
    "/version",
    "/api",
    "/apis",
    "/apis/apps",
    "/apis/apps/v1",
    "/openapi/v2",
    "/",
    "",
]

segment = st.sampled_from(SEGMENTS) | st.sampled_from(["%2F", "a%41", "b%2fc", "%zz", "%C3%A9"])


@st.composite
def resource_paths(draw: st.DrawFn) -> str:
    prefix = draw(
        st.sampled_from(
            [
                "/api/v1",
                "/api/v1",
                "/apis/apps/v1",
                "/apis/metrics.k8s.io/v1beta1",
                "/apis/rbac.authorization.k8s.io/v1",
                "/apis/x",
            ]
        )
    )
    special = draw(st.sampled_from(["", "", "", "", "/watch", "/proxy"]))
    ns = draw(
        st.sampled_from(
            [
                "",
                "",
                "/namespaces/default",
                "/namespaces/kube-system",
                "/namespaces/status",
                "/namespaces",
                "/namespaces/a/status",
            ]
        )
    )
    steps = [
        st.sampled_from(["pods", "secrets", "deployments", "namespaces", "configmaps", "roles"]),
        st.sampled_from(["s1", "a", "default", "x", "kube-system", "%41"]),
        st.sampled_from(["log", "exec", "status", "scale", "proxy", "finalize"]),
    ]
    rest = [draw(step | segment if i == 0 else step) for i, step in enumerate(steps)]
    rest = rest[: draw(st.integers(0, 3))] + draw(st.lists(segment, max_size=2))
    slash = draw(st.sampled_from(["", "", "", "/", "//"]))
    return prefix + special + ns + "".join("/" + s for s in rest) + slash


field_value = st.sampled_from(
    ["s1", "a", "s1", "a", "..", "a/b", "a%2Fb", "a\\,b", "a=b", "a\\x", "", "x%25"]
)


@st.composite
def queries(draw: st.DrawFn) -> str:
    params = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["sel", "sel", "sel", "limit", "timeoutSeconds", "watch", "version", "other"]
            )
        )
        if kind == "sel":
            terms = [
                draw(st.sampled_from(["metadata.name", "foo", "metadata.name", "spec.nodeName"]))
                + draw(st.sampled_from(["=", "==", "!=", "%3D", "%3D", "%3D%3D", ""]))
                + draw(field_value)
                for _ in range(draw(st.integers(1, 3)))
            ]
            params.append("fieldSelector=" + draw(st.sampled_from([",", "%2C", "\\,"])).join(terms))
        elif kind in ("limit", "timeoutSeconds"):
            params.append(
                kind
                + "="
                + draw(
                    st.sampled_from(
                        [
                            "500",
                            "abc",
                            "",
                            "+5",
                            "-1",
                            "0123",
                            "123456789012345678",
                            "9223372036854775807",
                            "9223372036854775808",
                            "99999999999999999999",
                        ]
                    )
                )
            )
        elif kind == "watch":
            params.append("watch=" + draw(st.sampled_from(["true", "1", "false"])))
        elif kind == "version":
            # What makes every watch URI distinct (the parse is shared across them).
            params.append(
                draw(st.sampled_from(["resourceVersion=", "timeout=", "xtimeout="]))
                + draw(st.sampled_from(["4711", "5m3s", "", "a;b"]))
            )
        else:
            params.append(draw(st.sampled_from(["pretty=true", "x;y=1", "fieldSelector=a%zz"])))
    return ("?" + "&".join(params)) if params else draw(st.sampled_from(["", "?"]))


uris = st.one_of(
    st.builds(lambda p, q: p + q, resource_paths(), queries()),
    st.builds(lambda p, q: p + q, st.sampled_from(NON_RESOURCE), queries()),
)

requests = st.fixed_dictionaries(
    {
        REQUEST_URI: uris,
        VERB: st.sampled_from(VERBS),
        USER: st.sampled_from(USERS),
        GROUPS: st.one_of(st.none(), st.lists(st.sampled_from(GROUP_NAMES), max_size=3)),
        STAGE: st.sampled_from(STAGES),
    }
)

group_resources = st.fixed_dictionaries(
    {"group": st.sampled_from(["", "*", *GROUPS_VOCAB])},
    optional={
        "resources": st.lists(
            st.sampled_from(
                [
                    "pods",
                    "secrets",
                    "namespaces",
                    "deployments",
                    "*",
                    "pods/*",
                    "*/log",
                    "pods/log",
                    "*/status",
                    "deployments/scale",
                    "*/*",
                ]
            ),
            max_size=3,
        ),
        "resourceNames": st.lists(st.sampled_from(["s1", "a", "default", "x", "*"]), max_size=2),
    },
).filter(lambda item: not item.get("resourceNames") or item.get("resources"))

rule_bodies = st.fixed_dictionaries(
    {"level": st.sampled_from(["None", "Metadata", "Request", "RequestResponse"])},
    optional={
        "users": st.lists(st.sampled_from([u for u in USERS if u is not None]), max_size=2),
        "userGroups": st.lists(st.sampled_from(GROUP_NAMES), max_size=2),
        "verbs": st.lists(st.sampled_from(VERBS), max_size=3),
        "omitStages": st.lists(st.sampled_from(STAGES), max_size=2),
        "omitManagedFields": st.booleans(),
    },
)
resource_parts = st.fixed_dictionaries(
    {},
    optional={
        "resources": st.lists(group_resources, max_size=3),
        "namespaces": st.lists(
            st.sampled_from(["", "default", "kube-system", "status", "*"]), max_size=2
        ),
    },
)
url_parts = st.fixed_dictionaries(
    {
        "nonResourceURLs": st.lists(
            st.sampled_from(
                [
                    "*",
                    "/healthz",
                    "/healthz*",
                    "/healthz/*",
                    "/api*",
                    "/apis/apps/v1",
                    "/logs*",
                    "/metrics",
                    "/",
                ]
            ),
            min_size=1,
            max_size=3,
        )
    }
)
rules = st.builds(
    lambda body, part: {**body, **part}, rule_bodies, st.one_of(resource_parts, url_parts)
)
policies = st.builds(
    lambda rs, stages: load_policy(
        yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "rules": rs, "omitStages": stages})
    ),
    st.lists(rules, min_size=1, max_size=8),
    st.lists(st.sampled_from(STAGES), max_size=2),
)

FIXED_POLICY = load_policy(FIXTURES / "policy" / "property_policy.yaml")


def attributes_of(event: dict[str, Any]) -> RequestAttributes:
    """Attributes from the URI, or from objectRef when the source has no URI (documented)."""
    groups = tuple(event[GROUPS] or ())
    if event[REQUEST_URI] is not None:
        info = request_info(event[VERB] or "", event[REQUEST_URI])
        return info.attributes(user=event[USER], groups=groups)
    return RequestAttributes(
        user=event[USER],
        groups=groups,
        verb=event[VERB] or "",
        resource_request=event[RESOURCE] is not None,
        api_group=event[API_GROUP] or "",
        namespace=event[NAMESPACE] or "",
        resource=event[RESOURCE] or "",
        subresource=event[SUBRESOURCE] or "",
        name=event[NAME] or "",
    )


def expected_rows(policy: Policy, events: pl.DataFrame) -> list[tuple[Any, ...]]:
    """The reference, one request at a time (the loop the vectorised form replaces)."""
    rows: list[tuple[str | None, int | None, bool | None]] = []
    for event in events.iter_rows(named=True):
        try:
            attrs = attributes_of(event)
        except ValueError:
            rows.append((None, None, None))
            continue
        cfg = policy.evaluate_request(attrs)
        keeps = cfg.level != "None" and event[STAGE] not in cfg.omit_stages
        rows.append((cfg.level, cfg.rule_index, keeps))
    return rows


def assert_agrees(policy: Policy, events: pl.DataFrame) -> None:
    got = policy.evaluate(events).select(POLICY_LEVEL, POLICY_RULE, POLICY_KEEPS_STAGE).collect()
    want = expected_rows(policy, events)
    for uri, verb, row, expected in zip(
        events[REQUEST_URI], events[VERB], got.iter_rows(), want, strict=True
    ):
        assert row == expected, f"{verb} {uri}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(requests, min_size=1, max_size=40))
@example(
    rows=[{REQUEST_URI: "/api/v1/watch", VERB: "watch", USER: "tim", GROUPS: [], STAGE: "Panic"}]
)
@example(
    rows=[
        {
            REQUEST_URI: "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ds1",
            VERB: "watch",
            USER: "tim",
            GROUPS: None,
            STAGE: "ResponseComplete",
        }
    ]
)
def test_fixed_policy_agrees_on_generated_requests(rows: list[dict[str, Any]]) -> None:
    assert_agrees(FIXED_POLICY, events_frame(rows))


collection_paths = st.sampled_from(
    [
        "/api/v1/namespaces/default/secrets",
        "/api/v1/secrets",
        "/api/v1/namespaces/a/configmaps",
        "/api/v1/watch/namespaces/default/secrets",
        "/apis/apps/v1/namespaces/a/deployments",
    ]
)
selector_requests = st.fixed_dictionaries(
    {
        REQUEST_URI: st.builds(lambda p, q: p + "?" + q.lstrip("?"), collection_paths, queries()),
        VERB: st.sampled_from(["list", "watch"]),
        USER: st.just("tim"),
        GROUPS: st.just(["system:authenticated"]),
        STAGE: st.just("ResponseComplete"),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(selector_requests, min_size=1, max_size=40))
@example(
    rows=[
        {
            REQUEST_URI: "/api/v1/secrets?fieldSelector=metadata.name%21%3Ds1",
            VERB: "list",
            USER: "tim",
            GROUPS: [],
            STAGE: "ResponseComplete",
        }
    ]
)
@example(
    rows=[
        {
            REQUEST_URI: "/api/v1/secrets?fieldSelector=metadata.name%3Da,metadata.name%3Db",
            VERB: "watch",
            USER: "tim",
            GROUPS: [],
            STAGE: "ResponseComplete",
        }
    ]
)
@example(
    rows=[
        {
            REQUEST_URI: "/api/v1/secrets?fieldSelector=metadata.name%3Da%5C%2Cb&limit=5",
            VERB: "list",
            USER: "tim",
            GROUPS: [],
            STAGE: "ResponseComplete",
        }
    ]
)
def test_field_selector_names_agree(rows: list[dict[str, Any]]) -> None:
    """List/watch with field selectors: the name they pin decides resourceNames rules."""
    assert_agrees(FIXED_POLICY, events_frame(rows))


@settings(max_examples=200, deadline=None)
@given(query=queries())
def test_list_query_key_keeps_the_list_name(query: str) -> None:
    """The shortened query a selector is parsed from pins the same name as the query."""
    query = query.removeprefix("?")
    key = pl.select(list_query_key(pl.lit(query))).item()
    assert _list_name(key) == _list_name(query), key


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, rows=st.lists(requests, min_size=1, max_size=30))
def test_generated_policies_agree_on_generated_requests(
    policy: Policy, rows: list[dict[str, Any]]
) -> None:
    assert_agrees(policy, events_frame(rows))


@pytest.fixture(scope="module")
def shared_events(shared_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    files = [f for pattern in ("*.log", "*.json", "*.jsonl") for f in shared_samples.rglob(pattern)]
    lake = tmp_path_factory.mktemp("policy-shared-lake")
    ka.ingest(files, lake)
    return ka.scan(lake).collect()


@pytest.mark.parametrize(
    "policy",
    [FIXED_POLICY, *(load_policy(POLICIES / name) for name in POLICY_FILES)],
    ids=lambda p: p.name,
)
def test_policies_agree_on_real_samples(policy: Policy, shared_events: pl.DataFrame) -> None:
    assert shared_events.height > 500
    assert_agrees(policy, shared_events)


def test_agrees_on_the_bundled_sample_read_lazily(sample_events: pl.LazyFrame) -> None:
    """Straight from the lake's Parquet scan: row order and decisions survive the plan."""
    added = [POLICY_LEVEL, POLICY_RULE, POLICY_KEEPS_STAGE]
    lazy = FIXED_POLICY.evaluate(sample_events).select(REQUEST_URI, *added).collect()
    eager = sample_events.collect()
    assert lazy.select(REQUEST_URI).equals(eager.select(REQUEST_URI))
    assert_agrees(FIXED_POLICY, eager)
    assert lazy.select(added).equals(FIXED_POLICY.evaluate(eager).select(added).collect())
