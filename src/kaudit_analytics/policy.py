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

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import polars as pl

from kaudit_analytics._policy_cost import (
    PRICES,
    Costs,
    Price,
    Retention,
    compare_policies,
    costs,
    diff_policies,
    observed_hours,
    retention_hours,
)
from kaudit_analytics._policy_eval import (
    ATTR_COLUMNS,
    evaluate_attributes,
    rule_index_expr,
)
from kaudit_analytics._policy_lint import Finding, lint_policy
from kaudit_analytics._policy_load import parse_policy, read_policy_text
from kaudit_analytics._policy_probes import never_logged_probes
from kaudit_analytics._policy_suggest import Suggestion, policy_yaml, suggest_policy
from kaudit_analytics._policy_types import (
    AuditConfig,
    GroupResources,
    PolicyError,
    PolicyRule,
    RequestAttributes,
    RequestInfo,
)
from kaudit_analytics._policy_uri import parse_request_info, with_request_attributes
from kaudit_analytics._policy_volume import VolumeEstimate, estimate_volume
from kaudit_analytics.schema import (
    API_GROUP,
    GROUPS,
    NAME,
    NAMESPACE,
    REQUEST_URI,
    RESOURCE,
    STAGE,
    SUBRESOURCE,
    USER,
    VERB,
)

__all__ = [
    "CATALOG",
    "FINDINGS_SCHEMA",
    "POLICY_KEEPS_STAGE",
    "POLICY_LEVEL",
    "POLICY_RULE",
    "PRICES",
    "AuditConfig",
    "Costs",
    "Finding",
    "GroupResources",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "PolicyWarning",
    "Price",
    "RequestAttributes",
    "RequestInfo",
    "Retention",
    "Suggestion",
    "VolumeEstimate",
    "catalog_policy",
    "compare",
    "costs",
    "diff",
    "lint",
    "lint_frame",
    "load_policy",
    "observed_hours",
    "policy_yaml",
    "request_info",
    "retention_hours",
    "suggest",
]

#: The bundled platform policies (``data/policies/<name>.yaml``; provenance in each file).
CATALOG: tuple[str, ...] = (
    "kubernetes-docs",
    "gce",
    "eks",
    "openshift-default",
    "openshift-writerequestbodies",
    "openshift-allrequestbodies",
    "cis-minimal",
)

_GROUPS_KEY = "__policy_groups_key"
_REF_KEY = "__policy_ref_key"

#: Columns ``Policy.evaluate`` adds to the events table.
POLICY_LEVEL = "policy_level"
POLICY_RULE = "policy_rule"
POLICY_KEEPS_STAGE = "policy_keeps_stage"


class PolicyWarning(UserWarning):
    """The apiserver loads the policy but drops part of it (unknown or misspelled keys)."""


