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
    URI_ATTRIBUTES,
    evaluate_attributes,
    first_rule_expr,
    name_sensitive_expr,
    target_mask_exprs,
    user_mask_exprs,
    verb_mask_exprs,
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
from kaudit_analytics._policy_uri import (
    list_query_key,
    parse_request_info,
    with_path_attributes,
    with_selector_name,
)
from kaudit_analytics._policy_volume import VolumeEstimate, estimate_volume
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
    Stage,
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

_OBJECT_REF = (API_GROUP, RESOURCE, SUBRESOURCE, NAMESPACE, NAME)
_LIST_VERBS = ("list", "watch")
#: Temporary columns of ``Policy._decide``: the join keys, the URI-part bitmasks (per 64
#: rules) and whether a list or watch reads its query.
_MASK = "__policy_mask_{}"
_KEY = "__policy_key"
_NEED_URI = "__policy_need_uri"
_NEEDS_QUERY = "__policy_needs_query"
_QUERY = "__policy_query"
_ATTRS = URI_ATTRIBUTES
_SELECTABLE = "__policy_selectable"
_SELECTED = "__policy_selected_name"

#: Columns ``Policy.evaluate`` adds to the events table.
POLICY_LEVEL = "policy_level"
POLICY_RULE = "policy_rule"
POLICY_KEEPS_STAGE = "policy_keeps_stage"


