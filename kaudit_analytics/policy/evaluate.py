"""Rule matching (``checker.go``): the one-request reference and the vectorised engine.

``evaluate_request`` decides for one request, as the apiserver does; ``evaluate`` decides for
a whole events table with polars expressions. They are kept side by side on purpose, and
``tests/policy/test_properties.py`` checks that they agree.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Mapping, Sequence

import polars as pl

from kaudit_analytics.policy.requestinfo import (
    list_query_key,
    with_path_attributes,
    with_selector_name,
)
from kaudit_analytics.policy.rules import AuditConfig, PolicyRule, RequestAttributes, RuleSet
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
    "ATTR_COLUMNS",
    "POLICY_KEEPS_STAGE",
    "POLICY_LEVEL",
    "POLICY_RULE",
    "URI_ATTRIBUTES",
    "evaluate",
    "evaluate_request",
    "first_rule_expr",
    "name_sensitive_expr",
    "rule_matches",
    "target_mask_exprs",
    "user_mask_exprs",
    "verb_mask_exprs",
]

#: The attributes parsed out of a request URI (what ``evaluate(attributes=…)`` can keep).
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


def evaluate_request(policy: RuleSet, attrs: RequestAttributes) -> AuditConfig:
    """``EvaluatePolicyRule``: the first matching rule decides; level None when none does."""
    omit_stages, omit_managed_fields = policy.omit_stages, policy.omit_managed_fields
    for index, rule in enumerate(policy.rules):
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


# ---------------------------------------------------------------------------------------
# The vectorised engine: decide the URI part once per distinct path, then join back.

_OBJECT_REF = (API_GROUP, RESOURCE, SUBRESOURCE, NAMESPACE, NAME)
_LIST_VERBS = ("list", "watch")
#: Temporary columns of ``evaluate``: the join keys, the URI-part bitmasks (per 64
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


@functools.cache
def _target_masks(rules: tuple[PolicyRule, ...]) -> list[pl.Expr]:
    return target_mask_exprs(rules)


@functools.cache
def _level_and_stage(
    rules: tuple[PolicyRule, ...], omit_stages: frozenset[str]
) -> tuple[pl.Expr, pl.Expr]:
    # Looked up by position (a gather, no hashing): index len(rules) is "no rule".
    matched = pl.col(POLICY_RULE).fill_null(len(rules))
    levels = [item.level for item in rules] + ["None"]
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
            if stage not in item.omit_stages | omit_stages
        )
        for item in rules
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


def evaluate(
    policy: RuleSet,
    events: pl.LazyFrame | pl.DataFrame,
    *,
    attributes: tuple[str, ...] = (),
    selector_names: bool = False,
    derived: Mapping[str, pl.Expr] | None = None,
) -> pl.LazyFrame:
    """Add ``policy_level``, ``policy_rule`` and ``policy_keeps_stage`` to an events table.

    See ``Policy.evaluate``. ``attributes`` keeps the parsed request attributes named (keys
    of ``ATTR_COLUMNS``) as ``__policy_*`` columns, for the volume estimate and lint. With
    ``selector_names=False`` the name of a list or watch is read from its field selector only
    where it can change the decision (it is ``""`` elsewhere), which saves parsing every
    distinct watch query. ``derived`` adds columns computed from the attributes other than
    the name (which a list or watch may read from its query) once per distinct path: cheaper
    than keeping the attributes and computing them per row.
    """
    rules = tuple(policy.rules)
    uri, verb = pl.col(REQUEST_URI), ATTR_COLUMNS["verb"]
    derived = derived or {}
    name = ATTR_COLUMNS["name"]
    events = events.lazy()
    # Computed once (each lookup below reads it).
    keys = events.select(_key_expr().alias(_KEY)).cache()
    masks = [_MASK.format(i) for i in range(len(_target_masks(rules)))]
    payload = [*masks, *(ATTR_COLUMNS[key] for key in attributes), *derived]
    # A log repeats the same requests (lease renewals, watches, probes): the URI part of
    # every rule is decided once per distinct key (a URI's path: a few hundred in a log
    # whose distinct URIs are mostly watches that differ in resourceVersion) and joined
    # back; verb, user and groups are cheap per-row lookups. Only the keys go through
    # the joins and the decisions sit next to the input (same row order), so that no
    # input column (bodies, annotations) is gathered.
    by_key = _by_key(rules, events, keys, selector_names, derived).cache()
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
    by_uri = _by_query(rules, first, by_key)
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
        verb_mask_exprs(rules, pl.col(verb)),
        user_mask_exprs(rules, pl.col(USER), pl.col(GROUPS)),
    )
    level, keeps = _level_and_stage(rules, policy.omit_stages)
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
    rules: tuple[PolicyRule, ...],
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
            for i, mask in enumerate(_target_masks(rules))
        ),
        (
            pl.col(_SELECTABLE)
            if selector_names
            else pl.col(_SELECTABLE) & name_sensitive_expr(rules)
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
            *(mask.alias(_MASK.format(i)) for i, mask in enumerate(_target_masks(rules))),
            pl.lit(value=False).alias(_NEEDS_QUERY),
        )
    )
    columns = [
        _KEY,
        _NEEDS_QUERY,
        *(ATTR_COLUMNS[key] for key in _ATTRS),
        *(_MASK.format(i) for i in range(len(_target_masks(rules)))),
        *(expr.alias(name) for name, expr in derived.items()),
    ]
    return pl.concat([paths.select(columns), refs.select(columns)])


def _by_query(
    rules: tuple[PolicyRule, ...], first: pl.LazyFrame, by_key: pl.LazyFrame
) -> pl.LazyFrame:
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
            mask.alias(f"{_MASK.format(i)}_list") for i, mask in enumerate(_target_masks(rules))
        )
    )
    return uris.join(decided, on=[_KEY, _QUERY], how="left", nulls_equal=True)
