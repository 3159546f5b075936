"""Lint rules for audit policies: a tuple of same-shaped checks, each ``Policy -> findings``.

Severities: ``error`` (CI should fail: secrets leak into logs, CIS 3.2.2 coverage gaps,
keys the apiserver silently drops), ``warning`` (probably not what was meant),
``info`` (cost hints).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kaudit_analytics.exprs import CHANGE_VERBS
from kaudit_analytics.policy.model import Policy
from kaudit_analytics.policy.probes import CIS_PROBES
from kaudit_analytics.policy.rules import (
    GROUP_RESOURCE_KEYS,
    LEVEL_ORDER,
    POLICY_KEYS,
    RULE_KEYS,
    GroupResources,
    PolicyRule,
    RequestAttributes,
)
from kaudit_analytics.schema import VERBS

__all__ = [
    "CHECKS",
    "Finding",
    "SensitiveProbe",
    "cis_gaps",
    "lint_policy",
    "sensitive_hits",
    "sensitive_probes",
    "subsumes",
]


@dataclass(frozen=True)
class Finding:
    """One lint finding: severity, the rule it is about (``None``: the whole policy) and
    the field it names (``rules[3]``, ``rules[2].resources[4].resource``, ``omitStages``)."""

    severity: str
    code: str
    rule: int | None
    message: str
    field: str = ""

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(
                self, "field", "rules" if self.rule is None else f"rules[{self.rule}]"
            )


Check = Callable[["Policy"], Iterator[Finding]]

_USERS = (
    ("alice@example.com", ("system:authenticated", "developers")),
    ("system:serviceaccount:ci:deployer", ("system:serviceaccounts", "system:authenticated")),
    ("system:node:node-1", ("system:nodes", "system:authenticated")),
    ("system:kube-controller-manager", ("system:authenticated",)),
)
# (group, resource, severity, what leaks, which bodies carry it: request and/or response)
_SENSITIVE = (
    ("", "secrets", "error", "Secret values", True, True),
    ("", "configmaps", "warning", "ConfigMap contents (often credentials)", True, True),
    ("authentication.k8s.io", "tokenreviews", "error", "bearer tokens under review", True, True),
    ("", "serviceaccounts/token", "error", "issued service-account tokens", False, True),
)
#: Verbs lint probes rules with (``deletecollection`` tells nothing ``delete`` does not).
_VERBS = tuple(verb for verb in VERBS if verb != "deletecollection")
_WRITES = (*CHANGE_VERBS, "delete")


#: Where resources live; "extensions" is accepted for what it once served.
_GROUP_OF: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "pods",
            "secrets",
            "configmaps",
            "services",
            "endpoints",
            "nodes",
            "namespaces",
            "serviceaccounts",
            "persistentvolumes",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "limitranges",
            "resourcequotas",
            "bindings",
        ),
        ("",),
    ),
    **dict.fromkeys(("deployments", "replicasets", "daemonsets"), ("apps", "extensions")),
    **dict.fromkeys(("statefulsets", "controllerrevisions"), ("apps",)),
    **dict.fromkeys(("jobs", "cronjobs"), ("batch",)),
    **dict.fromkeys(("ingresses", "networkpolicies"), ("networking.k8s.io", "extensions")),
    **dict.fromkeys(
        ("roles", "rolebindings", "clusterroles", "clusterrolebindings"),
        ("rbac.authorization.k8s.io",),
    ),
    "tokenreviews": ("authentication.k8s.io",),
    **dict.fromkeys(
        ("subjectaccessreviews", "selfsubjectaccessreviews", "localsubjectaccessreviews"),
        ("authorization.k8s.io",),
    ),
    "customresourcedefinitions": ("apiextensions.k8s.io",),
    **dict.fromkeys(
        ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io",),
    ),
    "leases": ("coordination.k8s.io",),
    "endpointslices": ("discovery.k8s.io",),
    "horizontalpodautoscalers": ("autoscaling",),
    "poddisruptionbudgets": ("policy",),
    "podsecuritypolicies": ("policy", "extensions"),
    "certificatesigningrequests": ("certificates.k8s.io",),
    **dict.fromkeys(
        ("storageclasses", "volumeattachments", "csidrivers", "csinodes"), ("storage.k8s.io",)
    ),
    "priorityclasses": ("scheduling.k8s.io",),
    "events": ("", "events.k8s.io"),
}


_KNOWN_GROUPS = frozenset(g for groups in _GROUP_OF.values() for g in groups)


def _probe(
    group: str, resource: str, verb: str, user: tuple[str, tuple[str, ...]], namespace: str
) -> RequestAttributes:
    base, _, sub = resource.partition("/")
    return RequestAttributes(
        user=user[0],
        groups=user[1],
        verb=verb,
        namespace=namespace,
        api_group=group,
        resource=base,
        subresource=sub,
        name="" if verb in ("list", "watch", "create") else "x",
    )


def _leaks(level: str, verb: str, *, in_request: bool, in_response: bool) -> bool:
    """A body holding the secret is written: request bodies of writes at Request and
    above, response bodies at RequestResponse."""
    if in_response and level == "RequestResponse":
        return True
    return in_request and verb in _WRITES and LEVEL_ORDER[level] >= LEVEL_ORDER["Request"]


@dataclass(frozen=True)
class SensitiveProbe:
    """A request lint's sensitive-body check evaluates, and what its bodies would leak."""

    attributes: RequestAttributes
    group: str
    resource: str
    severity: str
    what: str
    in_request: bool
    in_response: bool

    def leaks(self, level: str) -> bool:
        """Whether a rule at ``level`` writes a body that holds the secret."""
        return _leaks(
            level,
            self.attributes.verb,
            in_request=self.in_request,
            in_response=self.in_response,
        )


