"""``suggest``: lint-clean from any base, consolidated, supportable controls kept, half the log."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics.compliance import CONTROLS, policy_coverage
from kaudit_analytics.policy import (
    CATALOG,
    MOVES,
    Policy,
    PolicyError,
    RequestAttributes,
    Suggestion,
    catalog_policy,
    fix_base,
    lint,
    load_policy,
    suggest,
)
from kaudit_analytics.policy.lint import subsumes
from tests.paths import CAPTURES

_SUGGESTIONS: dict[str, Suggestion] = {}


def suggested(base: str, events: pl.LazyFrame) -> Suggestion:
    if base not in _SUGGESTIONS:
        _SUGGESTIONS[base] = suggest(events, base=catalog_policy(base), requirements=CONTROLS)
    return _SUGGESTIONS[base]


def errors(policy: Policy) -> list[str]:
    return [f"{f.code} {f.field}: {f.message}" for f in lint(policy) if f.severity == "error"]


def full_controls(policy: Policy) -> set[str]:
    return {c.control for c in policy_coverage(policy) if c.support == "full"}


def added_rules(found: Suggestion) -> list[int]:
    return [
        row["rule"]
        for row in found.rules.iter_rows(named=True)
        if row["origin"].startswith("added")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("base", CATALOG)
def test_every_bundled_base_gives_a_lint_clean_policy_that_keeps_its_controls(
    base: str, sample_events: pl.LazyFrame
) -> None:
    found = suggested(base, sample_events)
    assert errors(found.policy) == []
    assert full_controls(catalog_policy(base)) <= full_controls(found.policy)
    assert set(found.kept) == full_controls(fix_base(catalog_policy(base))[0])
    assert not [f for f in lint(found.policy) if f.code == "unreachable"]
    assert found.after.bytes < found.before.bytes


@pytest.mark.slow
def test_the_docs_example_is_cut_by_half_on_the_sample(sample_events: pl.LazyFrame) -> None:
    found = suggested("kubernetes-docs", sample_events)
    assert found.saved_share >= 0.5
    assert found.fixes == ()
    assert len(found.kept) >= 20


def test_before_and_after_per_rule_add_up(sample_events: pl.LazyFrame) -> None:
    found = suggested("kubernetes-docs", sample_events)
    rules = found.rules
    assert rules["rule"].to_list() == list(range(len(found.policy.rules)))
    assert int(rules["bytes_before"].sum()) == found.before.bytes
    assert int(rules["bytes_after"].sum()) == found.after.bytes
    assert int(rules["events_after"].sum()) == found.after.events
    for index in added_rules(found):
        row = rules.row(index, named=True)
        assert row["why"] in {move.why for move in MOVES}
        assert row["saved_bytes"] >= 0
        assert f"# kaudit suggest ({row['origin'][7:-1]})" in found.yaml


def test_rules_are_consolidated(sample_events: pl.LazyFrame) -> None:
    found = suggested("kubernetes-docs", sample_events)
    added = [found.policy.rules[i] for i in added_rules(found)]
    # A user's verbs on the same resources are one rule, not one rule per verb …
    by_who_what = Counter(
        (r.level, r.users, r.user_groups, r.resources, r.non_resource_urls) for r in added
    )
    assert max(by_who_what.values()) == 1
    # … the users doing the same thing are one rule …
    by_action = Counter((r.level, r.verbs, r.resources, r.non_resource_urls) for r in added)
    assert max(by_action.values()) == 1
    # … and every member of system:nodes seen is listed: the group stands for them.
    assert any(r.user_groups == ("system:nodes",) for r in added)
    leases = [r for r in added if any("leases" in item.resources for item in r.resources)]
    assert any({"get", "update"} <= set(r.verbs) for r in leases)
    # No rule is shadowed by an earlier one.
    rules = found.policy.rules
    assert not any(subsumes(rules[i], rules[j]) for j in range(len(rules)) for i in range(j))


HUMAN = ("alice@example.com", ("system:authenticated", "developers"))
NODE = (
    "system:node:ip-10-0-16-10.eu-west-1.compute.internal",
    ("system:nodes", "system:authenticated"),
)
SA = (
    "system:serviceaccount:argocd:argocd-application-controller",
    ("system:serviceaccounts", "system:authenticated"),
)


def _attrs(
    who: tuple[str, tuple[str, ...]],
    verb: str,
    resource: str,
    *,
    namespace: str = "",
    name: str = "",
    subresource: str = "",
) -> RequestAttributes:
    return RequestAttributes(
        user=who[0],
        groups=who[1],
        verb=verb,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


@pytest.mark.parametrize(
    "attrs",
    [
        _attrs(HUMAN, "get", "pods", namespace="default", name="web"),
        _attrs(HUMAN, "delete", "pods", namespace="default", name="web"),
        _attrs(NODE, "get", "secrets", namespace="default", name="token"),
        _attrs(SA, "list", "secrets", namespace="argocd"),
        _attrs(NODE, "get", "pods", subresource="exec", namespace="default", name="web"),
        _attrs(SA, "create", "pods", subresource="portforward", namespace="argocd", name="a"),
        _attrs(SA, "get", "services", subresource="proxy", namespace="argocd", name="a"),
    ],
    ids=[
        "human read",
        "human write",
        "node secret read",
        "sa secret list",
        "exec",
        "port-forward",
        "proxy",
    ],
)
def test_people_secrets_and_streams_are_never_silenced(
    attrs: RequestAttributes, sample_events: pl.LazyFrame
) -> None:
    for base in ("kubernetes-docs", "cis-minimal"):
        found = suggested(base, sample_events)
        before = catalog_policy(base).evaluate_request(attrs)
        after = found.policy.evaluate_request(attrs)
        if before.level != "None":
            assert after.level != "None", (base, after.rule_index)


def test_bases_that_fail_lint_are_fixed_first() -> None:
    for name in ("gce", "openshift-writerequestbodies", "openshift-allrequestbodies"):
        assert errors(catalog_policy(name))
        fixed, fixes = fix_base(catalog_policy(name))
        assert errors(fixed) == []
        assert fixes
    dropped = load_policy(
        "apiVersion: audit.k8s.io/v1\nomitStages: [RequestReceived]\nrules:\n"
        "- {level: None, verbs: [get, list, watch]}\n"
        "- {level: RequestResponse}\n"
    )
    fixed, fixes = fix_base(dropped)
    assert errors(fixed) == []
    assert any("cis-coverage" in fix for fix in fixes)
    assert any("sensitive-body" in fix for fix in fixes)
    # Reads are still dropped but for what CIS needs; secrets are logged at Metadata.
    reader = _attrs(HUMAN, "get", "configmaps", namespace="default", name="a")
    assert fixed.evaluate_request(reader).level == "None"
    secret = fixed.evaluate_request(_attrs(HUMAN, "get", "secrets", namespace="default", name="a"))
    assert secret.level == "Metadata"


def test_a_base_that_cannot_be_fixed_is_refused(sample_events: pl.LazyFrame) -> None:
    panic_only = load_policy(
        "apiVersion: audit.k8s.io/v1\n"
        "omitStages: [RequestReceived, ResponseStarted, ResponseComplete]\n"
        "rules: [{level: Metadata}]\n"
    )
    with pytest.raises(PolicyError, match="omits every stage but Panic"):
        suggest(sample_events, base=panic_only)


@dataclasses.dataclass(frozen=True)
class _Needs:
    """A requirement of the caller's own (a ``Requirement`` by shape, not by import)."""

    id: str
    level: str
    stages: tuple[str, ...]
    probes: tuple[RequestAttributes, ...]