@dataclass(frozen=True)
class Policy:
    """A loaded audit policy (build it with ``load_policy``).

    Attributes
    ----------
    rules
        The rules, in order.
    omit_stages
        The policy-wide ``omitStages``.
    omit_managed_fields
        The policy-wide ``omitManagedFields`` (rules may override it).
    unknown_fields
        Field paths the apiserver ignores (``rules[2].verb``), for lint.
    name
        Where the policy came from (a file name, a catalogue name or ``<text>``).
    """

    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False
    unknown_fields: tuple[str, ...] = ()
    name: str = "<text>"

    def evaluate_request(self, attributes: RequestAttributes) -> AuditConfig:
        """What the apiserver decides for one request (``EvaluatePolicyRule``).

        Examples
        --------
        >>> from kaudit_analytics.policy import RequestAttributes, load_policy
        >>> policy = load_policy("apiVersion: audit.k8s.io/v1\\nrules: [{level: Metadata}]")
        >>> cfg = policy.evaluate_request(
        ...     RequestAttributes(user=None, verb="get", path="/healthz", resource_request=False)
        ... )
        >>> cfg.level, cfg.rule_index, cfg.omit_managed_fields
        ('Metadata', 0, False)
        """
        return evaluate_attributes(
            self.rules, self.omit_stages, self.omit_managed_fields, attributes
        )

    @cached_property
    def _rule_index(self) -> pl.Expr:
        return rule_index_expr(self.rules)

    @cached_property
    def _level_and_stage(self) -> tuple[pl.Expr, pl.Expr]:
        rule = pl.col(POLICY_RULE)
        level = rule.replace_strict(
            list(range(len(self.rules))),
            [item.level for item in self.rules],
            default=pl.lit("None"),
            return_dtype=pl.String,
        )
        # "index|stage" for every stage a rule omits (its own plus the policy's).
        omitted = [
            f"{index}|{stage}"
            for index, item in enumerate(self.rules)
            for stage in sorted(item.omit_stages | self.omit_stages)
        ]
        rule_stage = pl.concat_str(rule.cast(pl.String), pl.lit("|"), pl.col(STAGE).cast(pl.String))
        keeps = (level != "None") & ~rule_stage.is_in(omitted).fill_null(value=False)
        parse_error = pl.col(ATTR_COLUMNS["parse_error"])
        return (
            pl.when(~parse_error).then(level).alias(POLICY_LEVEL),
            pl.when(~parse_error).then(keeps.fill_null(value=False)).alias(POLICY_KEEPS_STAGE),
        )

    def evaluate(self, events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        """Add ``policy_level``, ``policy_rule`` and ``policy_keeps_stage`` to an events table.

        The attributes come from ``request_uri`` and ``verb`` the way the apiserver reads
        them (not from ``objectRef``, which it fills only after evaluating); rows without a
        ``request_uri`` fall back to the objectRef columns. The rules are matched against
        the authenticated ``user`` and ``groups``, never the impersonated ones. Rows whose
        URI the apiserver would refuse before auditing get nulls.

        Examples
        --------
        >>> import polars as pl
        >>> from kaudit_analytics.policy import load_policy
        >>> from kaudit_analytics._policy_frames import events_frame
        >>> policy = load_policy('''
        ... apiVersion: audit.k8s.io/v1
        ... omitStages: [RequestReceived]
        ... rules:
        ... - {level: None, nonResourceURLs: ["/healthz*"]}
        ... - {level: Metadata}
        ... ''')
        >>> events = events_frame([
        ...     {"verb": "get", "request_uri": "/healthz", "stage": "ResponseComplete"},
        ...     {"verb": "list", "request_uri": "/api/v1/pods", "stage": "ResponseComplete"},
        ...     {"verb": "list", "request_uri": "/api/v1/pods", "stage": "RequestReceived"},
        ... ])
        >>> added = ["policy_level", "policy_rule", "policy_keeps_stage"]
        >>> policy.evaluate(events).select(added).collect()
        shape: (3, 3)
        ┌──────────────┬─────────────┬────────────────────┐
        │ policy_level ┆ policy_rule ┆ policy_keeps_stage │
        │ ---          ┆ ---         ┆ ---                │
        │ str          ┆ i32         ┆ bool               │
        ╞══════════════╪═════════════╪════════════════════╡
        │ None         ┆ 0           ┆ false              │
        │ Metadata     ┆ 1           ┆ true               │
        │ Metadata     ┆ 1           ┆ false              │
        └──────────────┴─────────────┴────────────────────┘
        """
        return self.evaluate_attributes(events).drop(ATTR_COLUMNS.values())

    def evaluate_attributes(self, events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        """``evaluate``, keeping the parsed request attributes as ``__policy_*`` columns.

        For the volume estimate and lint, which need the attributes the policy saw.
        """
        has_uri = pl.col(REQUEST_URI).is_not_null()
        # Rows without a URI (some cloud exports) fall back to the objectRef columns.
        fallback = {
            "resource_request": pl.col(RESOURCE).is_not_null(),
            "parse_error": pl.lit(value=False),
            "path": pl.lit(None, dtype=pl.String),
            "api_group": pl.col(API_GROUP).fill_null(""),
            "namespace": pl.col(NAMESPACE).fill_null(""),
            "resource": pl.col(RESOURCE).fill_null(""),
            "subresource": pl.col(SUBRESOURCE).fill_null(""),
            "name": pl.col(NAME).fill_null(""),
        }
        object_ref = (API_GROUP, RESOURCE, SUBRESOURCE, NAMESPACE, NAME)
        keyed = events.lazy().with_columns(
            pl.col(VERB).fill_null("").alias(ATTR_COLUMNS["verb"]),
            pl.col(USER).alias(ATTR_COLUMNS["user"]),
            pl.col(GROUPS).alias(ATTR_COLUMNS["groups"]),
            pl.col(GROUPS).list.join("\x1f").alias(_GROUPS_KEY),
            pl.when(~has_uri)
            .then(
                pl.concat_str([pl.col(c).fill_null("\x00") for c in object_ref], separator="\x1f")
            )
            .alias(_REF_KEY),
        )
        # A log repeats the same requests (lease renewals, watches, probes): decide each
        # distinct (verb, URI, user, groups) once and join the decision back.
        keys = [ATTR_COLUMNS["verb"], REQUEST_URI, ATTR_COLUMNS["user"], _GROUPS_KEY, _REF_KEY]
        verb = pl.col(ATTR_COLUMNS["verb"])
        rule = pl.when(~pl.col(ATTR_COLUMNS["parse_error"])).then(self._rule_index)
        decided = (
            with_request_attributes(
                keyed.select(*keys, ATTR_COLUMNS["groups"], *object_ref).unique(subset=keys),
                verb,
                pl.col(REQUEST_URI),
                ATTR_COLUMNS,
            )
            .with_columns(
                pl.when(has_uri)
                .then(pl.col(ATTR_COLUMNS[key]))
                .otherwise(expr)
                .alias(ATTR_COLUMNS[key])
                for key, expr in fallback.items()
            )
            .with_columns(rule.alias(POLICY_RULE))
            .select(*keys, *(ATTR_COLUMNS[key] for key in fallback), POLICY_RULE)
        )
        level, keeps = self._level_and_stage
        # Join only the keys and put the decisions next to the input (same row order), so
        # that no input column (bodies, annotations) is gathered through the join.
        decisions = (
            keyed.select(keys)
            .join(decided, on=keys, how="left", nulls_equal=True, maintain_order="left")
            .drop(keys)
        )
        return pl.concat(
            [keyed.drop(_GROUPS_KEY, _REF_KEY), decisions], how="horizontal"
        ).with_columns(level, keeps)

    def estimate_volume(
        self, events: pl.LazyFrame | pl.DataFrame, *, observed_policy: Policy | None = None
    ) -> VolumeEstimate:
        """Replay observed traffic under this policy: the events and bytes it would write.

        Parameters
        ----------
        events
            The events table (what some policy, the observed one, wrote).
        observed_policy
            The policy the events were written under, when known: probe requests it
            dropped but this one logs are listed in ``never_logged`` (a lower bound).

        Returns
        -------
        VolumeEstimate
            Totals, ``by_rule`` (rule × level × stage) and ``by_day``; each byte figure
            is split into exact and modelled parts (see ``_policy_volume``).

        Examples
        --------
        >>> from kaudit_analytics._policy_frames import events_frame
        >>> from kaudit_analytics.policy import load_policy
        >>> events = events_frame([
        ...     {"audit_id": "a", "verb": "get", "request_uri": "/api/v1/namespaces/d/pods/p",
        ...      "stage": "ResponseComplete", "level": "RequestResponse", "user": "tim",
        ...      "code": 200, "event_bytes": 1000, "response_object_bytes": 600},
        ... ])
        >>> policy = load_policy("apiVersion: audit.k8s.io/v1\\nrules: [{level: Metadata}]")
        >>> est = policy.estimate_volume(events)
        >>> est.events, est.bytes, est.exact_bytes
        (2, ...)
        >>> est.by_rule.select("stage", "events", "bytes").rows()
        [('RequestReceived', 1, ...), ('ResponseComplete', 1, 375)]
        """
        never: tuple[str, ...] = ()
        if observed_policy is not None:
            never = never_logged_probes(observed_policy, self)
        return estimate_volume(self, events.lazy(), never_logged=never)


def load_policy(source: str | Path) -> Policy:
    """Load and validate an ``audit.k8s.io/v1`` Policy from a file path or YAML/JSON text.

    Parameters
    ----------
    source
        A path, or the policy text itself (anything with a newline or a ``key: value``).

    Raises
    ------
    PolicyError
        When the kube-apiserver would refuse the policy; the message names the field
        (``rules[0].level: Required value``). Older apiVersions (v1beta1, v1alpha1) are
        refused as today's apiserver refuses them.

    Warns
    -----
    PolicyWarning
        For keys the apiserver silently drops (``verb:`` for ``verbs:``).

    Examples
    --------
    >>> from kaudit_analytics.policy import PolicyError, load_policy
    >>> len(load_policy("apiVersion: audit.k8s.io/v1\\nrules: [{level: Metadata}]").rules)
    1
    >>> try:
    ...     load_policy("apiVersion: audit.k8s.io/v1\\nrules: [{level: metadata}]")
    ... except PolicyError as err:
    ...     print(str(err).split(": supported")[0])
    rules[0].level: Unsupported value: "metadata"
    """
    text, name = read_policy_text(source)
    parsed = parse_policy(text)
    if parsed.unknown_fields:
        warnings.warn(
            PolicyWarning(
                f"{name}: the apiserver ignores unknown field(s) {', '.join(parsed.unknown_fields)}"
            ),
            stacklevel=2,
        )
    return Policy(
        rules=parsed.rules,
        omit_stages=parsed.omit_stages,
        omit_managed_fields=parsed.omit_managed_fields,
        unknown_fields=parsed.unknown_fields,
        name=name,
    )


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


def catalog_policy(name: str) -> Policy:
    """A bundled platform policy by name (see ``CATALOG``); lint reports what it drops.

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy
    >>> catalog_policy("gce").rules[-1].level
    'Metadata'
    """
    if name not in CATALOG:
        msg = f"no bundled policy {name!r}; choose one of {', '.join(CATALOG)}"
        raise PolicyError(msg)
    text = (resources.files("kaudit_analytics") / "data" / "policies" / f"{name}.yaml").read_text(
        encoding="utf-8"
    )
    # Catalogue policies are copied verbatim, slips included; lint reports those.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PolicyWarning)
        policy = load_policy(text)
    return Policy(
        rules=policy.rules,
        omit_stages=policy.omit_stages,
        omit_managed_fields=policy.omit_managed_fields,
        unknown_fields=policy.unknown_fields,
        name=name,
    )


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
        "message": pl.String,
    }
)