def sensitive_probes() -> Iterator[SensitiveProbe]:
    """Every request the sensitive-body check evaluates (users × verbs × namespaces)."""
    for group, resource, severity, what, in_request, in_response in _SENSITIVE:
        for user in _USERS:
            for verb in _VERBS:
                for namespace in ("default", "kube-system", ""):
                    attrs = _probe(group, resource, verb, user, namespace)
                    yield SensitiveProbe(
                        attrs, group, resource, severity, what, in_request, in_response
                    )


_SENSITIVE_PROBES = tuple(sensitive_probes())


def sensitive_hits(policy: Policy) -> dict[int, list[tuple[str, str, str, str, set[str]]]]:
    """Per rule index, the sensitive resources whose bodies it writes:
    (group, resource, severity, what leaks, verbs)."""
    found: dict[tuple[int, str, str, str, str], set[str]] = {}
    for probe in _SENSITIVE_PROBES:
        cfg = policy.evaluate_request(probe.attributes)
        if cfg.rule_index is not None and probe.leaks(cfg.level):
            key = (cfg.rule_index, probe.group, probe.resource, probe.severity, probe.what)
            found.setdefault(key, set()).add(probe.attributes.verb)
    hits: dict[int, list[tuple[str, str, str, str, set[str]]]] = {}
    for (index, *rest), verbs in found.items():
        hits.setdefault(index, []).append((*rest, verbs))  # type: ignore[arg-type]
    return hits


def sensitive_bodies(policy: Policy) -> Iterator[Finding]:
    """Secrets, ConfigMaps, TokenReviews and tokens whose bodies reach the log (CIS 3.2.2)."""
    for index, found in sorted(sensitive_hits(policy).items()):
        for _, resource, severity, what, verbs in found:
            yield Finding(
                severity,
                "sensitive-body",
                index,
                f"logs {resource} bodies ({policy.rules[index].level}, verbs "
                f"{', '.join(sorted(verbs))}): {what} end up in the audit log; "
                "CIS 3.2.2 asks for Metadata",
            )


def cis_gaps(policy: Policy) -> Iterator[tuple[str, RequestAttributes, int | None, bool]]:
    """CIS 3.2.2 probes the policy falls short on: (label, probe, deciding rule, whether it
    is logged at all (False) or only on Panic (True))."""
    for label, attrs in CIS_PROBES:
        cfg = policy.evaluate_request(attrs)
        if cfg.level == "None":
            yield label, attrs, cfg.rule_index, False
        elif {"ResponseComplete", "ResponseStarted", "RequestReceived"} <= cfg.omit_stages:
            yield label, attrs, cfg.rule_index, True


