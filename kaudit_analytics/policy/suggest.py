"""A quieter policy from observed traffic, that an auditor would sign.

How a suggestion is built:

1. **The base is made lint-clean first** (``fix_base``): the apiserver's reading of it is
   written out (keys it ignores are dropped), Secrets/TokenReview/token bodies a rule logs
   are lowered to Metadata by a copy of that rule just above it, and CIS 3.2.2 requests it
   drops get a Metadata rule just above the rule that drops them. When that cannot make it
   clean (a policy that omits every stage but Panic), the suggestion is refused.
2. **The noisiest traffic is ranked** by the bytes the base writes for it, per
   (user, verb, resource or path), and each group is matched to the first ``MOVES`` entry
   that applies: the moves are data, each with the level it sets and why that is safe.
3. **Rules are consolidated**: per move, a user's verbs and resources become one rule, users
   with the same rule are merged, rules are merged while at least a quarter of what the
   merged rule matches was observed, and a group replaces its users when every member of it seen
   in the traffic is listed (never ``system:authenticated`` or ``system:unauthenticated``).
   Every move is a product (actor kinds × verbs × resources), so a merged rule only
   matches requests its move allows.
4. **Nothing an auditor relies on is lost**: every rule is added only when the policy with it
   still passes lint with no errors and still logs every probe request of every
   requirement the base supports (``requirements``: objects with ``id``, ``level``,
   ``stages`` and ``probes`` such as ``kaudit_analytics.compliance.CONTROLS``, which the
   caller passes in: the policy layer does not import compliance). Rules the new ones make
   unreachable are removed.
5. The policy omits ``RequestReceived`` and managedFields where the requirements allow.

Each added rule says why it is safe and what it saves (before/after, on the observed
traffic) in ``Suggestion.rules`` and in a comment above it in the YAML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
import yaml

from kaudit_analytics import exprs
from kaudit_analytics.policy.cost import request_target
from kaudit_analytics.policy.evaluate import POLICY_RULE, rule_matches
from kaudit_analytics.policy.lint import (
    cis_gaps,
    lint_policy,
    sensitive_hits,
    sensitive_probes,
    subsumes,
)
from kaudit_analytics.policy.model import Policy, load_policy
from kaudit_analytics.policy.probes import CIS_PROBES
from kaudit_analytics.policy.rules import (
    LEVEL_ORDER,
    GroupResources,
    PolicyError,
    PolicyRule,
    RequestAttributes,
)
from kaudit_analytics.policy.volume import (
    VolumeEstimate,
    body_model_parts,
    merge_spans,
    observed_and_span,
    predicted_events,
    replay_columns,
    request_chunks,
    volume_estimate,
    volume_parts,
)
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    CLUSTER,
    DATE,
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
    "MOVES",
    "Move",
    "Requirement",
    "Suggestion",
    "fix_base",
    "policy_yaml",
    "suggest_policy",
]

_MACHINES = ("service_account", "node", "control_plane", "cloud_service")
_READS = ("get", "list", "watch")
_WRITES = ("create", "update", "patch", "delete", "deletecollection")
#: Never silenced: credential reads and the streams into a container or a node.
_GUARDED_TARGETS = (("", "secrets"),)
_GUARDED_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
#: Groups too broad to stand for their members (everyone, or every anonymous caller).
_BROAD_GROUPS = ("system:authenticated", "system:unauthenticated", "system:masters")


@dataclass(frozen=True)
class Move:
    """One kind of change a suggestion may make: the level it sets for requests of
    ``kinds`` of actor × ``verbs`` × targets, when the base logs them above that level.

    ``resources`` are (group, resource) pairs, ``*`` for any; ``paths`` are path prefixes
    of non-resource requests (``/healthz`` covers ``/healthz/etcd``).
    """

    name: str
    level: str
    kinds: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    resources: tuple[tuple[str, str], ...] = ()
    paths: tuple[str, ...] = ()
    #: Service accounts only from these namespaces (empty: any).
    sa_namespaces: tuple[str, ...] = ()
    #: Whether guarded targets (Secrets, exec/attach/port-forward/proxy) are left alone.
    guarded: bool = True
    #: The move suits every actor: its rules are written without users.
    anyone: bool = False


#: The moves, tried in order for each noisy traffic group.
MOVES: tuple[Move, ...] = (
    Move(
        "probe-paths",
        "None",
        (*_MACHINES, "anonymous"),
        ("get", "head"),
        "health checks, metrics scrapes and OpenAPI downloads by machines or anonymous "
        "probes read no cluster object and change nothing; no control reads them",
        paths=("/healthz", "/livez", "/readyz", "/metrics", "/version", "/openapi"),
    ),
    Move(
        "heartbeats",
        "None",
        ("node", "control_plane", "service_account"),
        ("get", "update", "patch"),
        "lease renewals, node status and endpoint syncs by cluster components repeat every "
        "few seconds and grant no access; one component's lease is kept where a control "
        "watches it for gaps",
        resources=(
            ("coordination.k8s.io", "leases"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("", "nodes/status"),
        ),
        sa_namespaces=("kube-system",),
    ),
    Move(
        "machine-reads",
        "None",
        _MACHINES,
        _READS,
        "reads by cluster components and service accounts are informers and polls: they "
        "change nothing; Secret reads and exec/attach/port-forward/proxy stay logged",
        resources=(("*", "*"),),
    ),
    Move(
        "read-bodies",
        "Metadata",
        (*_MACHINES, "human", "anonymous", "unknown"),
        _READS,
        "a read changes nothing: Metadata still records who read what and when; the "
        "response body only repeats stored objects (and can carry secrets)",
        resources=(("*", "*"),),
        guarded=False,
        anyone=True,
    ),
    Move(
        "write-echo",
        "Request",
        _MACHINES,
        _WRITES,
        "the request body records what a component wrote; the response only echoes the "
        "stored object back",
        resources=(("*", "*"),),
        guarded=False,
    ),
)


class Requirement(Protocol):
    """What a compliance control needs logged (``compliance.Control`` is one): probe
    requests (objects with the ``RequestAttributes`` fields), the lowest level and the
    stages that must not be omitted."""

    @property
    def id(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def stages(self) -> tuple[str, ...]: ...

    @property
    def probes(self) -> Sequence[Any]: ...


_ATTRIBUTE_FIELDS = tuple(f.name for f in dataclasses.fields(RequestAttributes))


def _attributes(probe: Any) -> RequestAttributes:
    if isinstance(probe, RequestAttributes):
        return probe
    values = {name: getattr(probe, name) for name in _ATTRIBUTE_FIELDS if hasattr(probe, name)}
    values["groups"] = tuple(values.get("groups") or ())
    return RequestAttributes(**values)


def _satisfied(policy: Policy, requirements: Sequence[Requirement]) -> frozenset[tuple[str, int]]:
    """(requirement id, probe index) of every probe the policy logs as its requirement needs."""
    out = set()
    for req in requirements:
        for index, probe in enumerate(req.probes):
            cfg = policy.evaluate_request(_attributes(probe))
            if (
                cfg.level != "None"
                and LEVEL_ORDER[cfg.level] >= LEVEL_ORDER[req.level]
                and not set(req.stages) & cfg.omit_stages
            ):
                out.add((req.id, index))
    return frozenset(out)


def _supported(policy: Policy, requirements: Sequence[Requirement]) -> tuple[str, ...]:
    """Requirements every probe of which the policy logs as needed."""
    met = _satisfied(policy, requirements)
    return tuple(
        req.id for req in requirements if all((req.id, i) in met for i in range(len(req.probes)))
    )


def _errors(policy: Policy) -> list[str]:
    return [
        f"{f.code} ({f.field}): {f.message}" for f in lint_policy(policy) if f.severity == "error"
    ]


# --------------------------------------------------------------------------- fixing the base


def _with_rules(policy: Policy, rules: Iterable[PolicyRule], name: str | None = None) -> Policy:
    return dataclasses.replace(
        policy, rules=tuple(rules), unknown_fields=(), name=name or policy.name
    )


def _restricted(rule: PolicyRule, group: str, resource: str) -> tuple[GroupResources, ...]:
    """The items of ``rule`` that match ``group``/``resource``, narrowed to it."""
    base = resource.partition("/")[0]
    sub = resource.partition("/")[2]
    if not rule.resources:
        return (GroupResources(group=group, resources=(resource,)),)
    items = []
    for item in rule.resources:
        if item.group not in (group, "*"):
            continue
        patterns = item.resources
        hit = not patterns or any(
            p in ("*", resource)
            or (p.endswith("/*") and p[:-2] == base)
            or (sub and p == "*/" + sub)
            for p in patterns
        )
        if hit:
            items.append(GroupResources(group, (resource,), item.resource_names))
    return tuple(dict.fromkeys(items))


def _sensitive_fix(policy: Policy) -> tuple[Policy, str] | None:
    hits = {
        index: [(g, r) for g, r, severity, _, _ in found if severity == "error"]
        for index, found in sensitive_hits(policy).items()
    }
    hits = {index: found for index, found in hits.items() if found}
    if not hits:
        return None
    index = min(hits)
    rule = policy.rules[index]
    items = tuple(item for g, r in hits[index] for item in _restricted(rule, g, r))
    fix = dataclasses.replace(rule, level="Metadata", resources=items)
    rules = (*policy.rules[:index], fix, *policy.rules[index:])
    names = ", ".join(sorted({r for _, r in hits[index]}))
    why = f"{names} at Metadata above rule {index} (it logged their bodies: lint sensitive-body)"
    return _with_rules(policy, rules), why


def _coverage_fix(policy: Policy) -> tuple[Policy, str] | None:
    gaps = list(cis_gaps(policy))
    if not gaps:
        return None
    if any(panic_only for *_, panic_only in gaps):
        msg = (
            f"{policy.name} omits every stage but Panic for requests CIS 3.2.2 needs logged; "
            "a rule cannot add stages back: fix its omitStages first"
        )
        raise PolicyError(msg)
    index = gaps[0][2]
    probes = [attrs for _, attrs, at, _ in gaps if at == index]
    labels = [label for label, _, at, _ in gaps if at == index]
    by_verbs: dict[str, list[tuple[str, str]]] = {}
    for attrs in probes:
        target = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        by_verbs.setdefault(attrs.verb, []).append((attrs.api_group, target))
    fixes = [
        PolicyRule(level="Metadata", verbs=(verb,), resources=_items(targets))
        for verb, targets in by_verbs.items()
    ]
    at = len(policy.rules) if index is None else index
    rules = (*policy.rules[:at], *fixes, *policy.rules[at:])
    where = "at the end" if index is None else f"above rule {index}, which dropped them"
    return _with_rules(
        policy, rules
    ), f"Metadata for {', '.join(labels)} {where} (lint cis-coverage)"


def fix_base(policy: Policy) -> tuple[Policy, tuple[str, ...]]:
    """The base made lint-clean, and what was changed (one sentence each).

    Raises
    ------
    PolicyError
        When the errors cannot be fixed by adding rules.

    Examples
    --------
    >>> from kaudit_analytics.policy import catalog_policy
    >>> from kaudit_analytics.policy.suggest import fix_base
    >>> fixed, fixes = fix_base(catalog_policy("gce"))
    >>> print(*fixes)
    serviceaccounts/token at Metadata above rule 14 (it logged their bodies: lint sensitive-body)
    """
    fixes: list[str] = []
    if policy.unknown_fields:
        fixes.append(
            f"written as the apiserver reads it, without {', '.join(policy.unknown_fields)} "
            "(lint unknown-field: the apiserver ignores them)"
        )
        policy = _with_rules(policy, policy.rules)
    for _ in range(4 * len(policy.rules) + 8):  # each pass fixes one rule's findings
        step = _sensitive_fix(policy) or _coverage_fix(policy)
        if step is None:
            break
        policy, why = step
        fixes.append(why)
    errors = _errors(policy)
    if errors:
        msg = f"cannot make {policy.name} lint-clean to start from: {errors[0]}"
        raise PolicyError(msg)
    return policy, tuple(fixes)


# --------------------------------------------------------------------------- the traffic


@dataclass(frozen=True)
class _Target:
    """A resource (``group``, ``name`` = resource[/subresource]) or a path (``group`` None)."""

    group: str | None
    name: str

    @property
    def is_path(self) -> bool:
        return self.group is None

    def text(self) -> str:
        if self.group is None:
            return self.name
        return self.name + (f".{self.group}" if self.group else "")


@dataclass(frozen=True)
class _Cell:
    user: str
    kind: str
    verb: str
    target: _Target
    level: str
    events: int
    bytes: int


def _path_pattern(path: str, move: Move) -> str | None:
    for prefix in move.paths:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix + "*" if prefix in ("/healthz", "/livez", "/readyz", "/openapi") else path
    return None


def _move_for(cell: _Cell, user: str) -> tuple[Move, _Target] | None:
    """The first move that applies to a traffic group, and the target as the rule writes it."""
    for move in MOVES:
        if LEVEL_ORDER[cell.level] <= LEVEL_ORDER[move.level]:
            continue
        if cell.kind not in move.kinds or cell.verb not in move.verbs:
            continue
        if cell.kind == "service_account" and move.sa_namespaces:
            namespace = user.split(":")[2] if user.count(":") >= 3 else ""
            if namespace not in move.sa_namespaces:
                continue
        target = _move_target(cell.target, move)
        if target is not None:
            return move, target
    return None


def _move_target(target: _Target, move: Move) -> _Target | None:
    if target.is_path:
        pattern = _path_pattern(target.name, move)
        return None if pattern is None else _Target(None, pattern)
    group = target.group or ""
    base, _, sub = target.name.partition("/")
    if move.guarded and ((group, base) in _GUARDED_TARGETS or sub in _GUARDED_SUBRESOURCES):
        return None
    allowed = any(g in ("*", group) and r in ("*", target.name) for g, r in move.resources)
    return target if allowed else None


#: What describes a request for ranking, carried through the replay (names that no events
#: column has: ``name`` and ``kind`` are renamed after).
_DESCRIBE = {
    "who": pl.col(USER),
    "who_groups": pl.col(GROUPS),
    "who_kind": exprs.actor_kind().cast(pl.String),
    "what_verb": pl.col(VERB),
    "what_group": pl.col(API_GROUP),
    "what_is_path": pl.col(RESOURCE).is_null(),
    "what_target": request_target(),
    "what_name": pl.concat_str(
        pl.col(RESOURCE),
        pl.when(pl.col(SUBRESOURCE).fill_null("") != "").then("/" + pl.col(SUBRESOURCE)),
        ignore_nulls=True,
    ),
}
_RENAMED = {
    "who": USER,
    "who_kind": "kind",
    "what_verb": VERB,
    "what_group": API_GROUP,
    "what_is_path": "is_path",
    "what_target": "target",
    "what_name": "name",
}
_TRAFFIC_KEY = (USER, "kind", VERB, API_GROUP, "is_path", "target", "name", "level")


def _traffic(
    policy: Policy, events: pl.LazyFrame, model: pl.LazyFrame
) -> tuple[pl.DataFrame, dict[str, tuple[str, ...]]]:
    """Per (user, kind, verb, target, level) what the policy writes; and each user's groups.

    One pass: the replay carries what describes each request (``predicted_events(carry=)``).
    """
    parts, members = [], []
    for frame in request_chunks(events, replay_columns([policy])):
        rows = (
            predicted_events(policy, frame, body_parts=model, carry=_DESCRIBE)
            .select(*_RENAMED, "who_groups", "level", "bytes")
            .rename(_RENAMED)
        )
        # Both read one replay (polars shares the common part of the two queries).
        summed, who = pl.collect_all(
            [
                rows.group_by(_TRAFFIC_KEY).agg(
                    pl.len().cast(pl.Int64).alias("events"), pl.col("bytes").sum().cast(pl.Int64)
                ),
                rows.select(USER, "who_groups").unique(subset=[USER]),
            ]
        )
        parts.append(summed)
        members.append(who)
    if not parts:
        return pl.DataFrame(), {}
    traffic = (
        pl.concat(parts)
        .group_by(_TRAFFIC_KEY)
        .agg(pl.col("events").sum(), pl.col("bytes").sum())
        .sort(
            "bytes", USER, VERB, "target", descending=[True, False, False, False], nulls_last=True
        )
    )
    groups = {
        user: tuple(found or ())
        for user, found in pl.concat(members).unique(subset=[USER]).iter_rows()
        if user is not None
    }
    return traffic, groups


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class _Plan:
    """A rule being built: users (or one group) × verbs × targets at a move's level."""

    move: Move
    users: frozenset[str]
    verbs: frozenset[str]
    targets: frozenset[_Target]
    cells: frozenset[tuple[str, str, _Target]]
    bytes: int
    group: str | None = None

    def rule(self) -> PolicyRule:
        paths = sorted(t.name for t in self.targets if t.is_path)
        by_group: dict[str, list[str]] = {}
        for t in sorted(self.targets, key=lambda t: (t.group or "", t.name)):
            if not t.is_path:
                by_group.setdefault(t.group or "", []).append(t.name)
        anyone = self.move.anyone or self.group is not None
        return PolicyRule(
            level=self.move.level,
            users=() if anyone else tuple(sorted(self.users)),
            user_groups=(self.group,) if self.group else (),
            verbs=tuple(v for v in (*_READS, *_WRITES, "head") if v in self.verbs),
            resources=tuple(GroupResources(g, tuple(r)) for g, r in by_group.items()),
            non_resource_urls=tuple(paths),
        )

    def merged(self, other: _Plan) -> _Plan:
        return _Plan(
            self.move,
            self.users | other.users,
            self.verbs | other.verbs,
            self.targets | other.targets,
            self.cells | other.cells,
            self.bytes + other.bytes,
        )

    @property
    def coverage(self) -> float:
        """Observed share of what the rule matches (users × verbs × targets)."""
        return len(self.cells) / (len(self.users) * len(self.verbs) * len(self.targets))


