"""The audit ``Policy`` a user holds: loaded from YAML, a file or the bundled catalogue.

Its methods are thin: ``evaluate_request`` and ``evaluate`` are in ``evaluate``, the volume
replay in ``volume``; this module ties them to the loaded rules.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl

from kaudit_analytics.policy import evaluate as _evaluate
from kaudit_analytics.policy import volume as _volume
from kaudit_analytics.policy.load import parse_policy, read_policy_text
from kaudit_analytics.policy.probes import never_logged_probes
from kaudit_analytics.policy.rules import (
    AuditConfig,
    PolicyError,
    PolicyRule,
    PolicyWarning,
    RequestAttributes,
)
from kaudit_analytics.policy.volume import VolumeEstimate

__all__ = ["CATALOG", "Policy", "catalog_policy", "catalog_source", "load_policy", "policy_from"]

#: The bundled platform policies (``policy/catalog/<name>.yaml``; provenance in each file).
CATALOG: tuple[str, ...] = (
    "kubernetes-docs",
    "gce",
    "eks",
    "openshift-default",
    "openshift-writerequestbodies",
    "openshift-allrequestbodies",
    "cis-minimal",
)


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
        return _evaluate.evaluate_request(self, attributes)

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
        >>> from kaudit_analytics.testing import events_frame
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
        return _evaluate.evaluate(self, events)

    def evaluate_attributes(
        self,
        events: pl.LazyFrame | pl.DataFrame,
        *,
        selector_names: bool = True,
        keep: tuple[str, ...] = _evaluate.URI_ATTRIBUTES,
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
        return _evaluate.evaluate(
            self, events, attributes=keep, selector_names=selector_names, derived=derived or {}
        )

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
        >>> from kaudit_analytics.testing import events_frame
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
        return _volume.estimate_volume(self, events.lazy(), never_logged=never)


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


def _catalog_text(name: str) -> str:
    if name not in CATALOG:
        msg = f"no bundled policy {name!r}; choose one of {', '.join(CATALOG)}"
        raise PolicyError(msg)
    path = resources.files("kaudit_analytics.policy") / "catalog" / f"{name}.yaml"
    return path.read_text(encoding="utf-8")


def catalog_source(name: str) -> str:
    """Where a bundled policy comes from: the first sentence of its header comment.

    Examples
    --------
    >>> from kaudit_analytics.policy.model import catalog_source
    >>> catalog_source("kubernetes-docs")
    'the example policy of the Kubernetes documentation'
    """
    header = " ".join(
        line.lstrip("# ").strip()
        for line in _catalog_text(name).splitlines()
        if line.startswith("#")
    )
    text = header.removeprefix(f"{name}:").strip()
    return re.split(r" \(|\. |: |, from |, written ", text, maxsplit=1)[0].rstrip(".")


def catalog_policy(name: str) -> Policy:
    """A bundled platform policy by name (see ``CATALOG``); lint reports what it drops.

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy
    >>> catalog_policy("gce").rules[-1].level
    'Metadata'
    """
    text = _catalog_text(name)
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


def policy_from(source: str | Path) -> Policy:
    """A bundled policy by name (``catalog:`` prefix optional), or a policy file.

    Examples
    --------
    >>> from kaudit_analytics.policy import policy_from
    >>> policy_from("gce").name, policy_from("catalog:eks").name
    ('gce', 'eks')
    """
    name = str(source).removeprefix("catalog:")
    if name in CATALOG and not Path(source).exists():
        return catalog_policy(name)
    return load_policy(Path(source))