def lint_frame(policies: Mapping[str, Policy]) -> pl.DataFrame:
    """The lint findings of several policies as one table (``FINDINGS_SCHEMA``).

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy, lint_frame
    >>> findings = lint_frame({"gce": catalog_policy("gce")})
    >>> findings.filter(severity="error").select("rule", "code").rows()
    [(14, 'sensitive-body')]
    """
    rows = [
        (name, f.severity, f.code, f.rule, f.message)
        for name, policy in policies.items()
        for f in lint(policy)
    ]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def compare(
    policies: Mapping[str, Policy],
    events: pl.LazyFrame | pl.DataFrame,
    *,
    retention: Retention | None = None,
    price: Price | None = None,
) -> pl.DataFrame:
    """Several policies side by side on the same traffic: events, bytes, retention, cost.

    See ``_policy_cost`` for the retention model and the price assumptions.
    """
    return compare_policies(policies, events.lazy(), retention=retention, price=price)


def diff(old: Policy, new: Policy, events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Traffic that changes level (or events, or bytes) from ``old`` to ``new``."""
    return diff_policies(old, new, events.lazy())


def suggest(
    events: pl.LazyFrame | pl.DataFrame, *, base: Policy | None = None, top: int = 15
) -> Suggestion:
    """A quieter policy for the observed traffic, built on ``base`` (default: cis-minimal).

    Ranks the noisiest (user, verb, resource) traffic by bytes under ``base`` and adds
    rules above it (see ``_policy_suggest`` for the rules and the guardrails: humans,
    writes to RBAC/Secrets/webhooks/CRDs, and exec/attach/portforward are never
    silenced). ``Suggestion.yaml`` carries each new rule's estimated savings; the
    estimates before and after are in ``before`` / ``after``.
    """
    return suggest_policy(base or catalog_policy("cis-minimal"), events.lazy(), top=top)