def cis_coverage(policy: Policy) -> Iterator[Finding]:
    """CIS 3.2.2 probes (secrets, pod and deployment changes, exec, port-forward, proxy)."""
    for label, _, index, panic_only in cis_gaps(policy):
        if panic_only:
            message = f"CIS 3.2.2: '{label}' is logged only on Panic (every other stage omitted)"
        else:
            where = f"rule {index} drops it" if index is not None else "no rule matches it"
            message = f"CIS 3.2.2: '{label}' is not logged ({where})"
        yield Finding("error", "cis-coverage", index, message)


_STREAMS = ("pods/exec", "pods/attach", "pods/portforward")


def exec_verbs(policy: Policy) -> Iterator[Finding]:
    """exec/attach/portforward matched only for ``create`` (WebSocket exec is a ``get``)."""
    for index, rule in enumerate(policy.rules):
        names = {res for item in rule.resources for res in item.resources}
        streams = sorted(names & {*_STREAMS, "pods/*", "*/exec", "*/attach", "*/portforward"})
        if streams and rule.verbs and "create" in rule.verbs and "get" not in rule.verbs:
            yield Finding(
                "warning",
                "exec-create-only",
                index,
                f"matches {', '.join(streams)} only for 'create': kubectl over WebSocket "
                "is audited as 'get' and escapes this rule; add 'get'",
            )


def wrong_groups(policy: Policy) -> Iterator[Finding]:
    """Resources listed under an API group that does not serve them (never match)."""
    for index, rule in enumerate(policy.rules):
        for item in rule.resources:
            if item.group == "*":
                continue
            for res in item.resources:
                base = res.partition("/")[0]
                groups = _GROUP_OF.get(base)
                if groups is not None and item.group not in groups and _builtin(item.group):
                    shown = '"" (core)' if item.group == "" else item.group
                    yield Finding(
                        "warning",
                        "wrong-group",
                        index,
                        f"'{res}' is served by group {groups[0] or 'core'!r}, not {shown}: "
                        "this entry never matches",
                    )


def _builtin(group: str) -> bool:
    return group in _KNOWN_GROUPS


def unknown_fields(policy: Policy) -> Iterator[Finding]:
    """Keys the apiserver silently drops (the rule becomes broader than written)."""
    for path in policy.unknown_fields:
        key = path.rsplit(".", 1)[-1]
        known = GROUP_RESOURCE_KEYS if ".resources[" in path and path.count(".") >= 2 else RULE_KEYS
        if not path.startswith("rules["):
            known = POLICY_KEYS
        guess = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        index = int(path[6 : path.index("]")]) if path.startswith("rules[") else None
        yield Finding(
            "error",
            "unknown-field",
            index,
            f"'{path}' is not a policy field: the apiserver ignores it{hint}",
            field=path,
        )


def non_resource_levels(policy: Policy) -> Iterator[Finding]:
    """Request/RequestResponse on nonResourceURLs: there is no body to log."""
    for index, rule in enumerate(policy.rules):
        if rule.non_resource_urls and LEVEL_ORDER[rule.level] > LEVEL_ORDER["Metadata"]:
            yield Finding(
                "warning",
                "non-resource-level",
                index,
                f"level {rule.level} on nonResourceURLs has the effect of Metadata",
            )