def _items(targets: Iterable[tuple[str, str]]) -> tuple[GroupResources, ...]:
    by_group: dict[str, list[str]] = {}
    for group, name in targets:
        by_group.setdefault(group, []).append(name)
    return tuple(GroupResources(g, tuple(dict.fromkeys(r))) for g, r in by_group.items())


class _Checker:
    """Whether rules added above the base keep it lint-clean and keep logging what the
    base's requirements need.

    Lint's errors and the requirements are all about probe requests, each judged by the
    rule that decides it. A rule added above a policy decides only the probes it matches,
    so it is acceptable when its own decision is for every probe it matches; and rules
    acceptable one by one are acceptable together, in any order (whichever decides a
    probe, judges it well). Only policy-wide settings call for the whole check (``ok``).
    """

    def __init__(self, base: Policy, requirements: Sequence[Requirement]) -> None:
        self.base = base
        self.requirements = requirements
        self.kept = _satisfied(base, requirements)
        wanted = {
            (req.id, i): (req, probe) for req in requirements for i, probe in enumerate(req.probes)
        }
        self.needed = [
            (_attributes(probe), req) for key, (req, probe) in wanted.items() if key in self.kept
        ]
        self.cis = [attrs for _, attrs in CIS_PROBES]
        self.sensitive = [p for p in sensitive_probes() if p.severity == "error"]

    def ok(self, policy: Policy) -> bool:
        return self.kept <= _satisfied(policy, self.requirements) and not _errors(policy)

    def accepts(self, rule: PolicyRule) -> bool:
        stages = rule.omit_stages | self.base.omit_stages
        if any(rule_matches(rule, p.attributes) and p.leaks(rule.level) for p in self.sensitive):
            return False
        logged = (
            rule.level != "None"
            and not {"RequestReceived", "ResponseStarted", "ResponseComplete"} <= stages
        )
        if not logged and any(rule_matches(rule, attrs) for attrs in self.cis):
            return False
        for attrs, req in self.needed:
            if rule_matches(rule, attrs) and (
                rule.level == "None"
                or LEVEL_ORDER[rule.level] < LEVEL_ORDER[req.level]
                or set(req.stages) & stages
            ):
                return False
        return True


