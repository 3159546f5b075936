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
#: Temporary columns of ``Policy._decide``: the URI-part bitmasks of a list or watch and of
#: any other verb, the per-URI parse, and the keys of the two joins.
_MASKS = ("__policy_mask_list_{}", "__policy_mask_other_{}")
_ATTRS = (
    "resource_request",
    "parse_error",
    "path",
    "api_group",
    "namespace",
    "resource",
    "subresource",
    "name",
)
_NAME_OTHER = "__policy_name_other"
_RAW_PATH = "__policy_raw_path"
_QUERY = "__policy_query"
_SELECTABLE = "__policy_selectable"
_SELECTED = "__policy_selected_name"
_SENSITIVE = "__policy_name_sensitive"
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
    def _level_and_stage(self) -> tuple[pl.Expr, pl.Expr]:
        rule = pl.col(POLICY_RULE)
        indices = list(range(len(self.rules)))
        level = rule.replace_strict(
            indices,
            [item.level for item in self.rules],
            default=pl.lit("None"),
            return_dtype=pl.String,
        )
        # Per rule, one bit per stage it writes (none at level None), tested with the
        # stage's bit; a null stage is omitted by no rule.
        kept = rule.replace_strict(
            indices,
            [
                0
                if item.level == "None"
                else sum(
                    1 << bit
                    for bit, stage in enumerate(STAGES)
                    if stage not in item.omit_stages | self.omit_stages
                )
                for item in self.rules
            ],
            default=0,
            return_dtype=pl.UInt8,
        )
        stage = pl.col(STAGE).cast(Stage).to_physical()
        stage_bit = stage.replace_strict(
            list(range(len(STAGES))),
            [1 << bit for bit in range(len(STAGES))],
            return_dtype=pl.UInt8,
        )
        keeps = pl.when(stage.is_null()).then(level != "None").otherwise((kept & stage_bit) != 0)
        # A null URI mask marks a URI the apiserver refuses before auditing.
        decided = pl.col(_MASKS[0].format(0)).is_not_null()
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
    ) -> pl.LazyFrame:
        """``evaluate``, keeping the parsed request attributes as ``__policy_*`` columns.

        For the volume estimate and lint, which need the attributes the policy saw (the
        verb and those named in ``keep``). With ``selector_names=False`` the name of a
        list or watch is read from its field selector only where it can change the
        decision (it is ``""`` elsewhere), which saves parsing every distinct watch query.
        """
        return self._decide(events, attributes=keep, selector_names=selector_names)

    def _decide(
        self,
        events: pl.LazyFrame | pl.DataFrame,
        *,
        attributes: tuple[str, ...] = (),
        selector_names: bool = False,
    ) -> pl.LazyFrame:
        uri, verb = pl.col(REQUEST_URI), ATTR_COLUMNS["verb"]
        keyed = events.lazy().with_columns(
            pl.col(VERB).fill_null("").alias(verb),
            # Rows without a URI (some cloud exports) fall back to the objectRef columns.
            pl.when(uri.is_null())
            .then(
                pl.concat_str([pl.col(c).fill_null("\x00") for c in _OBJECT_REF], separator="\x1f")
            )
            .alias(_REF_KEY),
        )
        payload = [name.format(i) for name in _MASKS for i in range(len(self._target_masks))]
        payload += [ATTR_COLUMNS[key] for key in attributes]
        if "name" in attributes:
            payload.append(_NAME_OTHER)
        # A log repeats the same requests (lease renewals, watches, probes): the URI part of
        # every rule is decided once per distinct URI (as two bitmasks, see ``_by_uri``)
        # and joined back; verb, user and groups are cheap per-row lookups.
        joined = [
            keyed.select(key)
            .join(table.select(key, *payload), on=key, how="left", maintain_order="left")
            .drop(key)
            .rename({name: f"{name}{i}" for name in payload})
            for i, (key, table) in enumerate(
                (
                    (REQUEST_URI, self._by_uri(keyed, selector_names)),
                    (_REF_KEY, self._by_ref(keyed)),
                )
            )
        ]
        # Only the keys go through the joins and the decisions sit next to the input
        # (same row order), so that no input column (bodies, annotations) is gathered.
        listing = pl.col(verb).is_in(_LIST_VERBS)
        masks = [
            pl.when(listing)
            .then(pl.col(_MASKS[0].format(i)))
            .otherwise(pl.col(_MASKS[1].format(i)))
            for i in range(len(self._target_masks))
        ]
        rule = first_rule_expr(
            masks,
            verb_mask_exprs(self.rules, pl.col(verb)),
            user_mask_exprs(self.rules, pl.col(USER), pl.col(GROUPS)),
        )
        level, keeps = self._level_and_stage
        out = pl.concat([keyed.drop(_REF_KEY), *joined], how="horizontal").with_columns(
            pl.coalesce(f"{name}0", f"{name}1").alias(name) for name in payload
        )
        added = [rule.alias(POLICY_RULE)]
        if "name" in attributes:
            name = ATTR_COLUMNS["name"]
            added.append(
                pl.when(listing).then(pl.col(name)).otherwise(pl.col(_NAME_OTHER)).alias(name)
            )
        temporary = [name for name in payload if name not in ATTR_COLUMNS.values()]
        return (
            out.with_columns(added)
            .with_columns(level, keeps)
            .drop(
                *temporary,
                *(f"{name}{i}" for name in payload for i in (0, 1)),
                *([] if attributes else [verb]),
            )
        )

    def _by_uri(self, keyed: pl.LazyFrame, selector_names: bool) -> pl.LazyFrame:
        """Per distinct URI: the attributes and the URI part of every rule as bitmasks, once
        for a list or watch (which reads a name from a field selector) and once for any
        other verb. The path is parsed once per distinct path (a few hundred in a log whose
        distinct URIs are mostly watches that differ in resourceVersion), and a query only
        where its name can change a decision (or ``selector_names`` asks for every name)."""
        split = pl.col(REQUEST_URI).str.splitn("?", 2)
        uris = keyed.select(REQUEST_URI).unique().filter(pl.col(REQUEST_URI).is_not_null())
        uris = uris.with_columns(
            split.struct.field("field_0").alias(_RAW_PATH),
            split.struct.field("field_1").alias(_QUERY),
        )
        error = pl.col(ATTR_COLUMNS["parse_error"])
        name = ATTR_COLUMNS["name"]
        paths = with_path_attributes(
            uris.select(_RAW_PATH).unique(), pl.col(_RAW_PATH), ATTR_COLUMNS, _SELECTABLE
        ).with_columns(
            *(
                pl.when(~error).then(mask).alias(_MASKS[1].format(i))
                for i, mask in enumerate(self._target_masks)
            ),
            name_sensitive_expr(self.rules).alias(_SENSITIVE),
        )
        selectable, sensitive = pl.col(_SELECTABLE), pl.col(_SENSITIVE)
        parsed = selectable if selector_names else selectable & sensitive
        return (
            with_selector_name(
                uris.join(paths, on=_RAW_PATH, how="left"),
                pl.when(parsed).then(pl.col(_QUERY)),
                _SELECTED,
            )
            .with_columns(
                pl.col(name).alias(_NAME_OTHER),
                pl.when(parsed).then(pl.col(_SELECTED)).otherwise(pl.col(name)).alias(name),
            )
            .with_columns(
                pl.when(selectable & sensitive)
                .then(mask)
                .otherwise(pl.col(_MASKS[1].format(i)))
                .alias(_MASKS[0].format(i))
                for i, mask in enumerate(self._target_masks)
            )
        )

    def _by_ref(self, keyed: pl.LazyFrame) -> pl.LazyFrame:
        """Per distinct objectRef of the rows without a URI: attributes and bitmasks."""
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
        return (
            keyed.filter(pl.col(REQUEST_URI).is_null())
            .select(_REF_KEY, *_OBJECT_REF)
            .unique(subset=[_REF_KEY])
            .with_columns(expr.alias(ATTR_COLUMNS[key]) for key, expr in fallback.items())
            .with_columns(
                mask.alias(name.format(i))
                for i, mask in enumerate(self._target_masks)
                for name in _MASKS
            )
            .with_columns(pl.col(ATTR_COLUMNS["name"]).alias(_NAME_OTHER))
        )

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
