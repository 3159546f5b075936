"""Replaying observed traffic under a candidate policy: events and bytes it would write.

How the replay works (``reference/policy-semantics.md`` §6):

* The policy is evaluated once per request (all stage events share ``audit_id``).
* A request has the stages the apiserver emits for it: ``RequestReceived``;
  ``ResponseStarted`` when long-running (verb watch/proxy, subresource
  attach/exec/proxy/log/portforward, or ``/debug/pprof/``); then ``ResponseComplete``, or
  ``Panic`` when the observed log shows one. A failed authentication is one
  ``ResponseStarted`` event (no user, code 401). Stages the observed policy omitted are
  synthesized.
* Bytes of an observed stage event are **exact**: the real serialized size, with the
  ``level`` string swapped and the ``requestObject`` / ``responseObject`` /
  ``managedFields`` the candidate drops subtracted (key and comma included).
* Bytes are **modelled** where the candidate needs more than was captured: bodies the
  observed level did not keep take the mean size of the bodies seen for the same
  (api_group, resource, verb), and synthesized stage events are derived from a sibling
  event of the same request (``RequestReceived`` has no responseStatus, annotations,
  impersonatedUser, nor the uid/resourceVersion/name the apiserver back-fills later).
* Requests the observed policy never logged are not in the data and cannot be replayed;
  the result says so and, given the observed policy, lists probe requests that the
  candidate would log but the observed policy dropped (the estimate is then a lower bound).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from kaudit_analytics.policy.evaluate import ATTR_COLUMNS, evaluate
from kaudit_analytics.policy.rules import RuleSet
from kaudit_analytics.policy.traffic import Span
from kaudit_analytics.schema import (
    ANNOTATIONS,
    API_GROUP,
    AUDIT_ID,
    CLUSTER,
    CODE,
    DATE,
    EVENT_BYTES,
    GROUPS,
    IMPERSONATED_GROUPS,
    IMPERSONATED_USER,
    LEVEL,
    LEVELS,
    MANAGED_FIELDS_BYTES,
    MESSAGE,
    NAME,
    NAMESPACE,
    OBJECT_UID,
    REASON,
    REQUEST_OBJECT,
    REQUEST_OBJECT_BYTES,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    RESOURCE_VERSION,
    RESPONSE_OBJECT_BYTES,
    STAGE,
    STAGE_TS,
    STAGES,
    STATUS,
    SUBRESOURCE,
    TRUNCATED,
    USER,
    VERB,
)

__all__ = [
    "BODY_PARTS_SCHEMA",
    "BY_RULE_SCHEMA",
    "CHUNK_ROWS",
    "OBSERVED_SUMS",
    "VOLUME_SUMS",
    "VolumeEstimate",
    "body_model_parts",
    "estimate_volume",
    "estimate_volumes",
    "merge_spans",
    "observed_and_span",
    "observed_parts",
    "predicted_events",
    "replay_columns",
    "request_chunks",
    "volume_estimate",
    "volume_parts",
]

_LONG_VERBS = ("watch", "proxy")
_LONG_SUBRESOURCES = ("attach", "exec", "proxy", "log", "portforward")
_REQUEST_KEY = len(',"requestObject":')
_RESPONSE_KEY = len(',"responseObject":')
_MANAGED_KEY = len('"managedFields":,')
_BODY_LEVELS = ("Request", "RequestResponse")
_SHORT = {"RequestReceived": "rr", "ResponseStarted": "rs", "ResponseComplete": "rc", "Panic": "p"}

BY_RULE_SCHEMA = pl.Schema(
    {
        "rule": pl.Int32,
        "level": pl.String,
        "stage": pl.String,
        "events": pl.Int64,
        "bytes": pl.Int64,
        "exact_bytes": pl.Int64,
        "modelled_bytes": pl.Int64,
        "synthesized_events": pl.Int64,
    }
)


@dataclass(frozen=True)
class VolumeEstimate:
    """What a policy would write for the observed traffic.

    Attributes
    ----------
    events, bytes
        Totals the candidate policy would write.
    exact_bytes, modelled_bytes
        How ``bytes`` splits between exact figures and modelled ones.
    observed_events, observed_bytes
        What the input holds (the observed policy's output).
    by_rule
        One row per rule × level × stage (``rule`` null: no rule matched).
    by_day
        One row per date: events and bytes.
    requests
        Requests replayed (distinct audit IDs).
    never_logged
        Probe requests the candidate logs but the observed policy dropped (needs
        ``observed_policy``); non-empty means the totals are a lower bound.
    notes
        Plain-language caveats.
    span
        How long the replayed traffic lasted: what daily rates are extrapolated from.
    """

    events: int
    bytes: int
    exact_bytes: int
    modelled_bytes: int
    observed_events: int
    observed_bytes: int
    requests: int
    by_rule: pl.DataFrame
    by_day: pl.DataFrame
    never_logged: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    span: Span = field(default=Span(None, None))

    @property
    def delta_events(self) -> int:
        """Candidate minus observed events."""
        return self.events - self.observed_events

    @property
    def delta_bytes(self) -> int:
        """Candidate minus observed bytes."""
        return self.bytes - self.observed_bytes

    @property
    def lower_bound(self) -> bool:
        """The candidate logs traffic the observed policy never logged."""
        return bool(self.never_logged)


def _quoted_len(text: pl.Expr) -> pl.Expr:
    """Bytes of a JSON string as Go writes it (quotes, escapes, \\u0026 for & < >)."""
    return (
        text.str.len_bytes()
        + 2
        + text.str.count_matches(r'["\\\n\r\t]')
        + 5 * text.str.count_matches(r"[<>&]")
    ).cast(pl.Int64)


def _status_len() -> pl.Expr:
    """``,"responseStatus":{...}`` (metav1.Status field order; details are not kept)."""
    optional = [
        pl.when(pl.col(c).is_not_null()).then(len(key) + _quoted_len(pl.col(c))).otherwise(0)
        for c, key in ((STATUS, ',"status":'), (MESSAGE, ',"message":'), (REASON, ',"reason":'))
    ]
    code = pl.col(CODE).cast(pl.String).str.len_bytes().cast(pl.Int64)
    base = len(',"responseStatus":{"metadata":{}') + len(',"code":') + 1
    return pl.when(pl.col(CODE).is_not_null()).then(base + code + pl.sum_horizontal(optional))


def _annotations_len(pairs: pl.Expr, *, latency_only: bool = False) -> pl.Expr:
    """``,"annotations":{...}`` bytes (or only the latency entries) of a list of pairs."""
    element = pl.element()
    key, value = element.struct.field("key"), element.struct.field("value")
    if latency_only:
        pairs = pairs.list.eval(element.filter(key.str.starts_with("apiserver.latency.k8s.io/")))
    sizes = pairs.list.eval(_quoted_len(key) + _quoted_len(value) + 2).list.sum()
    if latency_only:
        return sizes.fill_null(0)
    return pl.when(pairs.list.len() > 0).then(len(',"annotations":{}') - 1 + sizes).otherwise(0)


def _impersonation_len() -> pl.Expr:
    groups = pl.col(IMPERSONATED_GROUPS)
    group_bytes = groups.list.eval(_quoted_len(pl.element()) + 1).list.sum()
    with_groups = pl.when(groups.list.len() > 0).then(len(',"groups":[') + group_bytes)
    return (
        pl.when(pl.col(IMPERSONATED_USER).is_not_null())
        .then(
            len(',"impersonatedUser":{"username":}')
            + _quoted_len(pl.col(IMPERSONATED_USER))
            + with_groups.fill_null(0)
        )
        .otherwise(0)
    )


def _late_ref_len() -> pl.Expr:
    """objectRef fields the apiserver fills after RequestReceived (``LogRequestObject``)."""
    parts = [
        pl.when(pl.col(OBJECT_UID).is_not_null()).then(
            len(',"uid":') + _quoted_len(pl.col(OBJECT_UID))
        ),
        pl.when(pl.col(RESOURCE_VERSION).is_not_null()).then(
            len(',"resourceVersion":') + _quoted_len(pl.col(RESOURCE_VERSION))
        ),
        pl.when(pl.col(NAME).is_not_null() & (pl.col(ATTR_COLUMNS["name"]) == "")).then(
            len(',"name":') + _quoted_len(pl.col(NAME))
        ),
        pl.when(pl.col(NAMESPACE).is_not_null() & (pl.col(ATTR_COLUMNS["namespace"]) == "")).then(
            len(',"namespace":') + _quoted_len(pl.col(NAMESPACE))
        ),
    ]
    return pl.sum_horizontal(p.fill_null(0) for p in parts)


def _stage_mask(policy: RuleSet) -> pl.Expr:
    """Per row: a bitmask of the stages the candidate's matching rule keeps (0: none)."""
    bits = {stage: 1 << i for i, stage in enumerate(_SHORT)}
    masks = [
        0
        if rule.level == "None"
        else sum(
            bit for stage, bit in bits.items() if stage not in rule.omit_stages | policy.omit_stages
        )
        for rule in policy.rules
    ]
    return (
        pl.col("policy_rule")
        .replace_strict(list(range(len(masks))), masks, default=0, return_dtype=pl.Int8)
        .fill_null(0)
    )


def _keeps(stage: str) -> pl.Expr:
    return (pl.col("keep_mask") & (1 << list(_SHORT).index(stage))) != 0


def _ever_keeps(policy: RuleSet, stage: str) -> bool:
    """Some rule writes ``stage`` (else nothing about that stage needs computing)."""
    return any(
        rule.level != "None" and stage not in rule.omit_stages | policy.omit_stages
        for rule in policy.rules
    )


def _enum_len(column: str, values: tuple[str, ...]) -> pl.Expr:
    """Bytes of an Enum column's value, from its physical code (no string per row)."""
    return (
        pl.col(column)
        .to_physical()
        .replace_strict(list(range(len(values))), [len(v) for v in values], return_dtype=pl.Int64)
    )


_LONG_PATH = "__policy_long_running_path"


def _long_running_path() -> pl.Expr:
    """The path's part of kube-apiserver's long-running check (over the attributes)."""
    sub = pl.col(ATTR_COLUMNS["subresource"])
    resource_request = pl.col(ATTR_COLUMNS["resource_request"])
    return (resource_request & sub.is_in(_LONG_SUBRESOURCES)) | (
        ~resource_request & pl.col(ATTR_COLUMNS["path"]).str.starts_with("/debug/pprof/")
    )


_DISCOVERY = "__policy_discovery_path"


def _discovery_path() -> pl.Expr:
    """API discovery (``/api``, ``/apis/...``): the non-resource requests whose response is
    an object (``WriteObjectNegotiated``); the others write raw bytes the audit never keeps."""
    return ~pl.col(ATTR_COLUMNS["resource_request"]) & pl.col(ATTR_COLUMNS["path"]).str.starts_with(
        "/api"
    )


def _long_running() -> pl.Expr:
    """kube-apiserver's long-running check (``ResponseStarted`` is emitted)."""
    verb = pl.col(ATTR_COLUMNS["verb"])
    return (verb.is_in(_LONG_VERBS) | pl.col(_LONG_PATH)).fill_null(value=False)


def _omit_managed(policy: RuleSet) -> pl.Expr:
    """The matching rule's omitManagedFields (the policy's when the rule does not say)."""
    return pl.col("policy_rule").replace_strict(
        list(range(len(policy.rules))),
        [
            policy.omit_managed_fields if r.omit_managed_fields is None else r.omit_managed_fields
            for r in policy.rules
        ],
        default=policy.omit_managed_fields,
        return_dtype=pl.Boolean,
    )


def _level(policy: RuleSet) -> pl.Expr:
    return pl.col("policy_rule").replace_strict(
        list(range(len(policy.rules))),
        [rule.level for rule in policy.rules],
        default=pl.lit("None"),
        return_dtype=pl.String,
    )


def _row_columns(policy: RuleSet) -> list[pl.Expr]:
    """Per observed event: its size without level, stage and bodies, and the parts.

    The costly parts (annotation sizes, managedFields inside a request body) are computed
    only on the rows that need them: other rows get a null input, which polars skips.
    """
    stage = pl.col(STAGE)
    req = pl.col(REQUEST_OBJECT_BYTES).cast(pl.Int64)
    resp = pl.col(RESPONSE_OBJECT_BYTES).cast(pl.Int64)
    omit_managed = _omit_managed(policy)
    managed = pl.col(MANAGED_FIELDS_BYTES).cast(pl.Int64).fill_null(0)
    # The split of managedFields between the two bodies matters only when the candidate
    # keeps the request body alone; parse the body (costly) only then.
    split = (
        (pl.col(VERB) != "patch")
        & omit_managed
        & (pl.col("policy_level") == "Request")
        & req.is_not_null()
        & resp.is_not_null()
        & (managed > 0)
    )
    body = pl.when(split).then(pl.col(REQUEST_OBJECT))
    mf_req = (
        # A patch is logged as sent (``LogRequestPatch``): no managedFields dropped from it.
        pl.when(pl.col(VERB) == "patch")
        .then(0)
        .when(split)
        .then(
            body.str.json_path_match("$.metadata.managedFields").str.len_bytes().cast(pl.Int64)
            + _MANAGED_KEY
        )
        .when(resp.is_null())
        .then(managed)
        .otherwise(0)
        .fill_null(0)
    )
    # Sources of a synthesized RequestReceived / ResponseStarted (none when no rule writes
    # that stage: the policy alone says so, and the costly sizes are skipped).
    late_needed = _keeps("RequestReceived") & (stage != "RequestReceived")
    latency_needed = _keeps("ResponseStarted") & (stage == "ResponseComplete")
    if not _ever_keeps(policy, "RequestReceived"):
        late_needed = pl.lit(value=False)
    if not _ever_keeps(policy, "ResponseStarted"):
        latency_needed = pl.lit(value=False)
    by_stage = []
    core = (
        pl.col(EVENT_BYTES).cast(pl.Int64)
        - _enum_len(LEVEL, LEVELS)
        - _enum_len(STAGE, STAGES)
        - pl.when(req.is_not_null()).then(req + _REQUEST_KEY).otherwise(0)
        - pl.when(resp.is_not_null()).then(resp + _RESPONSE_KEY).otherwise(0)
    )
    late = (
        _status_len().fill_null(0)
        + _annotations_len(pl.when(late_needed).then(pl.col(ANNOTATIONS))).fill_null(0)
        + _impersonation_len()
        + _late_ref_len()
    )
    latency = _annotations_len(pl.when(latency_needed).then(pl.col(ANNOTATIONS)), latency_only=True)
    for name, short in _SHORT.items():
        hit = stage == name
        by_stage += [
            hit.alias(f"has_{short}"),
            pl.when(hit).then(core).alias(f"core_{short}"),
            (
                pl.when(hit & late_needed).then(late)
                if _ever_keeps(policy, "RequestReceived")
                else pl.lit(None, dtype=pl.Int64)
            ).alias(f"late_{short}"),
        ]
    final = stage.is_in(["ResponseComplete", "Panic"])
    started = stage == "ResponseStarted"
    bodies = {
        "req": req,
        "resp": resp,
        "mf_req": pl.min_horizontal(mf_req, managed),
        "mf_resp": managed - pl.min_horizontal(mf_req, managed),
    }
    return [
        pl.when(latency_needed).then(latency).alias("latency_rc"),
        _long_running().alias("long_running"),
        *by_stage,
        *(pl.when(final).then(expr).alias(f"{key}_final") for key, expr in bodies.items()),
        *(pl.when(started).then(expr).alias(f"{key}_started") for key, expr in bodies.items()),
    ]


#: Body sizes assumed when the observed traffic never captured a body of that verb (bytes;
#: typical single objects of ~1-2 KB, list responses of ~20 objects).
DEFAULT_REQUEST_BYTES = 1_200
DEFAULT_RESPONSE_BYTES = 2_000
DEFAULT_LIST_RESPONSE_BYTES = 20_000


#: What ``body_model_parts`` returns: additive sums and counts of the captured body sizes.
BODY_PARTS_SCHEMA = pl.Schema(
    {
        API_GROUP: pl.String,
        RESOURCE: pl.String,
        VERB: pl.String,
        "failed": pl.Boolean,
        "req_sum": pl.Int64,
        "req_n": pl.Int64,
        "resp_sum": pl.Int64,
        "resp_n": pl.Int64,
    }
)
_BODY_SUMS = ("req_sum", "req_n", "resp_sum", "resp_n")


#: An error's response body is a small ``Status``, a success's the object: modelled apart.
_FAILED = (pl.col(CODE) >= 400).fill_null(value=False)
_MODEL_KEY = (API_GROUP, RESOURCE, VERB, "failed")


def body_model_parts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Sums and counts of captured body sizes per (api_group, resource, verb, failed).

    Additive: the parts of disjoint slices of the events add up to the parts of the whole,
    so a distributed engine computes them per batch and sums them (``_body_model`` does).
    """
    req = pl.col(REQUEST_OBJECT_BYTES).cast(pl.Int64)
    resp = pl.col(RESPONSE_OBJECT_BYTES).cast(pl.Int64)
    return (
        events.group_by(API_GROUP, RESOURCE, VERB, _FAILED.alias("failed"))
        .agg(
            req.sum().alias("req_sum"),
            req.count().cast(pl.Int64).alias("req_n"),
            resp.sum().alias("resp_sum"),
            resp.count().cast(pl.Int64).alias("resp_n"),
        )
        .cast(dict(BODY_PARTS_SCHEMA))  # type: ignore[arg-type]
    )


def _mean(total: str, count: str) -> pl.Expr:
    return pl.when(pl.col(count) > 0).then(pl.col(total) / pl.col(count))


def _body_model(parts: pl.LazyFrame) -> pl.LazyFrame:
    """Mean body sizes per (api_group, resource, verb) where the bodies were captured,
    falling back to the verb's mean over all resources, then to the defaults above.

    ``parts`` are ``body_model_parts`` of the events, or of slices of them (summed here).
    """
    sums = [pl.col(name).sum() for name in _BODY_SUMS]
    parts = parts.group_by(*_MODEL_KEY).agg(sums)
    by_verb = (
        parts.group_by(VERB, "failed")
        .agg(sums)
        .select(
            VERB,
            "failed",
            _mean("req_sum", "req_n").alias("verb_req"),
            _mean("resp_sum", "resp_n").alias("verb_resp"),
        )
    )
    default_resp = (
        pl.when(pl.col(VERB) == "list")
        .then(DEFAULT_LIST_RESPONSE_BYTES)
        .otherwise(DEFAULT_RESPONSE_BYTES)
    )
    return (
        parts.with_columns(
            _mean("req_sum", "req_n").alias("model_req"),
            _mean("resp_sum", "resp_n").alias("model_resp"),
        )
        .join(by_verb, on=[VERB, "failed"], how="left", nulls_equal=True)
        .select(
            *_MODEL_KEY,
            pl.coalesce("model_req", "verb_req", pl.lit(DEFAULT_REQUEST_BYTES)).alias("model_req"),
            pl.coalesce("model_resp", "verb_resp", default_resp).alias("model_resp"),
        )
    )


def _per_request(
    evaluated: pl.LazyFrame, policy: RuleSet, carry: Sequence[str] = ()
) -> pl.LazyFrame:
    """One row per request; only simple aggregations (polars' fast path).

    Most requests have one event left (the candidate drops the rest, or the observed
    policy wrote one): those rows pass straight through, and only the requests with
    several events are grouped.
    """
    # Per output column: the per-event value and how a request's events combine.
    columns: dict[str, tuple[pl.Expr, str]] = {
        # The level, stage mask and omitManagedFields follow from the rule: recomputed after.
        **{c: (pl.col(c), "first") for c in ("policy_rule", "long_running")},
        **{c: (pl.col(c), "first") for c in (API_GROUP, RESOURCE, VERB, DATE, *carry)},
        "observed_level": (pl.col(LEVEL).cast(pl.String), "first"),
        "failed": (_FAILED, "any"),
        # Non-resource requests answer with an object only for API discovery (and errors).
        "discovery": (pl.col(_DISCOVERY).fill_null(value=False), "first"),
        "no_user": (pl.col(USER).is_null(), "all"),
        "unauthorized": (pl.col(CODE) == 401, "any"),
        "truncated": (pl.col(TRUNCATED).fill_null(value=False), "any"),
        "latency_rc": (pl.col("latency_rc"), "max"),
        **{
            f"{part}_{short}": (pl.col(f"{part}_{short}"), "any" if part == "has" else "max")
            for short in _SHORT.values()
            for part in ("has", "core", "late")
        },
        **{
            f"{key}_{which}": (pl.col(f"{key}_{which}"), "max")
            for key in ("req", "resp", "mf_req", "mf_resp")
            for which in ("final", "started")
        },
    }
    alone = {
        "first": lambda e: e,
        "max": lambda e: e,
        "any": lambda e: e.fill_null(value=False),
        "all": lambda e: e.fill_null(value=True),
    }
    keys = [CLUSTER, AUDIT_ID]
    evaluated = evaluated.with_columns(pl.struct(keys).is_duplicated().alias("__several")).cache()
    several = pl.col("__several")
    grouped = (
        evaluated.filter(several)
        .group_by(keys)
        .agg(getattr(expr, how)().alias(name) for name, (expr, how) in columns.items())
    )
    single = evaluated.filter(~several).select(
        *keys, *(alone[how](expr).alias(name) for name, (expr, how) in columns.items())
    )
    return pl.concat([grouped, single]).with_columns(
        # Bodies come from the final event, or from the lone ResponseStarted of a failed login.
        *(
            pl.coalesce(f"{key}_final", f"{key}_started").alias(key)
            for key in ("req", "resp", "mf_req", "mf_resp")
        ),
        # A ResponseStarted carries the bodies set before the first write: its own when it
        # was logged; else the final event's (a long-running request logs no body after
        # its stream starts, only the error Status it may write before).
        *(
            pl.coalesce(f"{key}_started", f"{key}_final").alias(f"{key}_rs")
            for key in ("req", "resp", "mf_req", "mf_resp")
        ),
        _level(policy).alias("policy_level"),
        _stage_mask(policy).alias("keep_mask"),
        _omit_managed(policy).alias("omit_managed"),
        pl.col(VERB).fill_null("").alias(ATTR_COLUMNS["verb"]),
    )


def _stage_rows(requests: pl.LazyFrame, policy: RuleSet, carry: Sequence[str] = ()) -> pl.LazyFrame:
    """One row per request × stage the candidate writes, with bytes and exactness."""
    rule = pl.col("policy_rule")
    level = pl.col("policy_level")
    verb = pl.col(ATTR_COLUMNS["verb"])
    long_running = pl.col("long_running")
    auth_failed = (
        pl.col("no_user")
        & pl.col("unauthorized")
        & pl.col("has_rs")
        & ~pl.col("has_rr")
        & ~pl.col("has_rc")
        & ~pl.col("has_p")
    )
    exists = {
        "RequestReceived": ~auth_failed,
        "ResponseStarted": pl.col("has_rs") | (long_running & ~auth_failed),
        "ResponseComplete": ~auth_failed & ~pl.col("has_p"),
        "Panic": pl.col("has_p"),
    }
    omit_managed = pl.col("omit_managed")
    # Bodies of the final event, as the candidate keeps them.
    observed_level = pl.col("observed_level")
    wants_req = level.is_in(_BODY_LEVELS)
    wants_resp = level == "RequestResponse"
    had_req = observed_level.is_in(_BODY_LEVELS) & ~pl.col("truncated")
    had_resp = (observed_level == "RequestResponse") & ~pl.col("truncated")

    def body_exact(suffix: str) -> pl.Expr:
        req, resp = pl.col(f"req{suffix}"), pl.col(f"resp{suffix}")
        mf_req, mf_resp = pl.col(f"mf_req{suffix}"), pl.col(f"mf_resp{suffix}")
        req_exact = pl.when(wants_req & req.is_not_null()).then(
            req + _REQUEST_KEY - pl.when(omit_managed).then(mf_req).otherwise(0)
        )
        resp_exact = pl.when(wants_resp & resp.is_not_null()).then(
            resp + _RESPONSE_KEY - pl.when(omit_managed).then(mf_resp).otherwise(0)
        )
        return req_exact.fill_null(0) + resp_exact.fill_null(0)

    # Not captured: model from the same (group, resource, verb) where the body was seen.
    body_verbs = verb.is_in(["create", "update", "patch", "delete", "deletecollection"])
    req_model = pl.when(wants_req & ~had_req & body_verbs).then(
        pl.col("model_req").fill_null(0).round(0).cast(pl.Int64) + _REQUEST_KEY
    )
    answers = pl.col(RESOURCE).is_not_null() | pl.col("failed") | pl.col("discovery")
    resp_model = pl.when(wants_resp & ~had_resp & ~long_running & answers).then(
        pl.col("model_resp").fill_null(0).round(0).cast(pl.Int64) + _RESPONSE_KEY
    )
    # Sibling event that a missing stage is derived from (final, then started, then received).
    source_core = pl.coalesce(
        pl.col("core_rc"), pl.col("core_p"), pl.col("core_rs"), pl.col("core_rr")
    )
    source_late = pl.coalesce(
        pl.col("late_rc"), pl.col("late_p"), pl.col("late_rs"), pl.lit(0, dtype=pl.Int64)
    )
    synth_core = {
        "RequestReceived": source_core - source_late,
        "ResponseStarted": pl.coalesce(
            pl.col("core_rc") - pl.col("latency_rc"), pl.col("core_p"), pl.col("core_rr")
        ),
        "ResponseComplete": pl.coalesce(pl.col("core_rs"), pl.col("core_rr")),
        "Panic": pl.col("core_p"),
    }
    prepared = requests.with_columns(
        auth_failed.alias("auth_failed"),
        body_exact("").alias("body_exact"),
        body_exact("_rs").alias("body_exact_rs"),
        (req_model.fill_null(0) + resp_model.fill_null(0)).alias("body_model"),
        level.str.len_bytes().cast(pl.Int64).alias("level_bytes"),
    )
    # One Int64 per stage packs bytes and the two flags (null: not written); unpivoting
    # those four columns is a cheap columnar reshape.
    packed = []
    for stage, short in _SHORT.items():
        has = pl.col(f"has_{short}")
        final = stage in ("ResponseComplete", "Panic")
        carries = pl.lit(final) | (pl.col("auth_failed") if stage == "ResponseStarted" else False)
        core = pl.when(has).then(pl.col(f"core_{short}")).otherwise(synth_core[stage])
        body_model = pl.when(carries).then(pl.col("body_model")).otherwise(0)
        if stage == "ResponseStarted":
            exact = pl.col("body_exact_rs")
        else:
            exact = pl.when(carries).then(pl.col("body_exact")).otherwise(0)
        size = (core + pl.col("level_bytes") + len(stage) + exact + body_model).fill_null(0)
        modelled = (~has | (body_model > 0)).cast(pl.Int64)
        emit = (exists[stage] & _keeps(stage)).fill_null(value=False)
        packed.append(
            pl.when(emit)
            .then(size.cast(pl.Int64) * 4 + modelled * 2 + (~has).cast(pl.Int64))
            .alias(stage)
        )
    value = pl.col("value")
    size = value // 4
    modelled = (value // 2 % 2) == 1
    return (
        prepared.select(
            CLUSTER, AUDIT_ID, DATE, rule.alias("rule"), level.alias("level"), *carry, *packed
        )
        .unpivot(
            on=list(_SHORT),
            index=[CLUSTER, AUDIT_ID, DATE, "rule", "level", *carry],
            variable_name="stage",
        )
        .filter(value.is_not_null())
        .select(
            CLUSTER,
            AUDIT_ID,
            DATE,
            "rule",
            "level",
            *carry,
            "stage",
            size.alias("bytes"),
            pl.when(modelled).then(0).otherwise(size).alias("exact_bytes"),
            pl.when(modelled).then(size).otherwise(0).alias("modelled_bytes"),
            modelled.alias("modelled"),
            (value % 2 == 1).alias("synthesized"),
        )
    )


_NEEDED = (
    CLUSTER,
    DATE,
    AUDIT_ID,
    STAGE,
    LEVEL,
    VERB,
    REQUEST_URI,
    USER,
    GROUPS,
    API_GROUP,
    RESOURCE,
    SUBRESOURCE,
    NAMESPACE,
    NAME,
    OBJECT_UID,
    RESOURCE_VERSION,
    CODE,
    STATUS,
    REASON,
    MESSAGE,
    ANNOTATIONS,
    IMPERSONATED_USER,
    IMPERSONATED_GROUPS,
    REQUEST_OBJECT,
    EVENT_BYTES,
    REQUEST_OBJECT_BYTES,
    RESPONSE_OBJECT_BYTES,
    MANAGED_FIELDS_BYTES,
    TRUNCATED,
)


def _replay_input(events: pl.LazyFrame, carry: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    """The columns the replay reads, and the ``carry`` ones; request bodies are read only
    by policies that need them (``replay_columns``), so a chunk may come without them."""
    present = events.collect_schema().names()
    missing = REQUEST_OBJECT not in present
    return events.select(
        *(
            pl.lit(None, dtype=pl.String).alias(c) if missing and c == REQUEST_OBJECT else pl.col(c)
            for c in _NEEDED
        ),
        *(expr.alias(name) for name, expr in carry.items()),
    )


def predicted_events(
    policy: RuleSet,
    events: pl.LazyFrame,
    *,
    body_parts: pl.LazyFrame | None = None,
    carry: Mapping[str, pl.Expr] | None = None,
) -> pl.LazyFrame:
    """One row per event the policy would write for the observed requests.

    Columns: cluster, audit_id, date, rule, level, stage, bytes, modelled, synthesized,
    and ``carry``: per request, the first value of each expression over its events (what
    a caller groups the rows by, computed in the same pass).

    ``events`` must hold every event of each request it holds (the replay is per request).
    Bodies that were not captured are modelled from ``body_parts`` (``body_model_parts`` of
    all the observed events), by default from ``events`` themselves: a distributed engine
    that gives this function one slice of the requests at a time passes the parts of all.
    """
    light = [
        CLUSTER, AUDIT_ID, DATE, LEVEL, USER, CODE, TRUNCATED, API_GROUP, RESOURCE, VERB,
        _DISCOVERY,
        "policy_rule", "policy_level", "long_running", "latency_rc",
        *(f"{part}_{short}" for short in _SHORT.values() for part in ("has", "core", "late")),
        *(f"{key}_{which}" for key in ("req", "resp", "mf_req", "mf_resp")
          for which in ("final", "started")),
    ]  # fmt: skip
    # The attribute name decides only the bytes of a synthesized RequestReceived (which
    # lacks a name the apiserver back-fills later): without one, skip parsing every
    # distinct watch's field selector.
    late = _ever_keeps(policy, "RequestReceived")
    carry = dict(carry or {})
    light += list(carry)
    evaluated = (
        evaluate(
            policy,
            _replay_input(events, carry),
            selector_names=late,
            attributes=("name", "namespace") if late else (),
            derived={_LONG_PATH: _long_running_path(), _DISCOVERY: _discovery_path()},
        )
        .with_columns(_stage_mask(policy).alias("keep_mask"))
        .with_columns(_row_columns(policy))
        # Only small columns go on: bodies and annotations are not copied by the filter.
        .select(light)
        # The decision is per request, so a request the policy drops has no row left.
        .filter(pl.col("policy_level") != "None")
    )
    parts = body_model_parts(events) if body_parts is None else body_parts
    requests = _per_request(evaluated, policy, list(carry)).join(
        _body_model(parts), on=list(_MODEL_KEY), how="left", nulls_equal=True
    )
    return _stage_rows(requests, policy, list(carry))


#: The additive measures of ``volume_parts``; ``volume_estimate`` sums them.
VOLUME_SUMS = ("events", "bytes", "exact_bytes", "modelled_bytes", "synthesized_events")
#: What ``observed_parts`` returns; ``requests`` adds up only over slices that split no request.
OBSERVED_SUMS = ("events", "bytes", "requests")


def volume_parts(stages: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``(by_rule, by_day)`` sums of ``predicted_events``: additive over slices of requests."""
    sums = [
        pl.len().cast(pl.Int64).alias("events"),
        pl.col("bytes").sum().alias("bytes"),
        pl.col("exact_bytes").sum(),
        pl.col("modelled_bytes").sum(),
        pl.col("synthesized").sum().cast(pl.Int64).alias("synthesized_events"),
    ]
    return stages.group_by("rule", "level", "stage").agg(sums), stages.group_by(DATE).agg(sums)


def observed_parts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Events, bytes and requests (distinct audit IDs) the input holds, as one row."""
    return events.select(*_OBSERVED)


_OBSERVED = (
    pl.len().cast(pl.Int64).alias("events"),
    pl.col(EVENT_BYTES).cast(pl.Int64).sum().alias("bytes"),
    pl.col(AUDIT_ID).n_unique().cast(pl.Int64).alias("requests"),
)
_LAST = pl.coalesce(pl.col(STAGE_TS), pl.col(REQUEST_TS))


def observed_and_span(events: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``observed_parts`` and ``span_parts`` of a slice, read in one pass."""
    both = events.select(
        *_OBSERVED,
        pl.col(REQUEST_TS).min().alias("start"),
        _LAST.max().alias("end"),
    ).collect()
    return both.select(OBSERVED_SUMS), both.select("start", "end")


def volume_estimate(
    by_rule: pl.DataFrame,
    by_day: pl.DataFrame,
    observed: pl.DataFrame,
    *,
    never_logged: tuple[str, ...] = (),
    span: Span | None = None,
) -> VolumeEstimate:
    """The estimate from ``volume_parts`` and ``observed_parts`` of one or many slices.

    Every figure is a sum, so the parts of slices (a distributed engine's partitions) give
    the same estimate as the parts of the whole.
    """
    sums = [pl.col(name).sum().cast(pl.Int64) for name in VOLUME_SUMS]
    by_rule = (
        by_rule.group_by("rule", "level", "stage")
        .agg(sums)
        .sort("rule", "stage", nulls_last=True)
        .cast(dict(BY_RULE_SCHEMA))  # type: ignore[arg-type]
    )
    by_day = by_day.group_by(DATE).agg(sums).sort(DATE)
    seen = observed.select(pl.col(name).sum().cast(pl.Int64) for name in OBSERVED_SUMS).row(0)
    notes = [
        "Requests the observed policy did not log are not in the data and cannot be replayed.",
    ]
    if never_logged:
        notes.append(
            f"The candidate logs {len(never_logged)} kind(s) of probe request the observed "
            "policy dropped: the totals are a lower bound."
        )
    return VolumeEstimate(
        events=int(by_rule["events"].sum()),
        bytes=int(by_rule["bytes"].sum()),
        exact_bytes=int(by_rule["exact_bytes"].sum()),
        modelled_bytes=int(by_rule["modelled_bytes"].sum()),
        observed_events=int(seen[0] or 0),
        observed_bytes=int(seen[1] or 0),
        requests=int(seen[2] or 0),
        by_rule=by_rule,
        by_day=by_day,
        never_logged=never_logged,
        notes=tuple(notes),
        span=span or Span(None, None),
    )


#: Rows replayed at once: a day with more is cut into equal spans of ``request_ts``.
CHUNK_ROWS = 500_000


def _slices(events: pl.LazyFrame, chunk_rows: int) -> list[pl.Expr]:
    """Filters that cut the events into slices of about ``chunk_rows``, in time order: one
    per ``date`` partition (pruned, never read for another), cut into equal spans of the
    day when it holds more."""
    days = events.group_by(DATE).len().sort(DATE, nulls_last=True).collect()
    out = []
    for day, rows in days.iter_rows():
        if day is None:
            out.append(pl.col(DATE).is_null())
            continue
        on_day = pl.col(DATE) == pl.lit(day)
        parts = max(1, -(-rows // chunk_rows))
        if parts == 1:
            out.append(on_day)
            continue
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        step = dt.timedelta(days=1) / parts
        stamp = pl.col(REQUEST_TS)
        for part in range(parts):
            low, high = start + part * step, start + (part + 1) * step
            # The first span also takes rows without a timestamp, the last any past the day.
            inside = (stamp < high).fill_null(value=True) if part < parts - 1 else pl.lit(True)
            if part > 0:
                inside = inside & (stamp >= low).fill_null(value=False)
            out.append(on_day & inside)
    return out


def request_chunks(
    events: pl.LazyFrame, columns: Sequence[str], *, chunk_rows: int | None = None
) -> Iterator[pl.LazyFrame]:
    """``columns`` of the events a slice at a time (a ``date`` partition, or a span of one
    when it holds more than ``chunk_rows``, by default ``CHUNK_ROWS``), each request whole.

    The replay is per request and its results are sums, so slices give the same totals
    with the memory of one slice, whatever the traffic's length. Each slice stays lazy:
    the query that replays it reads only what it needs (a lake's other partitions are not
    opened). A request whose events fall in two slices (one stage after midnight, when
    ``date`` came from each event's own timestamp, or after a cut) is carried whole into
    the next slice.
    """
    slices = _slices(events, chunk_rows or CHUNK_ROWS)
    # A request is known by a hash of (cluster, audit_id): cheaper to find in the next slice
    # than the strings, and a collision only carries a whole request one slice further.
    request = pl.struct(CLUSTER, AUDIT_ID).hash(seed=7)
    carried: pl.DataFrame | None = None
    for index, where in enumerate(slices):
        chunk = events.filter(where).select(columns)
        moving: pl.DataFrame | None = None
        if index + 1 < len(slices):
            later = events.filter(slices[index + 1]).select(request.alias("__request")).unique()
            ids = (
                chunk.select(request.alias("__request"))
                .unique()
                .join(later, on="__request", how="semi")
                .collect()
            )
            if ids.height:
                tagged = chunk.with_columns(request.alias("__request"))
                moving = (
                    tagged.join(ids.lazy(), on="__request", how="semi").drop("__request").collect()
                )
                chunk = tagged.join(
                    ids.lazy(), on="__request", how="anti", maintain_order="left"
                ).drop("__request")
        if carried is not None:
            chunk = pl.concat([carried.lazy(), chunk])
        carried = moving
        yield chunk


def _needs_request_bodies(policy: RuleSet) -> bool:
    """Some rule keeps the request body alone without managedFields: the split of
    managedFields between the bodies is read from the request body itself."""
    return any(
        rule.level == "Request"
        and (
            policy.omit_managed_fields
            if rule.omit_managed_fields is None
            else rule.omit_managed_fields
        )
        for rule in policy.rules
    )


def replay_columns(policies: Iterable[RuleSet]) -> tuple[str, ...]:
    """The columns ``predicted_events`` reads for these policies (bodies only when needed)."""
    bodies = any(_needs_request_bodies(policy) for policy in policies)
    # The timestamps give the span the totals are observed over.
    return (*(c for c in _NEEDED if bodies or c != REQUEST_OBJECT), REQUEST_TS, STAGE_TS)


def estimate_volumes(
    policies: Mapping[str, RuleSet],
    events: pl.LazyFrame,
    *,
    never_logged: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, VolumeEstimate]:
    """``estimate_volume`` of several policies on the same traffic, read once, a day at a
    time (memory of one day's requests, whatever the traffic's length)."""
    never_logged = never_logged or {}
    parts = body_model_parts(events).collect(engine="streaming").lazy()
    sums: dict[str, list[tuple[pl.DataFrame, pl.DataFrame]]] = {name: [] for name in policies}
    seen, spans = [], []
    for frame in request_chunks(events, replay_columns(policies.values())):
        for name, policy in policies.items():
            # Both sums read one replay (polars shares the common subplan): the
            # per-event rows are never materialised.
            stages = predicted_events(policy, frame, body_parts=parts)
            by_rule, by_day = pl.collect_all(volume_parts(stages))
            sums[name].append((by_rule, by_day))
        observed, first_last = observed_and_span(frame)
        seen.append(observed)
        spans.append(first_last)
    observed = pl.concat(seen) if seen else observed_parts(events.head(0)).collect()
    span = merge_spans(spans)
    estimates = {}
    for name, parts_of in sums.items():
        empty = volume_parts(predicted_events(policies[name], events.head(0), body_parts=parts))
        by_rule = pl.concat([r for r, _ in parts_of]) if parts_of else empty[0].collect()
        by_day = pl.concat([d for _, d in parts_of]) if parts_of else empty[1].collect()
        estimates[name] = volume_estimate(
            by_rule, by_day, observed, never_logged=never_logged.get(name, ()), span=span
        )
    return estimates


def merge_spans(spans: Sequence[pl.DataFrame]) -> Span:
    """The ``Span`` of ``span_parts`` of several slices."""
    if not spans:
        return Span(None, None)
    both = pl.concat(spans)
    return Span(both["start"].min(), both["end"].max())  # type: ignore[arg-type]


def estimate_volume(
    policy: RuleSet, events: pl.LazyFrame, *, never_logged: tuple[str, ...] = ()
) -> VolumeEstimate:
    """See ``Policy.estimate_volume``."""
    return estimate_volumes({"": policy}, events, never_logged={"": never_logged})[""]