def _plans(cells: Sequence[tuple[_Cell, Move, _Target]]) -> list[_Plan]:
    """Per move and user, the user's verbs × targets (before any check)."""
    by_user: dict[tuple[str, str], _Plan] = {}
    for cell, move, target in cells:
        plan = _Plan(
            move,
            frozenset({cell.user}),
            frozenset({cell.verb}),
            frozenset({target}),
            frozenset({(cell.user, cell.verb, target)}),
            cell.bytes,
        )
        key = (move.name, cell.user)
        by_user[key] = by_user[key].merged(plan) if key in by_user else plan
    return sorted(by_user.values(), key=lambda p: -p.bytes)


#: A merged rule must be at least this much observed traffic (of users × verbs × targets):
#: the rest is traffic of the same kind (the move allows all of it) that was not seen.
_MIN_COVERAGE = 0.25


def _consolidate(plans: list[_Plan], checker: _Checker) -> list[_Plan]:
    """Merge rules of one move while the merged rule is observed traffic for at least
    ``_MIN_COVERAGE`` of what it matches and passes the checks: the most observed merge
    first."""
    refused: set[tuple[_Plan, _Plan]] = set()
    while True:
        pairs = []
        for i, a in enumerate(plans):
            for b in plans[i + 1 :]:
                same_kind = {t.is_path for t in a.targets | b.targets}
                if a.move != b.move or len(same_kind) > 1 or (a, b) in refused:
                    continue
                merged = a.merged(b)
                if merged.coverage >= _MIN_COVERAGE:
                    pairs.append((-merged.coverage, -merged.bytes, a, b, merged))
        pairs.sort(key=lambda pair: pair[:2])
        for *_, a, b, merged in pairs:
            if checker.accepts(merged.rule()):
                plans = [p for p in plans if p is not a and p is not b] + [merged]
                plans.sort(key=lambda p: -p.bytes)
                break
            refused.add((a, b))
        else:
            return plans