@pytest.mark.slow
def test_callers_requirements_are_kept(sample_events: pl.LazyFrame) -> None:
    heartbeat = RequestAttributes(
        user="system:kube-scheduler",
        verb="update",
        api_group="coordination.k8s.io",
        resource="leases",
        namespace="kube-system",
        name="kube-scheduler",
    )
    base = catalog_policy("kubernetes-docs")
    free = suggest(sample_events, base=base)
    assert free.policy.evaluate_request(heartbeat).level == "None"
    needs = _Needs("scheduler-heartbeat", "Metadata", ("ResponseComplete",), (heartbeat,))
    kept = suggest(sample_events, base=base, requirements=[needs])
    assert kept.policy.evaluate_request(heartbeat).level == "Metadata"
    assert kept.kept == ("scheduler-heartbeat",)
    row = kept.noisiest.filter(
        pl.col("target") == "leases.coordination.k8s.io", pl.col("verb") == "update"
    )
    assert row["action"][0].endswith("(2 of 3 users)")  # the scheduler's renewals are kept


@pytest.mark.slow
@pytest.mark.parametrize("name", ["everything", "metadata", "tuned"])
def test_capture_policies_as_base(name: str, tmp_path: Path) -> None:
    folder = CAPTURES / name
    if not folder.is_dir():
        pytest.skip(f"the apiserver captures ({CAPTURES}) are absent on this machine")
    files = [*sorted(folder.glob("audit-*.log")), folder / "audit.log"]
    ka.ingest(files, tmp_path / "lake")
    base = load_policy(folder / "policy.yaml")
    found = suggest(ka.scan(tmp_path / "lake"), base=base, requirements=CONTROLS)
    assert errors(found.policy) == []
    assert full_controls(fix_base(base)[0]) <= full_controls(found.policy)
