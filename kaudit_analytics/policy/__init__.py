"""Kubernetes audit policies with the kube-apiserver's exact semantics.

Load an ``audit.k8s.io/v1`` Policy (validated as the apiserver validates it), decide what
it logs for one request (``Policy.evaluate_request``) or for a whole events table
(``Policy.evaluate``, one polars expression chain), and estimate what it would write
(``Policy.estimate_volume``). The rules are the apiserver's, read from
``staging/src/k8s.io/apiserver/pkg/audit/policy/checker.go`` and
``pkg/endpoints/request/requestinfo.go``: first match wins, level ``None`` when no rule
matches, omitStages is the union of the rule's and the policy's, and a rule's
``omitManagedFields`` (even ``false``) overrides the policy's.

Examples
--------
>>> from kaudit_analytics.policy import RequestAttributes, load_policy
>>> policy = load_policy('''
... apiVersion: audit.k8s.io/v1
... kind: Policy
... omitStages: [RequestReceived]
... rules:
... - level: None
...   users: ["system:kube-proxy"]
... - level: Metadata
...   resources: [{group: "", resources: ["secrets"]}]
... - level: Request
... ''')
>>> cfg = policy.evaluate_request(
...     RequestAttributes(user="tim", verb="get", namespace="default", resource="secrets", name="s")
... )
>>> cfg.level, cfg.rule_index, sorted(cfg.omit_stages)
('Metadata', 1, ['RequestReceived'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from kaudit_analytics.policy.cost import (
    COMPARE_SCHEMA,
    DIFF_SCHEMA,
    PRICE_COLUMNS,
    PRICES,
    Costs,
    Price,
    Retention,
    compare_policies,
    costs,
    diff_policies,
    load_prices,
    observed_hours,
    price,
    retention_hours,
)
from kaudit_analytics.policy.evaluate import POLICY_KEEPS_STAGE, POLICY_LEVEL, POLICY_RULE
from kaudit_analytics.policy.lint import Finding, lint_policy
from kaudit_analytics.policy.model import (
    CATALOG,
    Policy,
    catalog_policy,
    catalog_source,
    load_policy,
    policy_from,
)
from kaudit_analytics.policy.requestinfo import parse_request_info
from kaudit_analytics.policy.rules import (
    AuditConfig,
    GroupResources,
    PolicyError,
    PolicyRule,
    PolicyWarning,
    RequestAttributes,
    RequestInfo,
)
from kaudit_analytics.policy.suggest import (
    MOVES,
    Move,
    Requirement,
    Suggestion,
    fix_base,
    policy_yaml,
    suggest_policy,
)
from kaudit_analytics.policy.traffic import (
    MixedPoliciesError,
    Span,
    checked_traffic,
    observed_span,
    policy_conflicts,
)
from kaudit_analytics.policy.volume import VolumeEstimate, estimate_volumes

__all__ = [
    "CATALOG",
    "COMPARE_SCHEMA",
    "DIFF_SCHEMA",
    "FINDINGS_SCHEMA",
    "MOVES",
    "POLICY_KEEPS_STAGE",
    "POLICY_LEVEL",
    "POLICY_RULE",
    "PRICES",
    "PRICE_COLUMNS",
    "AuditConfig",
    "Costs",
    "Finding",
    "GroupResources",
    "MixedPoliciesError",
    "Move",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "PolicyWarning",
    "Price",
    "RequestAttributes",
    "RequestInfo",
    "Requirement",
    "Retention",
    "Span",
    "Suggestion",
    "VolumeEstimate",
    "catalog_frame",
    "catalog_policy",
    "checked_traffic",
    "compare",
    "costs",
    "diff",
    "estimate_volumes",
    "fix_base",
    "lint",
    "lint_frame",
    "load_policy",
    "load_prices",
    "observed_hours",
    "observed_span",
    "policy_conflicts",
    "policy_from",
    "policy_yaml",
    "price",
    "request_info",
    "retention_hours",
    "suggest",
]


def request_info(
    verb: str = "", request_uri: str = "/", *, method: str | None = None
) -> RequestInfo:
    """Parse a request URI the way the apiserver's ``RequestInfoFactory`` does.

    Parameters
    ----------
    verb
        The verb the audit event records (``event.verb``): the Kubernetes verb for a
        resource request, the lower-cased HTTP method otherwise. Taken as is.
    request_uri
        ``event.requestURI`` (path and query).
    method
        Give the HTTP method instead of ``verb`` to have the verb derived as the apiserver
        derives it (GET on a collection is list or watch, DELETE on one deletecollection).

    Raises
    ------
    ValueError
        For ``/api/v1/watch`` or ``/api/v1/proxy`` with nothing after it, which the
        apiserver refuses before auditing.

    Examples
    --------
    >>> from kaudit_analytics.policy import request_info
    >>> info = request_info("get", "/api/v1/namespaces/default/pods/nginx?pretty=true")
    >>> info.is_resource_request, info.namespace, info.resource, info.name
    (True, 'default', 'pods', 'nginx')
    >>> uri = "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ds&watch=1"
    >>> request_info(method="GET", request_uri=uri).verb
    'watch'
    >>> request_info(verb="get", request_uri="/apis/apps/v1").is_resource_request
    False
    """
    return parse_request_info(verb, request_uri, method)


def lint(policy: Policy) -> tuple[Finding, ...]:
    """Findings about a policy: severity, rule index, code and message (errors first).

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy, lint
    >>> findings = lint(catalog_policy("openshift-allrequestbodies"))
    >>> [(f.severity, f.code, f.rule) for f in findings][:1]
    [('error', 'unknown-field', 2)]
    """
    return lint_policy(policy)


FINDINGS_SCHEMA = pl.Schema(
    {
        "policy": pl.String,
        "severity": pl.String,
        "code": pl.String,
        "rule": pl.Int64,
        "field": pl.String,
        "message": pl.String,
    }
)


def lint_frame(policies: Mapping[str, Policy]) -> pl.DataFrame:
    """The lint findings of several policies as one table (``FINDINGS_SCHEMA``).

    ``field`` names what a finding is about: a rule (``rules[3]``), a key inside one
    (``rules[2].resources[4].resource``) or the policy's list of rules (``rules``).

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy, lint_frame
    >>> findings = lint_frame({"gce": catalog_policy("gce")})
    >>> findings.filter(severity="error").select("rule", "field", "code").rows()
    [(14, 'rules[14]', 'sensitive-body')]
    """
    rows = [
        (name, f.severity, f.code, f.rule, f.field, f.message)
        for name, policy in policies.items()
        for f in lint(policy)
    ]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def catalog_frame() -> pl.DataFrame:
    """The bundled policies: name, rules, where each comes from, and its lint errors and
    warnings.

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_frame
    >>> catalog_frame().filter(name="gce").select("rules", "errors").rows()
    [(16, 1)]
    """
    rows = []
    for name in CATALOG:
        policy = catalog_policy(name)
        found = lint(policy)
        rows.append(
            (
                name,
                len(policy.rules),
                sum(f.severity == "error" for f in found),
                sum(f.severity == "warning" for f in found),
                catalog_source(name),
            )
        )
    return pl.DataFrame(
        rows,
        schema={"name": pl.String, "rules": pl.Int64, "errors": pl.Int64,
                "warnings": pl.Int64, "source": pl.String},
        orient="row",
    )  # fmt: skip


def compare(
    policies: Mapping[str, Policy],
    events: pl.LazyFrame | pl.DataFrame,
    *,
    retention: Retention | None = None,
    price: Price | None = None,
) -> pl.DataFrame:
    """Several policies side by side on the same traffic: events, bytes, retention, cost.

    Rates are extrapolated from the span the traffic covers (``observed_seconds``;
    ``extrapolated`` when under a day). See ``kaudit_analytics.policy.cost`` for the
    retention model and the price table.
    """
    return compare_policies(policies, events.lazy(), retention=retention, price=price)


def diff(old: Policy, new: Policy, events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Traffic that changes level (or events, or bytes) from ``old`` to ``new``
    (``DIFF_SCHEMA``; ``target`` is a resource, or the path of a non-resource request)."""
    return diff_policies(old, new, events.lazy())


def suggest(
    events: pl.LazyFrame | pl.DataFrame,
    *,
    base: Policy | None = None,
    top: int = 50,
    requirements: Sequence[Requirement] = (),
) -> Suggestion:
    """A quieter policy for the observed traffic, built on ``base`` (default: cis-minimal).

    The base is made lint-clean first (or refused, ``PolicyError``); the noisiest traffic
    groups (``top``) get the first of ``MOVES`` that applies (machine reads, heartbeats,
    health probes silenced; read bodies and write echoes trimmed; people, Secrets and
    exec/attach/port-forward/proxy never silenced), consolidated into few rules. The result
    passes lint with no errors and logs every probe of every ``requirements`` entry (for
    instance ``kaudit_analytics.compliance.CONTROLS``) the base logs. See
    ``kaudit_analytics.policy.suggest`` for the details.
    """
    return suggest_policy(
        base or catalog_policy("cis-minimal"), events.lazy(), top=top, requirements=requirements
    )