def _covers(wide: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    """Every request allowed by ``narrow`` is allowed by ``wide`` (empty = anything)."""
    return not wide or (bool(narrow) and set(narrow) <= set(wide))


def _pattern_covers(wide: str, narrow: str) -> bool:
    if wide in ("*", narrow):
        return True
    base, _, sub = narrow.partition("/")
    if wide.endswith("/*") and base == wide[:-2]:
        return True
    return wide.startswith("*/") and sub != "" and sub == wide[2:]


def _item_covers(wide: GroupResources, narrow: GroupResources) -> bool:
    if wide.group not in ("*", narrow.group):
        return False
    if not wide.resources:
        return True
    if not narrow.resources or not _covers(wide.resource_names, narrow.resource_names):
        return False
    return all(any(_pattern_covers(w, n) for w in wide.resources) for n in narrow.resources)


def _url_covers(wide: str, narrow: str) -> bool:
    return wide in ("*", narrow) or (wide.endswith("*") and narrow.startswith(wide.rstrip("*")))


def _kind(rule: PolicyRule) -> str:
    if rule.resources or rule.namespaces:
        return "resource"
    return "url" if rule.non_resource_urls else "any"


def _who_covers(wide: PolicyRule, narrow: PolicyRule) -> bool:
    if not (_covers(wide.users, narrow.users) and _covers(wide.verbs, narrow.verbs)):
        return False
    if wide.user_groups and not (
        narrow.user_groups and set(narrow.user_groups) <= set(wide.user_groups)
    ):
        return False
    # A nil user fails a rule with users or groups; ``narrow`` must exclude it too.
    return not (wide.users or wide.user_groups) or bool(narrow.users or narrow.user_groups)


def _what_covers(wide: PolicyRule, narrow: PolicyRule) -> bool:
    if _kind(wide) == "url":
        return all(
            any(_url_covers(w, n) for w in wide.non_resource_urls) for n in narrow.non_resource_urls
        )
    if not _covers(wide.namespaces, narrow.namespaces):
        return False
    return not wide.resources or (
        bool(narrow.resources)
        and all(any(_item_covers(w, n) for w in wide.resources) for n in narrow.resources)
    )


def subsumes(wide: PolicyRule, narrow: PolicyRule) -> bool:
    """Every request ``narrow`` matches is matched by ``wide`` (a sufficient test)."""
    if not _who_covers(wide, narrow):
        return False
    if _kind(wide) == "any":
        return True
    return _kind(wide) == _kind(narrow) and _what_covers(wide, narrow)


def shadowed_rules(policy: Policy) -> Iterator[Finding]:
    """Rules an earlier rule always matches first (unreachable)."""
    for index, rule in enumerate(policy.rules):
        for earlier in range(index):
            if subsumes(policy.rules[earlier], rule):
                yield Finding(
                    "warning",
                    "unreachable",
                    index,
                    f"never used: rule {earlier} ({policy.rules[earlier].level}) matches every "
                    "request this rule matches",
                )
                break


def catch_all(policy: Policy) -> Iterator[Finding]:
    """No final rule without selectors: unmatched requests are silently not audited."""
    last = policy.rules[-1]
    if any(
        (
            last.users,
            last.user_groups,
            last.verbs,
            last.resources,
            last.namespaces,
            last.non_resource_urls,
        )
    ):
        yield Finding(
            "warning",
            "no-catch-all",
            None,
            "no catch-all rule at the end: requests no rule matches are not audited at all",
            field=f"rules[{len(policy.rules) - 1}]",
        )


def request_received(policy: Policy) -> Iterator[Finding]:
    """RequestReceived kept: every request is written twice (or three times)."""
    if "RequestReceived" in policy.omit_stages:
        return
    for index, rule in enumerate(policy.rules):
        if rule.level != "None" and "RequestReceived" not in rule.omit_stages:
            yield Finding(
                "warning",
                "request-received",
                index,
                "RequestReceived is not omitted: each request is logged again before it is "
                "served; add 'omitStages: [RequestReceived]' to the policy",
            )


def managed_fields(policy: Policy) -> Iterator[Finding]:
    """Bodies logged with metadata.managedFields (often half of an object's size)."""
    for index, rule in enumerate(policy.rules):
        omitted = (
            policy.omit_managed_fields
            if rule.omit_managed_fields is None
            else rule.omit_managed_fields
        )
        if (
            LEVEL_ORDER[rule.level] >= LEVEL_ORDER["Request"]
            and not omitted
            and not rule.non_resource_urls
        ):
            yield Finding(
                "warning",
                "managed-fields",
                index,
                f"logs bodies ({rule.level}) with managedFields: set 'omitManagedFields: true'",
            )


CHECKS: tuple[Check, ...] = (
    unknown_fields,
    sensitive_bodies,
    cis_coverage,
    exec_verbs,
    wrong_groups,
    non_resource_levels,
    shadowed_rules,
    catch_all,
    request_received,
    managed_fields,
)

_ORDER = {"error": 0, "warning": 1, "info": 2}


def lint_policy(policy: Policy) -> tuple[Finding, ...]:
    """Every finding of every check, errors first, then by rule."""
    found = [finding for check in CHECKS for finding in check(policy)]
    return tuple(
        sorted(found, key=lambda f: (_ORDER[f.severity], -1 if f.rule is None else f.rule, f.code))
    )
