"""Value types of the audit-policy engine (see ``kaudit_analytics.policy``).

Field names follow ``audit.k8s.io/v1`` in snake_case; the YAML names are kept in
``RULE_KEYS`` and friends so that loading and lint agree on what the apiserver knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kaudit_analytics.schema import LEVELS, STAGES

__all__ = [
    "GROUP_RESOURCE_KEYS",
    "LEVEL_ORDER",
    "POLICY_KEYS",
    "RULE_KEYS",
    "VALID_STAGES",
    "AuditConfig",
    "GroupResources",
    "PolicyError",
    "PolicyRule",
    "PolicyWarning",
    "RequestAttributes",
    "RequestInfo",
    "RuleSet",
]

#: ``ordLevel`` in apiserver/pkg/apis/audit/helpers.go.
LEVEL_ORDER: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}
VALID_STAGES: frozenset[str] = frozenset(STAGES)

POLICY_KEYS: frozenset[str] = frozenset(
    {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}
)
RULE_KEYS: frozenset[str] = frozenset(
    {
        "level",
        "users",
        "userGroups",
        "verbs",
        "resources",
        "namespaces",
        "nonResourceURLs",
        "omitStages",
        "omitManagedFields",
    }
)
GROUP_RESOURCE_KEYS: frozenset[str] = frozenset({"group", "resources", "resourceNames"})


class PolicyError(ValueError):
    """An audit policy the kube-apiserver would refuse to load (the message names the field)."""


class PolicyWarning(UserWarning):
    """The apiserver loads the policy but drops part of it (unknown or misspelled keys)."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    """One item of a rule's ``resources``: an API group and resources in it."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of a policy; empty tuples mean "no constraint" as in the apiserver.

    ``omit_stages`` is the rule's own list; the evaluator adds the policy's.
    ``omit_managed_fields`` is tri-state: ``None`` inherits the policy value.
    """

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """What the apiserver decided for one request (``RequestAuditConfig``)."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    rule_index: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAttributes:
    """The attributes the policy sees (``authorizer.Attributes``).

    ``user=None`` is the apiserver's nil user (failed authentication): rules with
    ``users`` or ``userGroups`` never match it.
    """

    user: str | None
    verb: str
    groups: tuple[str, ...] = ()
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInfo:
    """``RequestInfo`` as the apiserver derives it from a request URI."""

    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    def attributes(
        self, *, user: str | None, groups: tuple[str, ...] | list[str] = ()
    ) -> RequestAttributes:
        """The policy attributes of this request made by ``user`` in ``groups``.

        Examples
        --------
        >>> from kaudit_analytics.policy import request_info
        >>> info = request_info(verb="list", request_uri="/api/v1/namespaces/a/pods")
        >>> info.attributes(user="tim").namespace
        'a'
        """
        return RequestAttributes(
            user=user,
            groups=tuple(groups),
            verb=self.verb,
            resource_request=self.is_resource_request,
            namespace=self.namespace,
            api_group=self.api_group,
            resource=self.resource,
            subresource=self.subresource,
            name=self.name,
            path=self.path,
        )


class RuleSet(Protocol):
    """What the engine reads of a policy (``Policy`` is one): its rules and policy-wide settings."""

    @property
    def rules(self) -> Sequence[PolicyRule]: ...

    @property
    def omit_stages(self) -> frozenset[str]: ...

    @property
    def omit_managed_fields(self) -> bool: ...
