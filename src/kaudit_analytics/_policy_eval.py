"""Rule matching (``checker.go``): the one-request reference and the polars expressions.

Kept side by side on purpose; ``tests/test_policy_properties.py`` checks that they agree.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Sequence

import polars as pl

from kaudit_analytics._policy_types import AuditConfig, PolicyRule, RequestAttributes

__all__ = [
    "ATTR_COLUMNS",
    "URI_ATTRIBUTES",
    "evaluate_attributes",
    "first_rule_expr",
    "name_sensitive_expr",
    "rule_matches",
    "target_mask_exprs",
    "user_mask_exprs",
    "verb_mask_exprs",
]

#: The attributes parsed out of a request URI (what ``Policy.evaluate_attributes`` can keep).
URI_ATTRIBUTES = (
    "resource_request",
    "parse_error",
    "path",
    "api_group",
    "namespace",
    "resource",
    "subresource",
    "name",
)
#: Temporary columns that hold the parsed request attributes during ``Policy.evaluate``.
ATTR_COLUMNS: dict[str, str] = {
    key: f"__policy_{key}" for key in ("user", "groups", "verb", *URI_ATTRIBUTES)
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


def _target_expr(rule: PolicyRule) -> pl.Expr:
    """The rule's resource or non-resource part (true when it has neither)."""
    if rule.namespaces or rule.resources:
        return _resource_expr(rule).fill_null(value=False)
    if rule.non_resource_urls:
        return _non_resource_expr(rule).fill_null(value=False)
    return pl.lit(value=True)


# ---------------------------------------------------------------------------------------
# The same decision as bitmasks, one bit per rule (in words of 64 rules), one mask per part
# of ``ruleMatches``: which rules the URI part (resources, namespaces, nonResourceURLs)
# allows, which the verb allows and which the user and groups allow. The URI part is
# decided once per distinct URI; the verb and user parts per row, from cheap lookups. The
# first rule that all parts allow is the lowest set bit of their AND.

_WORD = 64
#: Up to this many listed verbs or users are looked up by comparisons, more by a hash map.
_CHAIN = 8


def _word_rules(rules: Sequence[PolicyRule]) -> list[list[tuple[int, PolicyRule]]]:
    indexed = list(enumerate(rules))
    return [indexed[start : start + _WORD] for start in range(0, len(indexed), _WORD)]


def _bit(index: int) -> pl.Expr:
    return pl.lit(1 << (index % _WORD), dtype=pl.UInt64)


def _or(exprs: Sequence[pl.Expr]) -> pl.Expr:
    return functools.reduce(operator.or_, exprs) if exprs else pl.lit(0, dtype=pl.UInt64)


def target_mask_exprs(rules: Sequence[PolicyRule]) -> list[pl.Expr]:
    """Per 64 rules: bit i set when rule i's resource or non-resource part matches.

    Over the ATTR_COLUMNS of the request (user, groups and verb are not read).
    """
    zero = pl.lit(0, dtype=pl.UInt64)
    return [
        _or([pl.when(_target_expr(r)).then(_bit(i)).otherwise(zero) for i, r in word])
        for word in _word_rules(rules)
    ]


def name_sensitive_expr(rules: Sequence[PolicyRule]) -> pl.Expr:
    """True where a request's name could change the decision: some ``resources`` item
    with ``resourceNames`` matches it but for the name (over the ATTR_COLUMNS)."""
    named = [
        dataclasses.replace(
            rule,
            resources=tuple(
                dataclasses.replace(item, resource_names=())
                for item in rule.resources
                if item.resource_names
            ),
        )
        for rule in rules
        if any(item.resource_names for item in rule.resources)
    ]
    return _any([_resource_expr(rule) for rule in named]).fill_null(value=False)


def _lookup(
    word: Sequence[tuple[int, PolicyRule]], key: str, value: pl.Expr | None
) -> tuple[pl.Expr, dict[str, int]]:
    """The bits of the rules without ``key`` (or with ``value`` listed, when given: a few
    comparisons or one hash lookup per row) and, per listed value, the bits of the rules
    that list it."""
    listed: dict[str, int] = {}
    for index, rule in word:
        for item in dict.fromkeys(getattr(rule, key)):
            listed[item] = listed.get(item, 0) | 1 << (index % _WORD)
    free = sum(1 << (i % _WORD) for i, r in word if not getattr(r, key))
    mask = pl.lit(free, dtype=pl.UInt64)
    if listed and value is not None:
        if len(listed) <= _CHAIN:
            # A few string comparisons are cheaper than hashing every row.
            zero = pl.lit(0, dtype=pl.UInt64)
            for item, bits in listed.items():
                hit = pl.when(value == item).then(pl.lit(bits, dtype=pl.UInt64))
                mask = mask | hit.otherwise(zero)
        else:
            found = value.replace_strict(
                list(listed), list(listed.values()), default=0, return_dtype=pl.UInt64
            )
            mask = mask | found.fill_null(0)
    return mask, listed


def verb_mask_exprs(rules: Sequence[PolicyRule], verb: pl.Expr) -> list[pl.Expr]:
    """Per 64 rules: bit i set when rule i's verbs allow ``verb`` (one lookup per row)."""
    return [_lookup(word, "verbs", verb)[0] for word in _word_rules(rules)]


def user_mask_exprs(rules: Sequence[PolicyRule], user: pl.Expr, groups: pl.Expr) -> list[pl.Expr]:
    """Per 64 rules: bit i set when rule i's users and userGroups allow the row.

    Per row, one lookup of the user name and one ``list.contains`` per group that a rule
    names (a rule without users or groups sets its bit unconditionally).
    """
    masks = []
    zero = pl.lit(0, dtype=pl.UInt64)
    for word in _word_rules(rules):
        users, _ = _lookup(word, "users", user)
        member, by_group = _lookup(word, "user_groups", None)
        if by_group:
            listed = _or(
                [
                    pl.when(groups.list.contains(group))
                    .then(pl.lit(bits, dtype=pl.UInt64))
                    .otherwise(zero)
                    for group, bits in by_group.items()
                ]
            )
            # A rule with userGroups needs a user (a nil user matches no such rule).
            member = member | pl.when(user.is_not_null()).then(listed).otherwise(zero)
        masks.append(users & member)
    return masks


def first_rule_expr(*masks: Sequence[pl.Expr]) -> pl.Expr:
    """The first rule (Int32) whose bit is set in every one of ``masks``, null if none."""
    firsts = []
    for word, parts in enumerate(zip(*masks, strict=True)):
        both = functools.reduce(operator.and_, parts)
        firsts.append(
            pl.when(both != 0).then(
                both.bitwise_trailing_zeros().cast(pl.Int32) + pl.lit(word * _WORD, dtype=pl.Int32)
            )
        )
    return pl.coalesce(firsts)