def _with_groups(
    plans: list[_Plan],
    groups: dict[str, tuple[str, ...]],
    kinds: dict[str, str],
    checker: _Checker,
) -> list[_Plan]:
    """A group for the users of a rule when the rule lists every member seen of it."""
    members: dict[str, set[str]] = {}
    for user, found in groups.items():
        for group in found:
            members.setdefault(group, set()).add(user)
    plans = list(plans)
    for index, plan in enumerate(plans):
        for group, who in sorted(members.items()):
            if group in _BROAD_GROUPS or len(who) < 2 or who != set(plan.users):
                continue
            if not all(kinds.get(user) in plan.move.kinds for user in who):
                continue
            candidate = dataclasses.replace(plan, group=group)
            if checker.accepts(candidate.rule()):
                plans[index] = candidate
                break
    return plans


# --------------------------------------------------------------------------- the suggestion


@dataclass(frozen=True)
class Suggestion:
    """A tuned policy and what it changes on the observed traffic.

    Attributes
    ----------
    policy, yaml
        The tuned policy, and as YAML with a comment above each added rule.
    noisiest
        The noisiest traffic groups under the base: user, kind, verb, target, level,
        events, bytes, share, and what the suggestion does with each (``action``, ``why``).
    rules
        One row per rule of the tuned policy: where it comes from, its level, what it
        matches, events and bytes before (under the base) and after, and why it is safe.
    before, after
        The volume estimates of the base and of the tuned policy.
    fixes
        What was changed in the base to make it lint-clean before tuning.
    kept
        Requirements (compliance controls) the base supports and the tuned policy still does.
    """

    policy: Policy
    yaml: str
    noisiest: pl.DataFrame
    rules: pl.DataFrame
    before: VolumeEstimate
    after: VolumeEstimate
    fixes: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()

    @property
    def saved_share(self) -> float:
        """Share of the base's bytes the tuned policy does not write."""
        return 1 - self.after.bytes / self.before.bytes if self.before.bytes else 0.0


