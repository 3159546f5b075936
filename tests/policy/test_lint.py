"""Lint findings, the bundled catalogue, retention and cost, and suggestions."""

from __future__ import annotations

import math
import warnings
from typing import Any

import polars as pl
import pytest
import yaml

from kaudit_analytics.policy import (
    CATALOG,
    PRICES,
    Policy,
    PolicyError,
    PolicyWarning,
    Retention,
    catalog_policy,
    compare,
    diff,
    lint,
    load_policy,
    retention_hours,
    suggest,
)
from tests.paths import REPO


def policy_of(rules: list[dict[str, Any]], **top: Any) -> Policy:
    doc = {
        "apiVersion": "audit.k8s.io/v1",
        "omitStages": ["RequestReceived"],
        **top,
        "rules": rules,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PolicyWarning)
        return load_policy(yaml.safe_dump(doc))


def codes(policy: Policy, severity: str | None = None) -> set[tuple[str, int | None]]:
    return {(f.code, f.rule) for f in lint(policy) if severity in (None, f.severity)}


CATCH_ALL = {"level": "Metadata"}

# (rules, a finding that must be there, as (severity, code, rule))
LINT_CASES = [
    ([{"level": "RequestResponse"}], ("error", "sensitive-body", 0)),
    (
        [{"level": "Request", "resources": [{"resources": ["secrets"]}]}, CATCH_ALL],
        ("error", "sensitive-body", 0),
    ),
    (
        [{"level": "Request", "resources": [{"resources": ["configmaps"]}]}, CATCH_ALL],
        ("warning", "sensitive-body", 0),
    ),
    (
        [
            {
                "level": "Request",
                "resources": [{"group": "authentication.k8s.io", "resources": ["tokenreviews"]}],
            },
            CATCH_ALL,
        ],
        ("error", "sensitive-body", 0),
    ),
    (
        [{"level": "None", "resources": [{"resources": ["secrets"]}]}, CATCH_ALL],
        ("error", "cis-coverage", 0),
    ),
    (
        [{"level": "None", "resources": [{"resources": ["pods/*"]}]}, CATCH_ALL],
        ("error", "cis-coverage", 0),
    ),
    (
        [{"level": "Metadata", "resources": [{"resources": ["secrets"]}]}],
        ("error", "cis-coverage", None),
    ),
    (
        [
            {
                "level": "Metadata",
                "verbs": ["create"],
                "resources": [{"resources": ["pods/exec", "pods/attach"]}],
            },
            CATCH_ALL,
        ],
        ("warning", "exec-create-only", 0),
    ),
    (
        [
            {"level": "Metadata", "resources": [{"group": "", "resources": ["deployments"]}]},
            CATCH_ALL,
        ],
        ("warning", "wrong-group", 0),
    ),
    (
        [
            {"level": "Metadata", "resources": [{"group": "apps", "resources": ["secrets"]}]},
            CATCH_ALL,
        ],
        ("warning", "wrong-group", 0),
    ),
    (
        [{"level": "Request", "nonResourceURLs": ["/metrics"]}, CATCH_ALL],
        ("warning", "non-resource-level", 0),
    ),
    ([CATCH_ALL, {"level": "None", "users": ["tim"]}], ("warning", "unreachable", 1)),
    (
        [
            {"level": "None", "resources": [{"group": "apps"}]},
            {
                "level": "Metadata",
                "verbs": ["get"],
                "resources": [{"group": "apps", "resources": ["deployments/scale"]}],
            },
            CATCH_ALL,
        ],
        ("warning", "unreachable", 1),
    ),
    (
        [
            {"level": "None", "nonResourceURLs": ["/healthz*"]},
            {"level": "None", "nonResourceURLs": ["/healthz/etcd"]},
            CATCH_ALL,
        ],
        ("warning", "unreachable", 1),
    ),
    ([{"level": "Metadata", "users": ["tim"]}], ("warning", "no-catch-all", None)),
    ([{"level": "Request", "verbs": ["create"]}, CATCH_ALL], ("warning", "managed-fields", 0)),
]


@pytest.mark.parametrize(("rules", "finding"), LINT_CASES)
def test_lint_finds(rules: list[dict[str, Any]], finding: tuple[str, str, int | None]) -> None:
    severity, code, rule = finding
    assert (code, rule) in codes(policy_of(rules), severity)