def _key_expr() -> pl.Expr:
    """What decides the URI part of the rules, as a string: the URI cut before its query,
    or ``?`` and the objectRef columns for a row without a URI.

    The cut takes as many characters as ``?`` has bytes before it: a non-ASCII path keeps
    some of its query, which costs only a few more distinct keys (the path is recovered
    from the key by splitting at ``?``). No cut path starts with ``?``.
    """
    uri = pl.col(REQUEST_URI)
    refs = pl.concat_str([pl.col(c).fill_null("\x00") for c in _OBJECT_REF], separator="\x1f")
    return pl.coalesce(
        uri.str.head(uri.str.find("?", literal=True)),
        uri,
        pl.when(uri.is_null()).then(pl.lit("?") + refs),
    )


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
    def _level_and_stage(self) -> tuple[pl.Expr, pl.Expr]:
        # Looked up by position (a gather, no hashing): index len(rules) is "no rule".
        matched = pl.col(POLICY_RULE).fill_null(len(self.rules))
        levels = [item.level for item in self.rules] + ["None"]
        level = pl.lit(pl.Series(levels, dtype=pl.String)).gather(matched)
        # Per rule, one bit per stage it writes (none at level None) and bit 4 when it
        # logs at all (what a null stage is kept by), tested with the stage's bit.
        written = [
            0
            if item.level == "None"
            else 16
            | sum(
                1 << bit
                for bit, stage in enumerate(STAGES)
                if stage not in item.omit_stages | self.omit_stages
            )
            for item in self.rules
        ]
        kept = pl.lit(pl.Series([*written, 0], dtype=pl.UInt8)).gather(matched)
        stage = pl.col(STAGE).cast(Stage).to_physical().fill_null(len(STAGES))
        stage_bit = pl.lit(
            pl.Series([1 << bit for bit in range(len(STAGES) + 1)], dtype=pl.UInt8)
        ).gather(stage)
        keeps = (kept & stage_bit) != 0
        # A null URI mask marks a URI the apiserver refuses before auditing.
        decided = pl.col(_MASK.format(0)).is_not_null()
        return (
            pl.when(decided).then(level).alias(POLICY_LEVEL),
            pl.when(decided).then(keeps).alias(POLICY_KEEPS_STAGE),
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
        return self._decide(events)

    def evaluate_attributes(
        self,
        events: pl.LazyFrame | pl.DataFrame,
        *,
        selector_names: bool = True,
        keep: tuple[str, ...] = _ATTRS,
        derived: Mapping[str, pl.Expr] | None = None,
    ) -> pl.LazyFrame:
        """``evaluate``, keeping the parsed request attributes as ``__policy_*`` columns.

        For the volume estimate and lint, which need the attributes the policy saw (the
        verb and those named in ``keep``). With ``selector_names=False`` the name of a
        list or watch is read from its field selector only where it can change the
        decision (it is ``""`` elsewhere), which saves parsing every distinct watch query.
        ``derived`` adds columns computed from the attributes other than the name (which
        a list or watch may read from its query) once per distinct path: cheaper than
        keeping the attributes and computing them per row.
        """
        return self._decide(
            events, attributes=keep, selector_names=selector_names, derived=derived or {}
        )

    def _decide(
        self,
        events: pl.LazyFrame | pl.DataFrame,
        *,
        attributes: tuple[str, ...] = (),
        selector_names: bool = False,
        derived: Mapping[str, pl.Expr] | None = None,
    ) -> pl.LazyFrame:
        uri, verb = pl.col(REQUEST_URI), ATTR_COLUMNS["verb"]
        derived = derived or {}
        name = ATTR_COLUMNS["name"]
        events = events.lazy()
        # Computed once (each lookup below reads it).
        keys = events.select(_key_expr().alias(_KEY)).cache()
        masks = [_MASK.format(i) for i in range(len(self._target_masks))]
        payload = [*masks, *(ATTR_COLUMNS[key] for key in attributes), *derived]
        # A log repeats the same requests (lease renewals, watches, probes): the URI part of
        # every rule is decided once per distinct key (a URI's path: a few hundred in a log
        # whose distinct URIs are mostly watches that differ in resourceVersion) and joined
        # back; verb, user and groups are cheap per-row lookups. Only the keys go through
        # the joins and the decisions sit next to the input (same row order), so that no
        # input column (bodies, annotations) is gathered.
        by_key = self._by_key(events, keys, selector_names, derived).cache()
        joined = keys.join(
            by_key.select(_KEY, _NEEDS_QUERY, *payload),
            on=_KEY,
            how="left",
            maintain_order="left",
        )
        listing = pl.col(verb).is_in(_LIST_VERBS)
        first = pl.concat(
            [events.with_columns(pl.col(VERB).fill_null("").alias(verb)), joined], how="horizontal"
        ).with_columns(pl.when(listing & pl.col(_NEEDS_QUERY)).then(uri).alias(_NEED_URI))
        # The few lists and watches whose query can change the decision (a field selector
        # naming an object under a resourceNames rule), or whose name is asked for: once
        # per distinct URI, joined back on a key that is null on every other row.
        by_uri = self._by_query(first, by_key)
        second_payload = [f"{mask}_list" for mask in masks]
        if "name" in attributes:
            second_payload.append(_SELECTED)
        second = (
            first.select(_NEED_URI)
            .join(
                by_uri.select(_NEED_URI, *second_payload),
                on=_NEED_URI,
                how="left",
                maintain_order="left",
            )
            .drop(_NEED_URI)
        )
        listed = pl.col(_NEED_URI).is_not_null()
        out = pl.concat([first, second], how="horizontal").with_columns(
            pl.when(listed).then(pl.col(f"{mask}_list")).otherwise(pl.col(mask)).alias(mask)
            for mask in masks
        )
        if "name" in attributes:
            out = out.with_columns(
                pl.when(listed).then(pl.col(_SELECTED)).otherwise(pl.col(name)).alias(name)
            )
        rule = first_rule_expr(
            [pl.col(mask) for mask in masks],
            verb_mask_exprs(self.rules, pl.col(verb)),
            user_mask_exprs(self.rules, pl.col(USER), pl.col(GROUPS)),
        )
        level, keeps = self._level_and_stage
        return (
            out.with_columns(rule.alias(POLICY_RULE))
            .with_columns(level, keeps)
            .drop(
                _KEY,
                _NEEDS_QUERY,
                _NEED_URI,
                *masks,
                *second_payload,
                *([] if attributes or derived else [verb]),
            )
        )

    def _by_key(
        self,
        events: pl.LazyFrame,
        keys: pl.LazyFrame,
        selector_names: bool,
        derived: Mapping[str, pl.Expr],
    ) -> pl.LazyFrame:
        """Per distinct key (``_key_expr``): the request attributes, the URI part of every
        rule as bitmasks, and whether a list or watch must read its query (the path takes
        a name from a field selector and that name can change a decision, or
        ``selector_names`` asks for every such name)."""
        key = pl.col(_KEY)
        error = pl.col(ATTR_COLUMNS["parse_error"])
        paths = with_path_attributes(
            keys.unique().filter(~key.str.starts_with("?")),
            key.str.splitn("?", 2).struct.field("field_0"),
            ATTR_COLUMNS,
            _SELECTABLE,
        ).with_columns(
            *(
                pl.when(~error).then(mask).alias(_MASK.format(i))
                for i, mask in enumerate(self._target_masks)
            ),
            (
                pl.col(_SELECTABLE)
                if selector_names
                else pl.col(_SELECTABLE) & name_sensitive_expr(self.rules)
            ).alias(_NEEDS_QUERY),
        )
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
        refs = (
            events.filter(pl.col(REQUEST_URI).is_null())
            .select(_key_expr().alias(_KEY), *_OBJECT_REF)
            .unique(subset=[_KEY])
            .with_columns(expr.alias(ATTR_COLUMNS[key]) for key, expr in fallback.items())
            .with_columns(
                *(mask.alias(_MASK.format(i)) for i, mask in enumerate(self._target_masks)),
                pl.lit(value=False).alias(_NEEDS_QUERY),
            )
        )
        columns = [
            _KEY,
            _NEEDS_QUERY,
            *(ATTR_COLUMNS[key] for key in _ATTRS),
            *(_MASK.format(i) for i in range(len(self._target_masks))),
            *(expr.alias(name) for name, expr in derived.items()),
        ]
        return pl.concat([paths.select(columns), refs.select(columns)])

    def _by_query(self, first: pl.LazyFrame, by_key: pl.LazyFrame) -> pl.LazyFrame:
        """Per distinct URI of a list or watch that reads its query: the name its field
        selector pins and the URI part of every rule as bitmasks with that name. The
        selector is parsed once per key and ``list_query_key`` (a few per object watched)."""
        name = ATTR_COLUMNS["name"]
        uris = (
            first.select(_NEED_URI, _KEY)
            .filter(pl.col(_NEED_URI).is_not_null())
            .unique(subset=[_NEED_URI])
            .with_columns(
                list_query_key(pl.col(_NEED_URI).str.splitn("?", 2).struct.field("field_1")).alias(
                    _QUERY
                )
            )
        )
        decided = (
            with_selector_name(
                uris.select(_KEY, _QUERY).unique().join(by_key, on=_KEY, how="left"),
                pl.col(_QUERY),
                _SELECTED,
            )
            .with_columns(pl.col(_SELECTED).alias(name))
            .with_columns(
                mask.alias(f"{_MASK.format(i)}_list") for i, mask in enumerate(self._target_masks)
            )
        )
        return uris.join(decided, on=[_KEY, _QUERY], how="left", nulls_equal=True)

    @cached_property
    def _target_masks(self) -> list[pl.Expr]:
        return target_mask_exprs(self.rules)

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