_GROUP_KEY = ("kind", VERB, API_GROUP, "is_path", "target", "name", "level")


def _groups(traffic: pl.DataFrame, top: int) -> pl.DataFrame:
    """The ``top`` noisiest traffic groups (kind of actor, verb, target, level under the
    base): users, events, bytes, and the share of all bytes."""
    total = max(int(traffic["bytes"].sum()), 1) if traffic.height else 1
    return (
        traffic.group_by(_GROUP_KEY)
        .agg(
            pl.col(USER).n_unique().alias("users"),
            pl.col(USER).sort_by("bytes", descending=True).first().alias("top_user"),
            pl.col("events").sum(),
            pl.col("bytes").sum(),
        )
        .sort(
            "bytes", "kind", VERB, "target", descending=[True, False, False, False], nulls_last=True
        )
        .head(top)
        .with_columns((pl.col("bytes") / total).alias("share"))
        .with_row_index("rank")
    )


def _cell(row: dict[str, Any]) -> _Cell | None:
    if row[USER] is None or row["level"] == "None":
        return None
    target = (
        _Target(None, row["target"])
        if row["is_path"]
        else _Target(row[API_GROUP] or "", row["name"])
    )
    return _Cell(
        row[USER], row["kind"], row[VERB], target, row["level"], row["events"], row["bytes"]
    )