# Near misses: the same shapes that must NOT be reported.
CLEAN_CASES = [
    (
        [
            {
                "level": "Request",
                "verbs": ["get", "list", "watch"],
                "resources": [{"resources": ["secrets"]}],
            },
            CATCH_ALL,
        ],
        "sensitive-body",
    ),
    (
        [
            {
                "level": "Metadata",
                "verbs": ["create", "get"],
                "resources": [{"resources": ["pods/exec"]}],
            },
            CATCH_ALL,
        ],
        "exec-create-only",
    ),
    (
        [
            {"level": "Metadata", "resources": [{"group": "apps", "resources": ["deployments"]}]},
            CATCH_ALL,
        ],
        "wrong-group",
    ),
    (
        [
            {
                "level": "Metadata",
                "resources": [{"group": "oauth.openshift.io", "resources": ["tokenreviews"]}],
            },
            CATCH_ALL,
        ],
        "wrong-group",
    ),
    (
        [{"level": "None", "users": ["tim"]}, {"level": "None", "userGroups": ["g"]}, CATCH_ALL],
        "unreachable",
    ),
    ([{"level": "None", "users": ["tim"]}, CATCH_ALL], "unreachable"),
    (
        [
            {"level": "None", "resources": [{"resources": ["pods"]}]},
            {"level": "None", "resources": [{"resources": ["pods/log"]}]},
            CATCH_ALL,
        ],
        "unreachable",
    ),
    ([CATCH_ALL], "no-catch-all"),
    (
        [{"level": "Request", "verbs": ["create"], "omitManagedFields": True}, CATCH_ALL],
        "managed-fields",
    ),
]


@pytest.mark.parametrize(("rules", "code"), CLEAN_CASES)
def test_lint_near_misses(rules: list[dict[str, Any]], code: str) -> None:
    assert code not in {c for c, _ in codes(policy_of(rules))}


def test_request_received_and_unknown_fields() -> None:
    text = "apiVersion: audit.k8s.io/v1\nrules:\n- level: Metadata\n  verb: [get]\n"
    with pytest.warns(PolicyWarning):
        policy = load_policy(text)
    found = {(f.severity, f.code, f.rule) for f in lint(policy)}
    assert ("error", "unknown-field", 0) in found
    assert ("warning", "request-received", 0) in found
    message = next(f.message for f in lint(policy) if f.code == "unknown-field")
    assert "did you mean 'verbs'" in message


# Golden: what lint says about each bundled policy (errors and warnings).
CATALOG_LINT = {
    "kubernetes-docs": {("warning", "sensitive-body", 5)},
    "gce": {("error", "sensitive-body", 14)},
    "eks": {("warning", "request-received", 13)},
    "openshift-default": set(),
    "openshift-writerequestbodies": {
        ("error", "sensitive-body", 5),
        ("warning", "sensitive-body", 5),
    },
    "openshift-allrequestbodies": {("error", "unknown-field", 2), ("warning", "sensitive-body", 3)},
    "cis-minimal": set(),
}


@pytest.mark.parametrize("name", CATALOG)
def test_catalogue(name: str) -> None:
    policy = catalog_policy(name)
    assert policy.name == name
    found = {(f.severity, f.code, f.rule) for f in lint(policy) if f.code != "managed-fields"}
    assert found == CATALOG_LINT[name]
    text = REPO / "kaudit_analytics" / "policy" / "catalog" / f"{name}.yaml"
    assert text.read_text(encoding="utf-8").startswith(f"# {name}:")  # provenance header


def test_unknown_catalogue_name() -> None:
    with pytest.raises(PolicyError, match="no bundled policy"):
        catalog_policy("nope")


RETENTION_CASES = [
    (100e6, Retention(100, 9, 0), 10.0),
    (100e6, Retention(0, 9, 0), 10.0),  # 0 MB is lumberjack's 100 MB
    (1e6, Retention(100, 9, 2), 48.0),
    (1e6, Retention(100, 0, 0), math.inf),
    (0.0, Retention(100, 5, 0), math.inf),
]


@pytest.mark.parametrize(("per_hour", "retention", "hours"), RETENTION_CASES)
def test_retention_hours(per_hour: float, retention: Retention, hours: float) -> None:
    assert retention_hours(per_hour, retention) == hours


@pytest.mark.slow
def test_compare_diff_and_suggest(sample_events: pl.LazyFrame) -> None:
    policies = {name: catalog_policy(name) for name in ("gce", "cis-minimal")}
    table = compare(policies, sample_events, price=PRICES["cloudwatch"])
    assert table["policy"].to_list() == ["observed", "gce", "cis-minimal"]
    assert (table["usd_per_month"] > 0).all()
    changed = diff(policies["gce"], policies["cis-minimal"], sample_events)
    assert not changed.is_empty()
    assert (changed["level_old"] != changed["level_new"]).any()

    found = suggest(sample_events, base=catalog_policy("kubernetes-docs"))
    assert found.after.bytes < found.before.bytes
    assert not [f for f in lint(found.policy) if f.severity == "error"]
    assert "Saves ~" in found.yaml
