"""Rule matching (``checker.go``): the one-request reference and the polars expressions.

Kept side by side on purpose; ``tests/test_policy_properties.py`` checks that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kaudit_analytics._policy_types import AuditConfig, PolicyRule, RequestAttributes

__all__ = [
    "ATTR_COLUMNS",
    "evaluate_attributes",
    "rule_index_expr",
    "rule_matches",
]

#: Temporary columns that hold the parsed request attributes during ``Policy.evaluate``.
ATTR_COLUMNS: dict[str, str] = {
    key: f"__policy_{key}"
    for key in (
        "user",
        "groups",
        "verb",
        "resource_request",
        "parse_error",
        "path",
        "api_group",
        "namespace",
        "resource",
        "subresource",
        "name",
    )
}


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


def _resource_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    if not attrs.resource_request:
        return False
    if rule.namespaces and attrs.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for item in rule.resources:
        if item.group not in (attrs.api_group, "*"):
            continue
        if not item.resources:
            return True
        if item.resource_names and attrs.name not in item.resource_names:
            continue
        if any(_pattern_matches(res, attrs, combined) for res in item.resources):
            return True
    return False


def _pattern_matches(res: str, attrs: RequestAttributes, combined: str) -> bool:
    return (
        res in (combined, "*")
        or bool(attrs.subresource and res == "*/" + attrs.subresource)
        or (res.endswith("/*") and attrs.resource == res[:-2])
    )


def rule_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    """``ruleMatches``: every constraint of the rule holds for the request."""
    if rule.users and (attrs.user is None or attrs.user not in rule.users):
        return False
    if rule.user_groups and (
        attrs.user is None or not any(group in rule.user_groups for group in attrs.groups)
    ):
        return False
    if rule.verbs and attrs.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _resource_matches(rule, attrs)
    if rule.non_resource_urls:
        return not attrs.resource_request and any(
            _path_matches(attrs.path, spec) for spec in rule.non_resource_urls
        )
    return True


def evaluate_attributes(
    rules: Sequence[PolicyRule],
    omit_stages: frozenset[str],
    omit_managed_fields: bool,
    attrs: RequestAttributes,
) -> AuditConfig:
    """``EvaluatePolicyRule``: the first matching rule decides; level None when none does."""
    for index, rule in enumerate(rules):
        if rule_matches(rule, attrs):
            managed = rule.omit_managed_fields
            return AuditConfig(
                level=rule.level,
                omit_stages=rule.omit_stages | omit_stages,
                omit_managed_fields=omit_managed_fields if managed is None else managed,
                rule_index=index,
            )
    return AuditConfig(
        level="None",
        omit_stages=omit_stages,
        omit_managed_fields=omit_managed_fields,
        rule_index=None,
    )


# ---------------------------------------------------------------------------------------
# The same matching as polars expressions over the ATTR_COLUMNS.


def _col(key: str) -> pl.Expr:
    return pl.col(ATTR_COLUMNS[key])


def _any(exprs: Sequence[pl.Expr]) -> pl.Expr:
    return pl.any_horizontal(exprs) if exprs else pl.lit(value=False)


def _resource_pattern_expr(res: str) -> pl.Expr:
    resource, subresource = _col("resource"), _col("subresource")
    combined = pl.when(subresource != "").then(resource + "/" + subresource).otherwise(resource)
    options = [combined == res]
    if res == "*":
        return pl.lit(value=True)
    if res.startswith("*/"):
        options.append((subresource != "") & (subresource == res[2:]))
    if res.endswith("/*"):
        options.append(resource == res[:-2])
    return _any(options)


def _resource_expr(rule: PolicyRule) -> pl.Expr:
    matched = _col("resource_request")
    if rule.namespaces:
        matched = matched & _col("namespace").is_in(list(rule.namespaces))
    if not rule.resources:
        return matched
    items = []
    for item in rule.resources:
        group_ok = pl.lit(value=True) if item.group == "*" else _col("api_group") == item.group
        if not item.resources:
            items.append(group_ok)
            continue
        names_ok = (
            _col("name").is_in(list(item.resource_names))
            if item.resource_names
            else pl.lit(value=True)
        )
        items.append(
            group_ok & names_ok & _any([_resource_pattern_expr(r) for r in item.resources])
        )
    return matched & _any(items)


def _non_resource_expr(rule: PolicyRule) -> pl.Expr:
    path = _col("path")
    options = []
    for spec in rule.non_resource_urls:
        if spec == "*":
            return ~_col("resource_request")
        options.append(path == spec)
        if spec.endswith("*"):
            options.append(path.str.starts_with(spec.rstrip("*")))
    return ~_col("resource_request") & _any(options)


def _rule_expr(rule: PolicyRule) -> pl.Expr:
    conditions = []
    if rule.users:
        conditions.append(_col("user").is_in(list(rule.users)))
    if rule.user_groups:
        groups = _col("groups")
        conditions.append(
            _col("user").is_not_null()
            & _any([groups.list.contains(group) for group in dict.fromkeys(rule.user_groups)])
        )
    if rule.verbs:
        conditions.append(_col("verb").is_in(list(rule.verbs)))
    if rule.namespaces or rule.resources:
        conditions.append(_resource_expr(rule))
    elif rule.non_resource_urls:
        conditions.append(_non_resource_expr(rule))
    if not conditions:
        return pl.lit(value=True)
    return pl.all_horizontal(conditions).fill_null(value=False)


def rule_index_expr(rules: Sequence[PolicyRule]) -> pl.Expr:
    """The index of the first matching rule, null when none matches.

    ``coalesce`` over one ``when(match).then(index)`` per rule: the first non-null is
    the first rule that matches, as in ``EvaluatePolicyRule``.
    """
    return pl.coalesce(
        pl.when(_rule_expr(rule)).then(pl.lit(index, dtype=pl.Int32))
        for index, rule in enumerate(rules)
    )