def _why_kept(cell: _Cell | None) -> str:
    if cell is None:
        return "no authenticated user, or not logged: nothing to change"
    if cell.kind == "human":
        return "a person's request: people are never silenced"
    target = cell.target
    if not target.is_path:
        base, _, sub = target.name.partition("/")
        if (target.group or "", base) in _GUARDED_TARGETS or sub in _GUARDED_SUBRESOURCES:
            return "credential reads and exec/attach/port-forward/proxy are always logged"
    if cell.verb in _WRITES:
        return "a write: who changed what stays logged"
    return "no move applies (already at the lowest level its kind of traffic allows)"


def suggest_policy(
    base: Policy,
    events: pl.LazyFrame,
    *,
    top: int = 50,
    requirements: Sequence[Requirement] = (),
) -> Suggestion:
    """See ``kaudit_analytics.policy.suggest`` (the module docstring: how, and why it is safe)."""
    fixed, fixes = fix_base(base)
    checker = _Checker(fixed, requirements)
    model = body_model_parts(events).collect(engine="streaming").lazy()
    traffic, groups = _traffic(fixed, events, model)
    ranked = _groups(traffic, top)
    chosen, actions, kinds = [], [], {}
    by_group = traffic.join(
        ranked.select(*_GROUP_KEY, "rank"), on=list(_GROUP_KEY), nulls_equal=True
    ).sort("rank", "bytes", descending=[False, True])
    for rank in range(ranked.height):
        members = by_group.filter(pl.col("rank") == rank)
        done, why, move_name = 0, "", ""
        for row in members.iter_rows(named=True):  # the users of one traffic group
            cell = _cell(row)
            found = _move_for(cell, cell.user) if cell is not None else None
            if cell is None or found is None:
                why = why or _why_kept(cell)
                continue
            move, target = found
            if checker.accepts(_plans([(cell, move, target)])[0].rule()):
                chosen.append((cell, move, target))
                kinds[cell.user] = cell.kind
                done, why, move_name = done + 1, move.why, f"{move.name}: {move.level}"
            else:
                why = why or "a requirement the base meets needs it logged as it is"
        action = (
            move_name
            if done == len(members)
            else f"{move_name} ({done} of {len(members)} users)"
            if done
            else "keep"
        )
        actions.append((action, why))
    plans = _with_groups(_consolidate(_plans(chosen), checker), groups, kinds, checker)
    # Silencing rules first: a rule that keeps reads at Metadata for everyone comes after
    # those that drop a component's reads altogether.
    plans.sort(key=lambda p: (LEVEL_ORDER[p.move.level], -p.bytes))
    rules = [plan.rule() for plan in plans]
    tuned = _tuned(fixed, rules, checker)
    estimates, per_rule = _replay(base, tuned, events, model)
    noisiest = ranked.select(
        "kind", VERB, "target", "level", "users", "top_user", "events", "bytes", "share",
        pl.Series("action", [a for a, _ in actions], dtype=pl.String),
        pl.Series("why", [w for _, w in actions], dtype=pl.String),
    )  # fmt: skip
    table = _rules_table(tuned, plans, fixed, per_rule)
    header = _header(base, fixes, estimates, len(plans))
    comments = _comments(tuned, plans, table, fixed)
    text = policy_yaml(tuned, header=header, comments=comments)
    return Suggestion(
        policy=dataclasses.replace(load_policy(text), name=f"{base.name}-tuned"),
        yaml=text,
        noisiest=noisiest,
        rules=table,
        before=estimates["before"],
        after=estimates["after"],
        fixes=fixes,
        kept=tuple(
            r for r in _supported(fixed, requirements) if r in _supported(tuned, requirements)
        ),
    )


