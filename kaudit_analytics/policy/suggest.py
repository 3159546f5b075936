"""A quieter policy from observed traffic: rank the noise, add rules above a base policy.

Rules added, for the noisiest (user, verb, api_group, resource) groups by bytes under the
base policy:

* reads (get/list/watch) by machine identities → ``None``;
* lease renewals (coordination.k8s.io leases, update/patch) by machines → ``None``;
* other writes by machines that the base logs with bodies → ``Metadata``.

Guardrails: never touch human users (``exprs.IS_HUMAN``), nor writes to RBAC, Secrets,
webhooks or CRDs, nor pods exec/attach/portforward (any verb). The tuned policy is the
new rules followed by the base rules; it must pass lint, and each new rule's comment gives
its estimated savings on the observed traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
import yaml

from kaudit_analytics import exprs
from kaudit_analytics.policy.model import Policy, load_policy
from kaudit_analytics.policy.rules import GroupResources, PolicyRule
from kaudit_analytics.policy.volume import VolumeEstimate, predicted_events
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    CLUSTER,
    RESOURCE,
    SUBRESOURCE,
    USER,
    VERB,
    VERBS,
)

__all__ = ["Suggestion", "policy_yaml", "suggest_policy"]

_READS = tuple(verb for verb in exprs.READ_VERBS if verb in VERBS)
_GUARDED_GROUPS = (
    "rbac.authorization.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
)
_STREAMS = ("exec", "attach", "portforward")


@dataclass(frozen=True)
class Suggestion:
    """A tuned policy and what it changes on the observed traffic."""

    policy: Policy
    yaml: str
    noisiest: pl.DataFrame
    before: VolumeEstimate
    after: VolumeEstimate


def _noisiest(base: Policy, events: pl.LazyFrame, top: int) -> pl.DataFrame:
    keys = [USER, VERB, API_GROUP, RESOURCE, SUBRESOURCE]
    described = events.group_by(CLUSTER, AUDIT_ID).agg(
        *(pl.col(c).first() for c in keys),
        exprs.IS_HUMAN.first().fill_null(value=False).alias("human"),
    )
    per_request = (
        predicted_events(base, events)
        .group_by(CLUSTER, AUDIT_ID)
        .agg(
            pl.len().cast(pl.Int64).alias("events"), pl.col("bytes").sum(), pl.col("level").first()
        )
    )
    return (
        described.join(per_request, on=[CLUSTER, AUDIT_ID])
        .group_by(*keys, "human")
        .agg(pl.col("events").sum(), pl.col("bytes").sum(), pl.col("level").first())
        .sort("bytes", descending=True)
        .head(top)
        .collect()
    )


def _guarded(group: str, resource: str, subresource: str, verb: str) -> bool:
    if subresource in _STREAMS:
        return True
    if verb in _READS:
        return False
    return group in _GUARDED_GROUPS or (group == "" and resource == "secrets")


def _rule_for(row: dict[str, Any]) -> PolicyRule | None:
    group, resource, sub, verb = (
        row[API_GROUP] or "",
        row[RESOURCE],
        row[SUBRESOURCE] or "",
        row[VERB],
    )
    if row["human"] or row[USER] is None or resource is None or row["level"] == "None":
        return None
    if _guarded(group, resource, sub, verb):
        return None
    target = resource + (f"/{sub}" if sub else "")
    scope = (GroupResources(group=group, resources=(target,)),)
    lease = group == "coordination.k8s.io" and resource == "leases" and verb in ("update", "patch")
    if verb in _READS or lease:
        return PolicyRule(level="None", users=(row[USER],), verbs=(verb,), resources=scope)
    if row["level"] in ("Request", "RequestResponse"):
        return PolicyRule(level="Metadata", users=(row[USER],), verbs=(verb,), resources=scope)
    return None


def _rule_dict(rule: PolicyRule) -> dict[str, Any]:
    out: dict[str, Any] = {"level": rule.level}
    for key, value in (
        ("users", rule.users),
        ("userGroups", rule.user_groups),
        ("verbs", rule.verbs),
        ("namespaces", rule.namespaces),
        ("nonResourceURLs", rule.non_resource_urls),
    ):
        if value:
            out[key] = list(value)
    if rule.resources:
        out["resources"] = [
            {
                "group": item.group,
                **({"resources": list(item.resources)} if item.resources else {}),
                **({"resourceNames": list(item.resource_names)} if item.resource_names else {}),
            }
            for item in rule.resources
        ]
    if rule.omit_stages:
        out["omitStages"] = sorted(rule.omit_stages)
    if rule.omit_managed_fields is not None:
        out["omitManagedFields"] = rule.omit_managed_fields
    return out


def policy_yaml(policy: Policy, *, header: str = "", comments: dict[int, str] | None = None) -> str:
    """A policy as ``audit.k8s.io/v1`` YAML, with a comment header and per-rule comments."""
    comments = comments or {}
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += ["apiVersion: audit.k8s.io/v1", "kind: Policy"]
    if policy.omit_stages:
        lines.append(f"omitStages: {sorted(policy.omit_stages)}".replace("'", '"'))
    if policy.omit_managed_fields:
        lines.append("omitManagedFields: true")
    lines.append("rules:")
    for index, rule in enumerate(policy.rules):
        if index in comments:
            lines += [f"  # {line}" for line in comments[index].splitlines()]
        text = yaml.safe_dump(
            [_rule_dict(rule)], default_flow_style=None, sort_keys=False, width=96
        )
        lines += ["  " + line for line in text.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def suggest_policy(base: Policy, events: pl.LazyFrame, *, top: int = 15) -> Suggestion:
    """See ``kaudit_analytics.policy.suggest``."""
    noisiest = _noisiest(base, events, top)
    added: list[PolicyRule] = []
    for row in noisiest.iter_rows(named=True):  # at most ``top`` groups, not events
        rule = _rule_for(row)
        if rule is not None and rule not in added:
            added.append(rule)
    tuned = Policy(
        rules=(*added, *base.rules),
        omit_stages=base.omit_stages | {"RequestReceived"},
        omit_managed_fields=True,
        name="tuned",
    )
    before = base.estimate_volume(events)
    after = tuned.estimate_volume(events)
    saved = _savings(base, tuned, events, len(added))
    comments = {
        index: (
            f"kaudit suggest: saves ~{saved.get(index, (0, 0))[0]:,} events and "
            f"~{saved.get(index, (0, 0))[1] / 1e6:,.2f} MB on the observed traffic"
        )
        for index in range(len(added))
    }
    if added:
        comments[len(added)] = f"Rules of the base policy ({base.name}) follow."
    header = (
        f"Tuned by kaudit policy suggest from {base.name}: {len(added)} rule(s) added on top.\n"
        f"Observed traffic: {before.events:,} events, {before.bytes / 1e6:,.1f} MB "
        "under the base;\n"
        f"this policy: {after.events:,} events, {after.bytes / 1e6:,.1f} MB "
        f"({_percent(after.bytes, before.bytes)})."
    )
    text = policy_yaml(tuned, header=header, comments=comments)
    return Suggestion(
        policy=load_policy(text), yaml=text, noisiest=noisiest, before=before, after=after
    )


def _percent(new: int, old: int) -> str:
    return f"{(new - old) / old * 100:+.1f} %" if old else "n/a"


def _savings(
    base: Policy, tuned: Policy, events: pl.LazyFrame, added: int
) -> dict[int, tuple[int, int]]:
    """Events and bytes each added rule saves: the base's output for the requests it now
    decides, minus the tuned policy's output for them."""
    keys = [CLUSTER, AUDIT_ID]

    def per_request(policy: Policy, name: str) -> pl.LazyFrame:
        return (
            predicted_events(policy, events)
            .group_by(keys)
            .agg(
                pl.len().cast(pl.Int64).alias(f"events_{name}"),
                pl.col("bytes").sum().alias(f"bytes_{name}"),
                pl.col("rule").first().alias(f"rule_{name}"),
            )
        )

    decided = tuned.evaluate(events).group_by(keys).agg(pl.col("policy_rule").first().alias("rule"))
    frame = (
        decided.filter(pl.col("rule") < added)
        .join(per_request(base, "base"), on=keys, how="left")
        .join(per_request(tuned, "tuned"), on=keys, how="left")
        .group_by("rule")
        .agg(
            (pl.col("events_base").fill_null(0) - pl.col("events_tuned").fill_null(0))
            .sum()
            .alias("events"),
            (pl.col("bytes_base").fill_null(0) - pl.col("bytes_tuned").fill_null(0))
            .sum()
            .alias("bytes"),
        )
        .collect()
    )
    return {
        row["rule"]: (int(row["events"]), int(row["bytes"])) for row in frame.iter_rows(named=True)
    }