def _tuned(fixed: Policy, rules: list[PolicyRule], checker: _Checker) -> Policy:
    """The added rules above the base, unreachable rules removed, RequestReceived and
    managedFields omitted where the checks allow."""
    tuned = _with_rules(fixed, (*rules, *fixed.rules), name="tuned")
    for managed, stages in ((True, frozenset()), (False, frozenset({"RequestReceived"}))):
        candidate = dataclasses.replace(
            tuned,
            omit_managed_fields=managed or tuned.omit_managed_fields,
            omit_stages=tuned.omit_stages | stages,
        )
        if checker.ok(candidate):
            tuned = candidate
    kept: list[PolicyRule] = []
    for rule in tuned.rules:
        if not any(subsumes(earlier, rule) for earlier in kept):
            kept.append(rule)
    return _with_rules(tuned, kept)


#: What ``Policy.evaluate`` reads.
_EVALUATED = (CLUSTER, AUDIT_ID, STAGE, VERB, REQUEST_URI, USER, GROUPS, API_GROUP, RESOURCE,
              SUBRESOURCE, NAMESPACE, NAME)  # fmt: skip


def _replay(
    base: Policy, tuned: Policy, events: pl.LazyFrame, model: pl.LazyFrame
) -> tuple[dict[str, VolumeEstimate], pl.DataFrame]:
    """Both estimates and, per rule of the tuned policy, what the requests it decides cost
    under the base and under it: one read of the traffic, a slice at a time."""
    sums: dict[str, list[tuple[pl.DataFrame, pl.DataFrame]]] = {"before": [], "after": []}
    per_rule, seen, spans = [], [], []
    keys = [CLUSTER, AUDIT_ID]
    tuned_rule = {"tuned_rule": pl.col("tuned_rule")}
    for frame in request_chunks(events, replay_columns([base, tuned])):
        # The base's events carry the tuned policy's decision for their request (one small
        # table per slice: composing the two evaluations lazily is many times slower).
        decided = (
            tuned.evaluate(frame.select(_EVALUATED))
            .group_by(keys)
            .agg(pl.col(POLICY_RULE).first().alias("tuned_rule"))
            .collect()
            .lazy()
        )
        # The replay reads its input twice and pairs the rows up by position: the join
        # must keep the events' order.
        with_rule = frame.join(
            decided, on=keys, how="left", nulls_equal=True, maintain_order="left"
        )
        # Only the columns the sums read: no request ids are kept.
        measures = ("rule", "level", "stage", DATE, "bytes", "exact_bytes", "modelled_bytes",
                    "synthesized")  # fmt: skip
        before = (
            predicted_events(base, with_rule, body_parts=model, carry=tuned_rule)
            .select(*measures, "tuned_rule")
            .collect()
        )
        after = predicted_events(tuned, frame, body_parts=model).select(measures).collect()
        for name, rows in (("before", before), ("after", after)):
            by_rule, by_day = volume_parts(rows.lazy())
            sums[name].append((by_rule.collect(), by_day.collect()))
        was = before.group_by(pl.col("tuned_rule").alias("rule")).agg(
            pl.len().alias("events_before"), pl.col("bytes").sum().alias("bytes_before")
        )
        now = after.group_by("rule").agg(
            pl.len().alias("events_after"), pl.col("bytes").sum().alias("bytes_after")
        )
        per_rule.append(was.join(now, on="rule", how="full", coalesce=True, nulls_equal=True))
        observed, first_last = observed_and_span(frame)
        seen.append(observed)
        spans.append(first_last)
    span = merge_spans(spans)
    observed = pl.concat(seen)
    estimates = {
        name: volume_estimate(
            pl.concat([r for r, _ in parts]), pl.concat([d for _, d in parts]), observed, span=span
        )
        for name, parts in sums.items()
    }
    counts = ("events_before", "bytes_before", "events_after", "bytes_after")
    rules = (
        pl.concat(per_rule, how="diagonal_relaxed")
        .group_by("rule")
        .agg(pl.col(m).fill_null(0).sum().cast(pl.Int64) for m in counts)
    )
    return estimates, rules


def _summary(rule: PolicyRule) -> str:
    """``None: get,list leases.coordination.k8s.io by 3 users``."""
    what = [
        f"{name}.{item.group}" if item.group else name
        for item in rule.resources
        for name in (item.resources or ("*",))
    ] + list(rule.non_resource_urls)
    who = (
        f"group {', '.join(rule.user_groups)}"
        if rule.user_groups
        else (rule.users[0] if len(rule.users) == 1 else f"{len(rule.users)} users")
        if rule.users
        else "anyone"
    )
    verbs = ",".join(rule.verbs) if rule.verbs else "any verb"
    return f"{verbs} {', '.join(what) or 'anything'} by {who}"


def _rules_table(
    tuned: Policy, plans: list[_Plan], fixed: Policy, per_rule: pl.DataFrame
) -> pl.DataFrame:
    added = {plan.rule(): plan for plan in plans}
    base_index = {rule: index for index, rule in reversed(list(enumerate(fixed.rules)))}
    rows = []
    for index, rule in enumerate(tuned.rules):
        plan = added.get(rule)
        origin = f"added ({plan.move.name})" if plan else f"base rule {base_index.get(rule, '?')}"
        why = plan.move.why if plan else "unchanged from the base"
        rows.append((index, origin, rule.level, _summary(rule), why))
    table = pl.DataFrame(
        rows, schema=["rule", "origin", "level", "matches", "why"], orient="row"
    ).with_columns(pl.col("rule").cast(pl.Int32))
    numbers = per_rule.with_columns(pl.col("rule").cast(pl.Int32))
    return (
        table.join(numbers, on="rule", how="left")
        .with_columns(
            pl.col(c).fill_null(0)
            for c in ("events_before", "bytes_before", "events_after", "bytes_after")
        )
        .with_columns((pl.col("bytes_before") - pl.col("bytes_after")).alias("saved_bytes"))
        .select(
            "rule",
            "origin",
            "level",
            "matches",
            "events_before",
            "bytes_before",
            "events_after",
            "bytes_after",
            "saved_bytes",
            "why",
        )
    )


def _header(
    base: Policy, fixes: tuple[str, ...], estimates: dict[str, VolumeEstimate], added: int
) -> str:
    before, after = estimates["before"], estimates["after"]
    lines = [
        f"Tuned by kaudit policy suggest from {base.name}: {added} rule(s) added on top.",
        f"Observed traffic ({before.span.describe()}):",
        f"  under the base: {before.events:,} events, {before.bytes / 1e6:,.1f} MB;",
        f"  under this policy: {after.events:,} events, {after.bytes / 1e6:,.1f} MB "
        f"({_percent(after.bytes, before.bytes)}).",
    ]
    if fixes:
        lines.append("The base was made lint-clean first:")
        lines += [f"  - {fix}" for fix in fixes]
    return "\n".join(lines)


def _comments(
    tuned: Policy, plans: list[_Plan], table: pl.DataFrame, fixed: Policy
) -> dict[int, str]:
    added = {plan.rule(): plan for plan in plans}
    saved = dict(zip(table["rule"], table["saved_bytes"], strict=True))
    events = dict(zip(table["rule"], table["events_before"] - table["events_after"], strict=True))
    out = {}
    for index, rule in enumerate(tuned.rules):
        plan = added.get(rule)
        if plan is not None:
            out[index] = (
                f"kaudit suggest ({plan.move.name}): {plan.move.why}.\n"
                f"Saves ~{events.get(index, 0):,} events and ~{saved.get(index, 0) / 1e6:,.2f} MB "
                "on the observed traffic."
            )
    first_base = next((i for i, r in enumerate(tuned.rules) if r not in added), None)
    if first_base is not None and plans:
        out[first_base] = (
            out.get(first_base, "") + f"\nRules of the base policy ({fixed.name}) follow."
        ).strip()
    return out


def _percent(new: int, old: int) -> str:
    return f"{(new - old) / old * 100:+.1f} %" if old else "n/a"


# --------------------------------------------------------------------------- YAML


def _rule_dict(rule: PolicyRule) -> dict[str, Any]:
    out: dict[str, Any] = {"level": rule.level}
    for key, value in (
        ("users", rule.users),
        ("userGroups", rule.user_groups),
        ("verbs", rule.verbs),
        ("namespaces", rule.namespaces),
        ("nonResourceURLs", rule.non_resource_urls),
    ):
        if value:
            out[key] = list(value)
    if rule.resources:
        out["resources"] = [
            {
                "group": item.group,
                **({"resources": list(item.resources)} if item.resources else {}),
                **({"resourceNames": list(item.resource_names)} if item.resource_names else {}),
            }
            for item in rule.resources
        ]
    if rule.omit_stages:
        out["omitStages"] = sorted(rule.omit_stages)
    if rule.omit_managed_fields is not None:
        out["omitManagedFields"] = rule.omit_managed_fields
    return out


def policy_yaml(policy: Policy, *, header: str = "", comments: dict[int, str] | None = None) -> str:
    """A policy as ``audit.k8s.io/v1`` YAML, with a comment header and per-rule comments.

    Examples
    --------
    >>> from kaudit_analytics.policy import load_policy, policy_yaml
    >>> text = policy_yaml(load_policy("apiVersion: audit.k8s.io/v1\\nrules: [{level: Metadata}]"))
    >>> print(text, end="")
    apiVersion: audit.k8s.io/v1
    kind: Policy
    rules:
      - {level: Metadata}
    """
    comments = comments or {}
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += ["apiVersion: audit.k8s.io/v1", "kind: Policy"]
    if policy.omit_stages:
        lines.append(f"omitStages: {sorted(policy.omit_stages)}".replace("'", '"'))
    if policy.omit_managed_fields:
        lines.append("omitManagedFields: true")
    lines.append("rules:")
    for index, rule in enumerate(policy.rules):
        if index in comments:
            lines += [f"  # {line}".rstrip() for line in comments[index].splitlines()]
        text = yaml.safe_dump(
            [_rule_dict(rule)], default_flow_style=None, sort_keys=False, width=96
        )
        lines += ["  " + line for line in text.rstrip().splitlines()]
    return "\n".join(lines) + "\n"
