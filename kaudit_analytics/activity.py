"""Who did what: request views, timelines and the small aggregates behind every chart.

Every function takes the events LazyFrame (columns of ``AUDIT_SCHEMA``, as ``scan()``
returns it) and returns a LazyFrame; nothing here collects. The aggregates count each
request once in ``requests`` (its distinct ``audit_id``: all stages of a request share who,
what and ``request_ts``, so they fall in the same cell), every logged stage in ``events``
and their serialized size in ``bytes``; they bucket everything past the top N into one
``"(other)"`` row so that a chart stays small whatever the size of the lake.

The one exception to "LazyFrame in, LazyFrame out" is ``object_changes``: the shape of a
logged body is only known once the bodies are read, so it diffs an already-collected
``object_history`` (a handful of rows) eagerly.

Examples
--------
>>> from kaudit_analytics import activity
>>> events = activity.example_events()
>>> activity.activity_by_user_and_verb(events).collect().sort("actor", "verb")
shape: (6, 5)
┌─────────────────────────────────┬────────┬──────────┬────────┬───────┐
│ actor                           ┆ verb   ┆ requests ┆ events ┆ bytes │
│ ---                             ┆ ---    ┆ ---      ┆ ---    ┆ ---   │
│ str                             ┆ str    ┆ u32      ┆ u32    ┆ i64   │
╞═════════════════════════════════╪════════╪══════════╪════════╪═══════╡
│ alice@example.com               ┆ create ┆ 1        ┆ 2      ┆ 1800  │
│ alice@example.com               ┆ get    ┆ 1        ┆ 1      ┆ 700   │
│ alice@example.com               ┆ patch  ┆ 1        ┆ 1      ┆ 900   │
│ bob@example.com                 ┆ create ┆ 1        ┆ 2      ┆ 600   │
│ system:anonymous                ┆ get    ┆ 1        ┆ 1      ┆ 200   │
│ system:serviceaccount:kube-sys… ┆ watch  ┆ 1        ┆ 2      ┆ 500   │
└─────────────────────────────────┴────────┴──────────┴────────┴───────┘
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from kaudit_analytics import exprs
from kaudit_analytics.schema import (
    API_GROUP,
    API_VERSION,
    AUDIT_ID,
    AUDIT_SCHEMA,
    AUTHZ_DECISION,
    CLUSTER,
    CODE,
    DATE,
    EVENT_BYTES,
    GROUPS,
    IMPERSONATED_GROUPS,
    IMPERSONATED_USER,
    LEVEL,
    NAME,
    NAMESPACE,
    REDACTED,
    REQUEST_OBJECT,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    RESPONSE_OBJECT,
    SOURCE_FILE,
    SOURCE_FORMAT,
    SOURCE_IPS,
    SOURCE_LINE,
    STAGE,
    STAGE_TS,
    STAGES,
    SUBRESOURCE,
    USER,
    USER_AGENT,
    USER_EXTRA,
    USER_UID,
    VERB,
)

__all__ = [
    "OTHER",
    "activity_by_hour_and_weekday",
    "activity_by_namespace_and_user",
    "activity_by_resource_and_verb",
    "activity_by_user_and_verb",
    "activity_cube",
    "actor_activity",
    "busiest",
    "example_events",
    "latency_histogram",
    "latency_percentiles",
    "long_running_sessions",
    "object_changes",
    "object_history",
    "request_rate",
    "requests",
    "response_codes",
    "summary",
    "top_talkers",
    # Not listed: cube_parts/cube_from_parts and hour_and_weekday_parts/_from_parts split two
    # aggregates into additive parts and a combine step. They are how kaudit_analytics.spark
    # gets the same totals as this module (one implementation, two engines), not user API.
]

#: The label of the bucket that gathers everything past the top N.
OTHER = exprs.OTHER
_NONE = "(none)"
_CLUSTER_SCOPED = "(cluster-scoped)"
_NON_RESOURCE = "(non-resource)"

# Columns that describe the request rather than one stage of it; ``requests`` takes them
# from the furthest stage logged (the one with the response code).
_REQUEST_COLUMNS = (
    DATE,
    LEVEL,
    VERB,
    REQUEST_URI,
    USER,
    USER_UID,
    GROUPS,
    USER_EXTRA,
    IMPERSONATED_USER,
    IMPERSONATED_GROUPS,
    SOURCE_IPS,
    USER_AGENT,
    API_GROUP,
    RESOURCE,
    SUBRESOURCE,
    NAMESPACE,
    NAME,
    CODE,
    AUTHZ_DECISION,
    SOURCE_FORMAT,
)

_COMPLETED = pl.col(STAGE).is_in(("ResponseComplete", "Panic"))

# --------------------------------------------------------------------------- per request


def requests(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per request: its stages joined on ``(cluster, audit_id)``, with latency.

    Columns: ``cluster``, ``audit_id``, the request's descriptive columns (taken from its
    furthest stage), ``stages`` (how many were logged), ``last_stage``, ``request_ts``,
    ``started_ts`` (ResponseStarted), ``completed_ts`` (ResponseComplete or Panic),
    ``first_byte_ms``, ``latency_ms`` (to completion), ``bytes`` (all its events), and the
    derived ``actor``, ``actor_kind``, ``resource_key``, ``outcome``, ``is_long_running``,
    ``exec_command``. Bodies are left out (see ``object_history``). Events without an
    ``audit_id`` are requests of their own.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> out = activity.requests(activity.example_events()).collect().sort("request_ts")
    >>> out.select("audit_id", "verb", "stages", "latency_ms", "is_long_running")
    shape: (6, 5)
    ┌──────────┬────────┬────────┬────────────┬─────────────────┐
    │ audit_id ┆ verb   ┆ stages ┆ latency_ms ┆ is_long_running │
    │ ---      ┆ ---    ┆ ---    ┆ ---        ┆ ---             │
    │ str      ┆ str    ┆ u32    ┆ f64        ┆ bool            │
    ╞══════════╪════════╪════════╪════════════╪═════════════════╡
    │ a1       ┆ create ┆ 2      ┆ 12.5       ┆ false           │
    │ w1       ┆ watch  ┆ 2      ┆ 300000.0   ┆ true            │
    │ a2       ┆ get    ┆ 1      ┆ 3.0        ┆ false           │
    │ a3       ┆ patch  ┆ 1      ┆ 8.0        ┆ false           │
    │ x1       ┆ create ┆ 2      ┆ 45000.0    ┆ true            │
    │ d1       ┆ get    ┆ 1      ┆ 2.0        ┆ false           │
    └──────────┴────────┴────────┴────────────┴─────────────────┘
    """
    key = pl.coalesce(
        pl.col(AUDIT_ID),
        pl.concat_str(pl.lit("no-audit-id:"), pl.col(SOURCE_FILE), pl.col(SOURCE_LINE)),
    )
    last = pl.col(STAGE).arg_max()
    return (
        events.with_columns(key.alias("_request_key"))
        .group_by(CLUSTER, "_request_key")
        .agg(
            pl.col(AUDIT_ID).first(),
            *(pl.col(name).get(last) for name in _REQUEST_COLUMNS),
            pl.len().alias("stages"),
            pl.col(STAGE).max().alias("last_stage"),
            pl.col(REQUEST_TS).min(),
            pl.col(STAGE_TS).filter(pl.col(STAGE) == "ResponseStarted").min().alias("started_ts"),
            pl.col(STAGE_TS).filter(_COMPLETED).max().alias("completed_ts"),
            pl.col(EVENT_BYTES).cast(pl.Int64).sum().alias("bytes"),
        )
        .drop("_request_key")
        .with_columns(
            _ms(pl.col("started_ts") - pl.col(REQUEST_TS)).alias("first_byte_ms"),
            _ms(pl.col("completed_ts") - pl.col(REQUEST_TS)).alias("latency_ms"),
            exprs.ACTOR,
            exprs.ACTOR_KIND,
            exprs.RESOURCE_KEY,
            exprs.OUTCOME,
            exprs.IS_LONG_RUNNING.alias("is_long_running"),
            exprs.EXEC_COMMAND,
        )
    )


def _ms(duration: pl.Expr) -> pl.Expr:
    return duration.dt.total_microseconds() / 1000.0


def long_running_sessions(events: pl.LazyFrame, *, top: int | None = None) -> pl.LazyFrame:
    """Watches, exec/attach/port-forward/proxy sessions and followed logs, longest first.

    ``session`` names the kind (``watch``, ``exec``, ``attach``, ``portforward``, ``proxy``,
    ``log``); ``duration_ms`` runs from the request to its last logged stage, so a session
    whose completion was not logged shows how long it had lasted when last seen. ``top``
    keeps only the longest sessions, and is much faster than ``.head()`` afterwards: only
    those few are joined into request rows.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> out = activity.long_running_sessions(activity.example_events()).collect()
    >>> out.select("session", "actor", "duration_ms", "exec_command")
    shape: (2, 4)
    ┌─────────┬─────────────────────────────────┬─────────────┬──────────────┐
    │ session ┆ actor                           ┆ duration_ms ┆ exec_command │
    │ ---     ┆ ---                             ┆ ---         ┆ ---          │
    │ str     ┆ str                             ┆ f64         ┆ str          │
    ╞═════════╪═════════════════════════════════╪═════════════╪══════════════╡
    │ watch   ┆ system:serviceaccount:kube-sys… ┆ 300000.0    ┆ null         │
    │ exec    ┆ bob@example.com                 ┆ 45000.0     ┆ sh -c id     │
    └─────────┴─────────────────────────────────┴─────────────┴──────────────┘
    """
    # Every stage of a request shares its verb, URI and subresource, so the filter keeps
    # whole requests.
    sessions = events.filter(exprs.IS_LONG_RUNNING)
    lasted = _ms(pl.col(STAGE_TS) - pl.col(REQUEST_TS)).alias("duration_ms")
    if top is not None:
        # A request's duration is its longest-lasting event, and it has at most one event
        # per stage: the top (top x stages) events hold the top requests, found without
        # grouping every watch in the lake.
        candidates = sessions.select(CLUSTER, AUDIT_ID, lasted).top_k(
            top * len(STAGES), by=["duration_ms", CLUSTER, AUDIT_ID], reverse=[False, True, True]
        )
    else:
        candidates = sessions.select(CLUSTER, AUDIT_ID, lasted)
    longest = (
        candidates.group_by(CLUSTER, AUDIT_ID)
        .agg(pl.col("duration_ms").max())
        .sort("duration_ms", CLUSTER, AUDIT_ID, descending=[True, False, False], nulls_last=True)
    )
    if top is not None:
        longest = longest.head(top)
    keys = [CLUSTER, AUDIT_ID]
    return (
        requests(sessions.join(longest, on=keys, how="semi", nulls_equal=True))
        .join(longest, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.coalesce(pl.col(SUBRESOURCE), pl.lit("watch")).alias("session"))
        .select(
            "session",
            REQUEST_TS,
            "duration_ms",
            "actor",
            "actor_kind",
            VERB,
            "resource_key",
            NAMESPACE,
            NAME,
            CODE,
            "exec_command",
            SOURCE_IPS,
            USER_AGENT,
            CLUSTER,
            AUDIT_ID,
        )
        .sort("duration_ms", CLUSTER, AUDIT_ID, descending=[True, False, False], nulls_last=True)
    )


_BODIES = (REQUEST_OBJECT, RESPONSE_OBJECT)


def _unless_secret_values(name: str) -> pl.Expr:
    """Null for a body that may hold a Secret's values the loader did not redact.

    The loader replaces them with ``REDACTED`` unless told to keep them
    (``ingest(..., keep_secrets=True)``); a timeline on screen must not show them either way.
    """
    body = pl.col(name)
    secret = (pl.col(RESOURCE) == "secrets") | body.str.contains(
        r'"kind"\s*:\s*"Secret"'
    ).fill_null(value=False)
    unredacted = ~body.str.contains(REDACTED, literal=True).fill_null(value=False)
    hidden = pl.when(secret & unredacted).then(pl.lit(None, dtype=pl.String))
    return hidden.otherwise(body).alias(name)


# A ``Status`` reply (``{"kind":"Status",…}``), compact or re-serialised with spaces; a
# quoted "kind" inside a string value is escaped (\"kind\") and does not match.
_STATUS_REPLY = r'"kind"\s*:\s*"Status"'

_TIMELINE_COLUMNS = (
    REQUEST_TS,
    "actor",
    "actor_kind",
    IMPERSONATED_USER,
    VERB,
    "resource_key",
    NAMESPACE,
    NAME,
    CODE,
    "outcome",
    "latency_ms",
    SOURCE_IPS,
    USER_AGENT,
    "exec_command",
    CLUSTER,
    AUDIT_ID,
)


def actor_activity(events: pl.LazyFrame, *, user: str) -> pl.LazyFrame:
    """Every request made by ``user``, oldest first: directly or through impersonation.

    ``user`` matches the authenticated user or the impersonated one, so an admin acting
    as someone else shows up in both people's timelines.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> out = activity.actor_activity(activity.example_events(), user="alice@example.com")
    >>> out.select("verb", "resource_key", "name", "outcome").collect()
    shape: (3, 4)
    ┌────────┬──────────────────┬──────┬─────────┐
    │ verb   ┆ resource_key     ┆ name ┆ outcome │
    │ ---    ┆ ---              ┆ ---  ┆ ---     │
    │ str    ┆ str              ┆ str  ┆ enum    │
    ╞════════╪══════════════════╪══════╪═════════╡
    │ create ┆ deployments.apps ┆ web  ┆ success │
    │ get    ┆ deployments.apps ┆ web  ┆ success │
    │ patch  ┆ deployments.apps ┆ web  ┆ denied  │
    └────────┴──────────────────┴──────┴─────────┘
    """
    mine = (pl.col(USER) == user) | (pl.col(IMPERSONATED_USER) == user).fill_null(value=False)
    return requests(events.filter(mine)).select(_TIMELINE_COLUMNS).sort(REQUEST_TS, AUDIT_ID)


def object_history(
    events: pl.LazyFrame,
    *,
    resource: str,
    name: str,
    namespace: str | None = None,
    api_group: str | None = None,
) -> pl.LazyFrame:
    """The timeline of one object: every request on it, oldest first, with its bodies.

    Parameters
    ----------
    events
        The events table.
    resource, name
        The object, e.g. ``resource="secrets", name="db-password"``; subresource requests
        (``pods/exec``, ``deployments/scale``) on the object are included.
    namespace
        Its namespace; ``None`` for a cluster-scoped object (or to match any namespace).
    api_group
        Restrict to one API group when a resource name exists in several.

    Returns
    -------
    pl.LazyFrame
        The ``actor_activity`` columns plus ``request_object``, ``response_object`` and
        ``object``: the object's state after the request as far as it was logged (the
        response body, or for ``create``/``update`` the request body, which is the whole
        object), null when neither was logged. ``object_changes`` diffs it. A body that may
        hold a Secret's values is shown only as the loader redacted it, else as null.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> history = activity.object_history(
    ...     activity.example_events(), resource="deployments", namespace="shop", name="web"
    ... )
    >>> history.select("actor", "verb", "outcome", "object").collect()
    shape: (3, 4)
    ┌───────────────────┬────────┬─────────┬─────────────────────────────────┐
    │ actor             ┆ verb   ┆ outcome ┆ object                          │
    │ ---               ┆ ---    ┆ ---     ┆ ---                             │
    │ str               ┆ str    ┆ enum    ┆ str                             │
    ╞═══════════════════╪════════╪═════════╪═════════════════════════════════╡
    │ alice@example.com ┆ create ┆ success ┆ {"metadata":{"name":"web","lab… │
    │ alice@example.com ┆ get    ┆ success ┆ {"metadata":{"name":"web","lab… │
    │ alice@example.com ┆ patch  ┆ denied  ┆ null                            │
    └───────────────────┴────────┴─────────┴─────────────────────────────────┘
    """
    target = (pl.col(RESOURCE) == resource) & (pl.col(NAME) == name)
    if namespace is not None:
        target &= pl.col(NAMESPACE) == namespace
    if api_group is not None:
        target &= pl.col(API_GROUP) == api_group
    selected = events.filter(target)
    bodies = selected.group_by(CLUSTER, AUDIT_ID).agg(
        *(_unless_secret_values(body).drop_nulls().last() for body in _BODIES)
    )
    # A failed request changed nothing, a ``Status`` reply is not the object, and most
    # subresources (binding, eviction, scale, exec) speak other kinds; ``status`` does not.
    is_status = pl.col(RESPONSE_OBJECT).str.contains(_STATUS_REPLY).fill_null(value=True)
    whole_object = pl.col(SUBRESOURCE).is_null() | (pl.col(SUBRESOURCE) == "status")
    state = (
        pl.when((pl.col("outcome") != "success") | ~whole_object)
        .then(pl.lit(None, dtype=pl.String))
        .when(~is_status)
        .then(pl.col(RESPONSE_OBJECT))
        .when(pl.col(VERB).is_in(("create", "update")))
        .then(pl.col(REQUEST_OBJECT))
    )
    return (
        requests(selected)
        .join(bodies, on=[CLUSTER, AUDIT_ID], how="left", nulls_equal=True)
        .with_columns(state.alias("object"))
        .select(
            *_TIMELINE_COLUMNS, RESOURCE, SUBRESOURCE, REQUEST_OBJECT, RESPONSE_OBJECT, "object"
        )
        .sort(REQUEST_TS, AUDIT_ID)
    )


def _leaf_paths(dtype: object, expr: pl.Expr, path: str) -> list[tuple[str, pl.Expr]]:
    # Walks the *schema* of the decoded bodies (not their rows): one expression per leaf.
    if isinstance(dtype, pl.Struct) and dtype.fields:
        leaves: list[tuple[str, pl.Expr]] = []
        for field in dtype.fields:
            child = (
                f"{path}.{field.name}"
                if _PLAIN_KEY.fullmatch(field.name)
                else (f'{path}["{field.name}"]')
            )
            if child in _NOISE_PATHS:
                continue
            leaves.extend(_leaf_paths(field.dtype, expr.struct.field(field.name), child))
        return leaves
    # Lists and scalars compare as their JSON text: a changed container element shows as
    # the whole list before and after, which is how people read a changed ``args:``.
    as_json = pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return [(path or ".", pl.when(as_json != "null").then(as_json))]


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Rewritten on every write, and as long as the rest of the object: never what changed.
_NOISE_PATHS = frozenset({".metadata.managedFields", ".metadata.resourceVersion"})
_SECRET_VALUES = r"^\.(?:data|stringData)(?:\.|\[)"  # noqa: S105 - a path pattern, not a password

_CHANGE_COLUMNS: dict[str, pl.DataType] = {
    REQUEST_TS: AUDIT_SCHEMA[REQUEST_TS],
    "actor": pl.String(),
    VERB: pl.String(),
    AUDIT_ID: pl.String(),
    "path": pl.String(),
    "change": pl.Enum(("added", "removed", "changed")),
    "before": pl.String(),
    "after": pl.String(),
}
_CHANGES_SCHEMA = pl.Schema(_CHANGE_COLUMNS)


def object_changes(history: pl.DataFrame) -> pl.DataFrame:
    """What changed between successive logged states of one object (eager, small input).

    Parameters
    ----------
    history
        A collected ``object_history``: rows oldest first with an ``object`` column.

    Returns
    -------
    pl.DataFrame
        One row per changed field, in ``_CHANGES_SCHEMA`` order: ``request_ts``, ``actor``,
        ``verb``, ``audit_id`` of the request whose state differs from the previous
        logged state, the field's ``path`` (jq style: ``.spec.replicas``,
        ``.metadata.labels["app.kubernetes.io/name"]``), ``change`` and the JSON text
        ``before`` / ``after``. ``.metadata.managedFields`` and ``.metadata.resourceVersion``
        are left out; a Secret's ``data``/``stringData`` values are shown as redacted
        (that they changed is kept).

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> history = activity.object_history(
    ...     activity.example_events(), resource="deployments", namespace="shop", name="web"
    ... )
    >>> activity.object_changes(history.collect()).select("verb", "path", "before", "after")
    shape: (2, 4)
    ┌──────┬───────────────────────┬────────┬───────┐
    │ verb ┆ path                  ┆ before ┆ after │
    │ ---  ┆ ---                   ┆ ---    ┆ ---   │
    │ str  ┆ str                   ┆ str    ┆ str   │
    ╞══════╪═══════════════════════╪════════╪═══════╡
    │ get  ┆ .metadata.labels.tier ┆ null   ┆ "web" │
    │ get  ┆ .spec.replicas        ┆ 2      ┆ 3     │
    └──────┴───────────────────────┴────────┴───────┘
    """
    states = history.filter(pl.col("object").is_not_null()).with_row_index("_state")
    if states.height < 2:
        return pl.DataFrame(schema=_CHANGES_SCHEMA)
    decoded = states.get_column("object").str.json_decode(infer_schema_length=None)
    leaves = _leaf_paths(decoded.dtype, pl.col("_body"), "")
    wide = states.with_columns(decoded.alias("_body")).select(
        "_state", *(leaf.alias(path) for path, leaf in leaves)
    )
    secret = (states.get_column(RESOURCE) == "secrets").any()
    secret_path = pl.col("path").str.contains(_SECRET_VALUES) & pl.lit(secret)
    return (
        wide.unpivot(index="_state", variable_name="path", value_name="after")
        .sort("path", "_state")
        .with_columns(pl.col("after").shift().over("path").alias("before"))
        .filter((pl.col("_state") > 0) & pl.col("before").ne_missing(pl.col("after")))
        .join(states.select("_state", REQUEST_TS, "actor", VERB, AUDIT_ID), on="_state")
        .with_columns(
            pl.when(pl.col("before").is_null())
            .then(pl.lit("added"))
            .when(pl.col("after").is_null())
            .then(pl.lit("removed"))
            .otherwise(pl.lit("changed"))
            .alias("change"),
            *(
                pl.when(secret_path & pl.col(side).is_not_null())
                .then(pl.lit(f'"{REDACTED}"'))
                .otherwise(pl.col(side))
                .alias(side)
                for side in ("before", "after")
            ),
        )
        .sort("_state", "path")
        .select(pl.col(name).cast(dtype) for name, dtype in _CHANGES_SCHEMA.items())
    )


# --------------------------------------------------------------------------- aggregates

Measure = Literal["requests", "events", "bytes"]

_ACTOR_LABEL = exprs.ACTOR.fill_null(_NONE)
_VERB_LABEL = pl.col(VERB).fill_null(_NONE)
_RESOURCE_LABEL = exprs.RESOURCE_KEY.fill_null(_NON_RESOURCE)
_NAMESPACE_LABEL = pl.col(NAMESPACE).fill_null(_CLUSTER_SCOPED)


def _requests(where: pl.Expr | None = None) -> pl.Expr:
    """Distinct requests among the rows (``where`` them): one per ``audit_id``.

    Cheaper than keeping each request's last stage (a window over two million IDs): the
    group-by that aggregates does the counting, over 64-bit hashes of the IDs, which halves
    the time; a collision among two million IDs has a chance of about 1e-7. An event
    without an ``audit_id`` (the loader rejects them, other frames may not) counts as a
    request of its own.
    """
    hashed = pl.when(pl.col(AUDIT_ID).is_not_null()).then(pl.col(AUDIT_ID).hash())
    ids = hashed if where is None else hashed.filter(where)
    return ids.n_unique() - (ids.null_count() > 0).cast(pl.UInt32) + ids.null_count()


def _measures() -> tuple[pl.Expr, ...]:
    return (
        _requests().alias("requests"),
        pl.len().alias("events"),
        pl.col(EVENT_BYTES).cast(pl.Int64).sum().alias("bytes"),
    )


def _resum() -> tuple[pl.Expr, ...]:
    return tuple(pl.col(name).sum() for name in ("requests", "events", "bytes"))


def _top_keys(frame: pl.LazyFrame, column: str, top: int, weight: pl.Expr) -> pl.LazyFrame:
    """The ``top`` values of ``column`` with the largest ``weight`` (ties by name)."""
    return (
        frame.group_by(column)
        .agg(weight.alias("_weight"))
        .sort("_weight", column, descending=[True, False])
        .head(top)
        .select(column, pl.lit(value=True).alias("_top"))
    )


def _relabel(frame: pl.LazyFrame, kept: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """Every ``column`` value not in ``kept`` becomes OTHER."""
    return (
        frame.join(kept, on=column, how="left")
        .with_columns(
            pl.when(pl.col("_top")).then(pl.col(column)).otherwise(pl.lit(OTHER)).alias(column)
        )
        .drop("_top")
    )


def _keep_top(frame: pl.LazyFrame, column: str, top: int, by: Measure) -> pl.LazyFrame:
    return _relabel(frame, _top_keys(frame, column, top, pl.col(by).sum()), column)


_CUBE_KEYS = ("actor", VERB, "resource_key", NAMESPACE)
_CUBE_MEASURES = ("requests", "events", "bytes", "writes", "denied")


def activity_cube(events: pl.LazyFrame) -> pl.LazyFrame:
    """Measures per (actor, verb, resource, namespace): the one pass the heatmaps share.

    ``activity_by_user_and_verb``, ``activity_by_resource_and_verb``,
    ``activity_by_namespace_and_user`` and ``top_talkers`` accept this cube in place of the
    events: collect it once and each of them then takes milliseconds, not a pass over the
    lake. Every request falls in exactly one cell, so the cells' ``requests`` add up.

    Columns: the four keys (``"(none)"``, ``"(non-resource)"``, ``"(cluster-scoped)"`` for
    missing values), ``actor_kind``, ``requests``, ``events``, ``bytes``, ``writes``,
    ``denied``.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> cube = activity.activity_cube(activity.example_events()).collect()
    >>> cube.height, cube["requests"].sum()
    (6, 6)
    """
    return cube_from_parts(cube_parts(events))


#: The raw columns ``cube_parts`` groups by (labelled only afterwards, in ``cube_from_parts``).
CUBE_RAW_KEYS = (USER, USER_EXTRA, VERB, RESOURCE, API_GROUP, SUBRESOURCE, NAMESPACE)
#: The additive measures of ``cube_parts``.
CUBE_PART_MEASURES = ("requests", "events", "bytes", "denied")


def cube_parts(events: pl.LazyFrame, *extra: pl.Expr) -> pl.LazyFrame:
    """The cube's first pass: measures per raw (user, user_extra, verb, resource …) key.

    Additive over slices of the events that split no request (a request's events are all in
    one slice): a distributed engine computes these per partition and sums them by
    ``CUBE_RAW_KEYS``, keeping the ``groups`` of the key's first event; ``cube_from_parts``
    does the rest. ``extra`` aggregations are added to each group (an engine's bookkeeping).

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics import activity
    >>> events = activity.example_events()
    >>> halves = [events.head(3), events.slice(3)]  # no request is split between them
    >>> parts = pl.concat([activity.cube_parts(half) for half in halves])
    >>> whole = activity.activity_cube(events).collect().sort("actor", "verb")
    >>> activity.cube_from_parts(parts).collect().sort("actor", "verb").equals(whole)
    True
    """
    # Group by the raw columns first and label the few thousand groups afterwards: labelling
    # two million rows (the EKS role inside user_extra, the kubectl resource spelling) is
    # what made this pass slow. Labels map raw keys one to one, so no request is split.
    return events.group_by(*CUBE_RAW_KEYS).agg(
        *_measures(),
        _requests(exprs.IS_DENIED).alias("denied"),
        pl.col(GROUPS).first(),
        *extra,
    )


def cube_from_parts(parts: pl.LazyFrame) -> pl.LazyFrame:
    """``activity_cube`` from ``cube_parts`` of the events or of slices of them."""
    return (
        parts.group_by(*CUBE_RAW_KEYS)
        .agg(pl.col(*CUBE_PART_MEASURES).sum(), pl.col(GROUPS).first())
        .with_columns(
            _ACTOR_LABEL.alias("actor"),
            _VERB_LABEL.alias(VERB),
            _RESOURCE_LABEL.alias("resource_key"),
            _NAMESPACE_LABEL.alias(NAMESPACE),
            # The verb is constant within a group, so its writes are all or none of it.
            pl.when(exprs.IS_WRITE_VERB).then(pl.col("requests")).otherwise(0).alias("writes"),
            exprs.ACTOR_KIND,
        )
        .group_by(*_CUBE_KEYS)
        .agg(pl.col("actor_kind").first(), pl.col(*_CUBE_MEASURES).sum())
        .select(*_CUBE_KEYS, "actor_kind", *_CUBE_MEASURES)
    )


def _as_cube(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` itself when it already is an ``activity_cube``, else its cube."""
    names = frame.collect_schema().names()
    if all(name in names for name in (*_CUBE_KEYS, *_CUBE_MEASURES)):
        return frame
    return activity_cube(frame)


def _two_way(
    events: pl.LazyFrame,
    rows: tuple[str, int],
    columns: tuple[str, int],
    by: Measure,
) -> pl.LazyFrame:
    (row_name, row_top), (col_name, col_top) = rows, columns
    cells = (
        _as_cube(events)
        .group_by(row_name, col_name)
        .agg(pl.col("requests", "events", "bytes").sum())
    )
    bucketed = _keep_top(_keep_top(cells, row_name, row_top, by), col_name, col_top, by)
    return bucketed.group_by(row_name, col_name).agg(_resum()).sort(row_name, col_name)


def activity_by_user_and_verb(
    events: pl.LazyFrame, *, top: int = 25, by: Measure = "requests"
) -> pl.LazyFrame:
    """Requests, events and bytes per (actor, verb): the verb x user heatmap.

    Actors past the ``top`` heaviest (by ``by``) are summed into ``"(other)"``; verbs are
    few and all kept. ``events`` may be an ``activity_cube`` instead.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> out = activity.activity_by_user_and_verb(activity.example_events(), top=1)
    >>> out.collect()
    shape: (6, 5)
    ┌───────────────────┬────────┬──────────┬────────┬───────┐
    │ actor             ┆ verb   ┆ requests ┆ events ┆ bytes │
    │ ---               ┆ ---    ┆ ---      ┆ ---    ┆ ---   │
    │ str               ┆ str    ┆ u32      ┆ u32    ┆ i64   │
    ╞═══════════════════╪════════╪══════════╪════════╪═══════╡
    │ (other)           ┆ create ┆ 1        ┆ 2      ┆ 600   │
    │ (other)           ┆ get    ┆ 1        ┆ 1      ┆ 200   │
    │ (other)           ┆ watch  ┆ 1        ┆ 2      ┆ 500   │
    │ alice@example.com ┆ create ┆ 1        ┆ 2      ┆ 1800  │
    │ alice@example.com ┆ get    ┆ 1        ┆ 1      ┆ 700   │
    │ alice@example.com ┆ patch  ┆ 1        ┆ 1      ┆ 900   │
    └───────────────────┴────────┴──────────┴────────┴───────┘
    """
    return _two_way(events, ("actor", top), (VERB, 1_000), by)


def activity_by_resource_and_verb(
    events: pl.LazyFrame, *, top: int = 25, by: Measure = "requests"
) -> pl.LazyFrame:
    """Requests, events and bytes per (resource, verb), resources spelled ``pods/exec``.

    ``events`` may be an ``activity_cube`` instead.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.activity_by_resource_and_verb(activity.example_events()).collect()
    shape: (6, 5)
    ┌──────────────────┬────────┬──────────┬────────┬───────┐
    │ resource_key     ┆ verb   ┆ requests ┆ events ┆ bytes │
    │ ---              ┆ ---    ┆ ---      ┆ ---    ┆ ---   │
    │ str              ┆ str    ┆ u32      ┆ u32    ┆ i64   │
    ╞══════════════════╪════════╪══════════╪════════╪═══════╡
    │ (non-resource)   ┆ get    ┆ 1        ┆ 1      ┆ 200   │
    │ deployments.apps ┆ create ┆ 1        ┆ 2      ┆ 1800  │
    │ deployments.apps ┆ get    ┆ 1        ┆ 1      ┆ 700   │
    │ deployments.apps ┆ patch  ┆ 1        ┆ 1      ┆ 900   │
    │ deployments.apps ┆ watch  ┆ 1        ┆ 2      ┆ 500   │
    │ pods/exec        ┆ create ┆ 1        ┆ 2      ┆ 600   │
    └──────────────────┴────────┴──────────┴────────┴───────┘
    """
    return _two_way(events, ("resource_key", top), (VERB, 1_000), by)


def activity_by_namespace_and_user(
    events: pl.LazyFrame,
    *,
    top_namespaces: int = 20,
    top_users: int = 20,
    by: Measure = "requests",
) -> pl.LazyFrame:
    """Requests, events and bytes per (namespace, actor); cluster-scoped requests together.

    ``events`` may be an ``activity_cube`` instead.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.activity_by_namespace_and_user(activity.example_events()).collect()
    shape: (4, 5)
    ┌──────────────────┬─────────────────────────────────┬──────────┬────────┬───────┐
    │ namespace        ┆ actor                           ┆ requests ┆ events ┆ bytes │
    │ ---              ┆ ---                             ┆ ---      ┆ ---    ┆ ---   │
    │ str              ┆ str                             ┆ u32      ┆ u32    ┆ i64   │
    ╞══════════════════╪═════════════════════════════════╪══════════╪════════╪═══════╡
    │ (cluster-scoped) ┆ system:anonymous                ┆ 1        ┆ 1      ┆ 200   │
    │ (cluster-scoped) ┆ system:serviceaccount:kube-sys… ┆ 1        ┆ 2      ┆ 500   │
    │ shop             ┆ alice@example.com               ┆ 3        ┆ 4      ┆ 3400  │
    │ shop             ┆ bob@example.com                 ┆ 1        ┆ 2      ┆ 600   │
    └──────────────────┴─────────────────────────────────┴──────────┴────────┴───────┘
    """
    return _two_way(events, (NAMESPACE, top_namespaces), ("actor", top_users), by)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def activity_by_hour_and_weekday(events: pl.LazyFrame) -> pl.LazyFrame:
    """All 168 (weekday, hour) cells, UTC, with zeros where nothing happened.

    ``weekday`` is ISO (1 = Monday), ``day`` its short name (an ``Enum`` in week order).

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> out = activity.activity_by_hour_and_weekday(activity.example_events()).collect()
    >>> out.height, out["requests"].sum()
    (168, 6)
    """
    return hour_and_weekday_from_parts(hour_and_weekday_parts(events))


def hour_and_weekday_parts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Requests, events and bytes per (weekday, hour) cell that has any.

    Additive over slices that split no request (its events share ``request_ts``).

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> parts = activity.hour_and_weekday_parts(activity.example_events())
    >>> activity.hour_and_weekday_from_parts(parts).collect()["requests"].sum()
    6
    """
    return events.group_by(exprs.day_of_week(), exprs.hour_of_day()).agg(_measures())


def hour_and_weekday_from_parts(parts: pl.LazyFrame) -> pl.LazyFrame:
    """``activity_by_hour_and_weekday`` from ``hour_and_weekday_parts`` (of slices, summed)."""
    grid = pl.LazyFrame({"weekday": list(range(1, 8))}, schema={"weekday": pl.Int8}).join(
        pl.LazyFrame({"hour": list(range(24))}, schema={"hour": pl.Int8}), how="cross"
    )
    cells = parts.group_by("weekday", "hour").agg(_resum())
    return (
        grid.join(cells, on=["weekday", "hour"], how="left")
        .with_columns(
            pl.col("requests", "events").fill_null(0),
            pl.col("bytes").fill_null(0),
            pl.col("weekday")
            .replace_strict(list(range(1, 8)), list(_WEEKDAYS), return_dtype=pl.Enum(_WEEKDAYS))
            .alias("day"),
        )
        .sort("weekday", "hour")
    )


def request_rate(
    events: pl.LazyFrame, *, every: str | None = None, max_points: int = 1_500
) -> pl.LazyFrame:
    """Requests per time bucket, with how many were denied, 4xx and 5xx.

    Parameters
    ----------
    every
        A polars duration (``"1m"``, ``"15m"``, ``"1h"``). ``None`` picks whole minutes,
        as few as needed to keep at most ``max_points`` buckets over the data's span.

    Returns
    -------
    pl.LazyFrame
        ``time`` (bucket start, UTC), ``requests``, ``denied``, ``client_errors`` (4xx,
        denials included), ``server_errors`` (5xx) and ``bucket_seconds``; buckets with
        no request are absent.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.request_rate(activity.example_events()).collect()
    shape: (5, 6)
    ┌─────────────────────────┬──────────┬────────┬───────────────┬───────────────┬────────────────┐
    │ time                    ┆ requests ┆ denied ┆ client_errors ┆ server_errors ┆ bucket_seconds │
    │ ---                     ┆ ---      ┆ ---    ┆ ---           ┆ ---           ┆ ---            │
    │ datetime[μs, UTC]       ┆ u32      ┆ u32    ┆ u32           ┆ u32           ┆ i64            │
    ╞═════════════════════════╪══════════╪════════╪═══════════════╪═══════════════╪════════════════╡
    │ 2026-11-23 09:00:00 UTC ┆ 2        ┆ 0      ┆ 0             ┆ 0             ┆ 60             │
    │ 2026-11-23 09:01:00 UTC ┆ 1        ┆ 0      ┆ 0             ┆ 0             ┆ 60             │
    │ 2026-11-23 09:02:00 UTC ┆ 1        ┆ 1      ┆ 1             ┆ 0             ┆ 60             │
    │ 2026-11-23 09:03:00 UTC ┆ 1        ┆ 0      ┆ 0             ┆ 0             ┆ 60             │
    │ 2026-11-23 09:04:00 UTC ┆ 1        ┆ 0      ┆ 0             ┆ 0             ┆ 60             │
    └─────────────────────────┴──────────┴────────┴───────────────┴───────────────┴────────────────┘
    """
    if max_points < 2:
        msg = f"max_points must be at least 2, got {max_points}"
        raise ValueError(msg)
    if every is not None:
        bucket = pl.col(REQUEST_TS).dt.truncate(every)
        width_us = (
            pl.col(REQUEST_TS).dt.truncate(every).dt.offset_by(every)
            - pl.col(REQUEST_TS).dt.truncate(every)
        ).dt.total_microseconds()
    else:
        minute = 60_000_000
        epoch = pl.col(REQUEST_TS).dt.epoch("us")
        # Buckets start on whole multiples of the width, so a span of (max_points - 1)
        # widths can touch max_points buckets and no more.
        per_bucket = (epoch.max() - epoch.min()) / (max_points - 1)
        width_us = ((per_bucket / minute).ceil().cast(pl.Int64) * minute).clip(lower_bound=minute)
        bucket = ((epoch // width_us) * width_us).cast(AUDIT_SCHEMA[REQUEST_TS])
    return (
        events.filter(pl.col(REQUEST_TS).is_not_null())
        .with_columns(bucket.alias("time"), width_us.alias("_width"))
        .group_by("time")
        .agg(
            _requests().alias("requests"),
            _requests(exprs.IS_DENIED).alias("denied"),
            _requests(exprs.IS_CLIENT_ERROR).alias("client_errors"),
            _requests(exprs.IS_SERVER_ERROR).alias("server_errors"),
            (pl.col("_width").first() // 1_000_000).alias("bucket_seconds"),
        )
        .sort("time")
    )


def response_codes(events: pl.LazyFrame) -> pl.LazyFrame:
    """Requests per response code, with its ``outcome``; most frequent first.

    Counts the requests that got a response: one logged only at ``RequestReceived`` has no
    code yet.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.response_codes(activity.example_events()).collect()
    shape: (4, 3)
    ┌──────┬─────────┬──────────┐
    │ code ┆ outcome ┆ requests │
    │ ---  ┆ ---     ┆ ---      │
    │ i16  ┆ enum    ┆ u32      │
    ╞══════╪═════════╪══════════╡
    │ 200  ┆ success ┆ 3        │
    │ 101  ┆ success ┆ 1        │
    │ 201  ┆ success ┆ 1        │
    │ 403  ┆ denied  ┆ 1        │
    └──────┴─────────┴──────────┘
    """
    return (
        events.filter(pl.col(STAGE) != "RequestReceived")
        .group_by(CODE, exprs.OUTCOME)
        .agg(_requests().alias("requests"))
        .sort("requests", CODE, descending=[True, False], nulls_last=True)
    )


def _completed_latency(events: pl.LazyFrame) -> pl.LazyFrame:
    # request_ts is the same on every stage of a request, so the completing event alone
    # carries the latency: no join of stages needed for the aggregate.
    return events.filter(_COMPLETED & ~exprs.IS_LONG_RUNNING).with_columns(exprs.LATENCY_MS)


def latency_percentiles(
    events: pl.LazyFrame, *, by: Literal["verb", "resource"] = "verb", top: int = 20
) -> pl.LazyFrame:
    """p50/p90/p99/max latency (ms) of completed, short requests per verb or resource.

    Watches, exec sessions and followed logs are left out: their latency is a session
    length. Keys past the ``top`` busiest are summed into ``"(other)"``.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.latency_percentiles(activity.example_events()).collect()
    shape: (3, 6)
    ┌────────┬──────────┬────────┬────────┬────────┬────────┐
    │ verb   ┆ requests ┆ p50_ms ┆ p90_ms ┆ p99_ms ┆ max_ms │
    │ ---    ┆ ---      ┆ ---    ┆ ---    ┆ ---    ┆ ---    │
    │ str    ┆ u32      ┆ f64    ┆ f64    ┆ f64    ┆ f64    │
    ╞════════╪══════════╪════════╪════════╪════════╪════════╡
    │ get    ┆ 2        ┆ 2.5    ┆ 2.9    ┆ 2.99   ┆ 3.0    │
    │ create ┆ 1        ┆ 12.5   ┆ 12.5   ┆ 12.5   ┆ 12.5   │
    │ patch  ┆ 1        ┆ 8.0    ┆ 8.0    ┆ 8.0    ┆ 8.0    │
    └────────┴──────────┴────────┴────────┴────────┴────────┘
    """
    key = _VERB_LABEL.alias(VERB) if by == "verb" else _RESOURCE_LABEL.alias("resource_key")
    name = key.meta.output_name()
    timed = _completed_latency(events).with_columns(key)
    return (
        _relabel(timed, _top_keys(timed, name, top, pl.len()), name)
        .group_by(name)
        .agg(
            pl.len().alias("requests"),
            pl.col("latency_ms").quantile(0.5, interpolation="linear").alias("p50_ms"),
            pl.col("latency_ms").quantile(0.9, interpolation="linear").alias("p90_ms"),
            pl.col("latency_ms").quantile(0.99, interpolation="linear").alias("p99_ms"),
            pl.col("latency_ms").max().alias("max_ms"),
        )
        .sort("requests", name, descending=[True, False])
    )


def latency_histogram(
    events: pl.LazyFrame, *, bins_per_decade: int = 4, top_verbs: int = 8
) -> pl.LazyFrame:
    """Completed short requests per verb and logarithmic latency bin.

    Bins are ``bins_per_decade`` per power of ten (4 gives 1, 1.8, 3.2, 5.6, 10 ms …);
    latencies under 0.01 ms fall in the first bin. Verbs past the ``top_verbs`` busiest are
    summed into ``"(other)"``.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.latency_histogram(activity.example_events()).collect()
    shape: (3, 4)
    ┌────────┬──────────────┬────────────┬──────────┐
    │ verb   ┆ bin_start_ms ┆ bin_end_ms ┆ requests │
    │ ---    ┆ ---          ┆ ---        ┆ ---      │
    │ str    ┆ f64          ┆ f64        ┆ u32      │
    ╞════════╪══════════════╪════════════╪══════════╡
    │ create ┆ 10.0         ┆ 17.782794  ┆ 1        │
    │ get    ┆ 1.778279     ┆ 3.162278   ┆ 2        │
    │ patch  ┆ 5.623413     ┆ 10.0       ┆ 1        │
    └────────┴──────────────┴────────────┴──────────┘
    """
    timed = _completed_latency(events).with_columns(_VERB_LABEL.alias(VERB))
    step = pl.col("latency_ms").clip(lower_bound=0.01).log10() * bins_per_decade
    return (
        _relabel(timed, _top_keys(timed, VERB, top_verbs, pl.len()), VERB)
        .filter(pl.col("latency_ms").is_not_null())
        .group_by(VERB, step.floor().cast(pl.Int32).alias("_bin"))
        .agg(pl.len().alias("requests"))
        .with_columns(
            (10.0 ** (pl.col("_bin") / bins_per_decade)).alias("bin_start_ms"),
            (10.0 ** ((pl.col("_bin") + 1) / bins_per_decade)).alias("bin_end_ms"),
        )
        .sort(VERB, "_bin")
        .select(VERB, "bin_start_ms", "bin_end_ms", "requests")
    )


def top_talkers(events: pl.LazyFrame, *, by: Measure = "requests", top: int = 15) -> pl.LazyFrame:
    """The ``top`` actors by requests, events or bytes, plus one ``"(other)"`` row.

    Columns: ``actor``, ``actor_kind`` (null for the other bucket), ``requests``,
    ``events``, ``bytes``, ``writes`` and ``denied`` (requests), heaviest first with the
    other bucket last. ``events`` may be an ``activity_cube`` instead.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.top_talkers(activity.example_events(), top=2).collect()
    shape: (3, 7)
    ┌───────────────────┬────────────┬──────────┬────────┬───────┬────────┬────────┐
    │ actor             ┆ actor_kind ┆ requests ┆ events ┆ bytes ┆ writes ┆ denied │
    │ ---               ┆ ---        ┆ ---      ┆ ---    ┆ ---   ┆ ---    ┆ ---    │
    │ str               ┆ enum       ┆ u32      ┆ u32    ┆ i64   ┆ u32    ┆ u32    │
    ╞═══════════════════╪════════════╪══════════╪════════╪═══════╪════════╪════════╡
    │ alice@example.com ┆ human      ┆ 3        ┆ 4      ┆ 3400  ┆ 2      ┆ 1      │
    │ bob@example.com   ┆ human      ┆ 1        ┆ 2      ┆ 600   ┆ 1      ┆ 0      │
    │ (other)           ┆ null       ┆ 2        ┆ 3      ┆ 700   ┆ 0      ┆ 0      │
    └───────────────────┴────────────┴──────────┴────────┴───────┴────────┴────────┘
    """
    per_actor = (
        _as_cube(events)
        .group_by("actor")
        .agg(pl.col("actor_kind").first(), pl.col(*_CUBE_MEASURES).sum())
    )
    return (
        _relabel(per_actor, _top_keys(per_actor, "actor", top, pl.col(by).sum()), "actor")
        .group_by("actor")
        .agg(
            pl.when(pl.len() == 1).then(pl.col("actor_kind").first()).alias("actor_kind"),
            pl.col(*_CUBE_MEASURES).sum(),
        )
        .sort(pl.col("actor") == OTHER, pl.col(by), "actor", descending=[False, True, False])
    )


#: What ``busiest`` ranks: the keys of ``activity_cube``.
Dimension = Literal["actor", "verb", "resource_key", "namespace"]


def busiest(
    events: pl.LazyFrame, *, by: Dimension = "actor", measure: Measure = "requests", top: int = 10
) -> pl.LazyFrame:
    """The ``top`` busiest actors, verbs, resources or namespaces, plus one ``"(other)"`` row.

    Columns: the key (named ``by``), ``requests``, ``events``, ``bytes``, ``writes``,
    ``denied`` and ``share`` (of all the ``measure``), heaviest first by ``measure`` with
    the other bucket last. Resources are spelled as kubectl does (``deployments.apps``,
    ``pods/exec``). ``events`` may be an ``activity_cube`` instead.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.busiest(activity.example_events(), by="verb", top=2).collect()
    shape: (3, 7)
    ┌─────────┬──────────┬────────┬───────┬────────┬────────┬──────────┐
    │ verb    ┆ requests ┆ events ┆ bytes ┆ writes ┆ denied ┆ share    │
    │ ---     ┆ ---      ┆ ---    ┆ ---   ┆ ---    ┆ ---    ┆ ---      │
    │ str     ┆ u32      ┆ u32    ┆ i64   ┆ u32    ┆ u32    ┆ f64      │
    ╞═════════╪══════════╪════════╪═══════╪════════╪════════╪══════════╡
    │ create  ┆ 2        ┆ 4      ┆ 2400  ┆ 2      ┆ 0      ┆ 0.333333 │
    │ get     ┆ 2        ┆ 2      ┆ 900   ┆ 0      ┆ 0      ┆ 0.333333 │
    │ (other) ┆ 2        ┆ 3      ┆ 1400  ┆ 1      ┆ 1      ┆ 0.333333 │
    └─────────┴──────────┴────────┴───────┴────────┴────────┴──────────┘
    """
    per_key = _as_cube(events).group_by(by).agg(pl.col(*_CUBE_MEASURES).sum())
    return (
        _relabel(per_key, _top_keys(per_key, by, top, pl.col(measure).sum()), by)
        .group_by(by)
        .agg(pl.col(*_CUBE_MEASURES).sum())
        .with_columns((pl.col(measure) / pl.col(measure).sum()).fill_nan(None).alias("share"))
        .sort(pl.col(by) == OTHER, pl.col(measure), by, descending=[False, True, False])
    )


def summary(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row: how much is in the frame and over which time span.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.summary(activity.example_events()).select("requests", "events", "denied").collect()
    shape: (1, 3)
    ┌──────────┬────────┬────────┐
    │ requests ┆ events ┆ denied │
    │ ---      ┆ ---    ┆ ---    │
    │ u32      ┆ u32    ┆ u32    │
    ╞══════════╪════════╪════════╡
    │ 6        ┆ 9      ┆ 1      │
    └──────────┴────────┴────────┘
    """
    return events.select(
        pl.col(CLUSTER).drop_nulls().n_unique().alias("clusters"),
        _requests().alias("requests"),
        pl.len().alias("events"),
        pl.col(EVENT_BYTES).cast(pl.Int64).sum().alias("bytes"),
        pl.col(USER).drop_nulls().n_unique().alias("users"),
        _requests(exprs.IS_WRITE_VERB).alias("writes"),
        _requests(exprs.IS_DENIED).alias("denied"),
        _requests(exprs.IS_SERVER_ERROR).alias("server_errors"),
        pl.col(REQUEST_TS).min().alias("first"),
        pl.col(REQUEST_TS).max().alias("last"),
    )


# --------------------------------------------------------------------------- example data


def example_events() -> pl.LazyFrame:
    """Nine events (six requests) in ``AUDIT_SCHEMA`` that the examples above run on.

    alice creates, reads and (denied) patches Deployment ``shop/web``; someone changed the
    Deployment between the create and the read without it being logged; bob runs
    ``sh -c id`` in a pod; a controller watches Deployments for five minutes; an anonymous
    client reads ``/healthz``.

    Examples
    --------
    >>> from kaudit_analytics import activity
    >>> activity.example_events().collect().shape
    (9, 43)
    """
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def at(ms: float) -> datetime:
        return t0 + timedelta(milliseconds=ms)

    alice = {USER: "alice@example.com", GROUPS: ["developers", "system:authenticated"]}
    bob = {USER: "bob@example.com", GROUPS: ["ops", "system:authenticated"]}
    controller = {
        USER: "system:serviceaccount:kube-system:replicaset-controller",
        GROUPS: ["system:serviceaccounts", "system:authenticated"],
    }
    web = {API_GROUP: "apps", API_VERSION: "v1", RESOURCE: "deployments", NAMESPACE: "shop"}
    created = '{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"replicas":2}}'
    stored = (
        '{"metadata":{"name":"web","labels":{"app":"web"},"resourceVersion":"1"},'
        '"spec":{"replicas":2}}'
    )
    scaled = (
        '{"metadata":{"name":"web","labels":{"app":"web","tier":"web"},"resourceVersion":"7"},'
        '"spec":{"replicas":3}}'
    )
    uri = "/apis/apps/v1/namespaces/shop/deployments"
    rows: list[dict[str, Any]] = [
        {
            AUDIT_ID: "a1",
            STAGE: "RequestReceived",
            VERB: "create",
            REQUEST_URI: uri,
            **alice,
            **web,
            REQUEST_TS: at(0),
            STAGE_TS: at(0),
            EVENT_BYTES: 600,
        },
        {
            AUDIT_ID: "a1",
            STAGE: "ResponseComplete",
            VERB: "create",
            REQUEST_URI: uri,
            **alice,
            **web,
            NAME: "web",
            CODE: 201,
            AUTHZ_DECISION: "allow",
            REQUEST_TS: at(0),
            STAGE_TS: at(12.5),
            EVENT_BYTES: 1200,
            REQUEST_OBJECT: created,
            RESPONSE_OBJECT: stored,
        },
        {
            AUDIT_ID: "a2",
            STAGE: "ResponseComplete",
            VERB: "get",
            REQUEST_URI: f"{uri}/web",
            **alice,
            **web,
            NAME: "web",
            CODE: 200,
            AUTHZ_DECISION: "allow",
            REQUEST_TS: at(60_000),
            STAGE_TS: at(60_003),
            EVENT_BYTES: 700,
            RESPONSE_OBJECT: scaled,
        },
        {
            AUDIT_ID: "a3",
            STAGE: "ResponseComplete",
            VERB: "patch",
            REQUEST_URI: f"{uri}/web",
            **alice,
            **web,
            NAME: "web",
            CODE: 403,
            AUTHZ_DECISION: "forbid",
            REQUEST_TS: at(120_000),
            STAGE_TS: at(120_008),
            EVENT_BYTES: 900,
            REQUEST_OBJECT: '{"spec":{"replicas":10}}',
        },
        {
            AUDIT_ID: "w1",
            STAGE: "ResponseStarted",
            VERB: "watch",
            REQUEST_URI: "/apis/apps/v1/deployments?watch=true",
            **controller,
            API_GROUP: "apps",
            RESOURCE: "deployments",
            CODE: 200,
            REQUEST_TS: at(1_000),
            STAGE_TS: at(1_002),
            EVENT_BYTES: 200,
        },
        {
            AUDIT_ID: "w1",
            STAGE: "ResponseComplete",
            VERB: "watch",
            REQUEST_URI: "/apis/apps/v1/deployments?watch=true",
            **controller,
            API_GROUP: "apps",
            RESOURCE: "deployments",
            CODE: 200,
            REQUEST_TS: at(1_000),
            STAGE_TS: at(301_000),
            EVENT_BYTES: 300,
        },
    ]
    exec_uri = "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id"
    pod = {
        API_GROUP: "",
        API_VERSION: "v1",
        RESOURCE: "pods",
        SUBRESOURCE: "exec",
        NAMESPACE: "shop",
        NAME: "web-1",
        VERB: "create",
        REQUEST_URI: exec_uri,
    }
    rows += [
        {
            AUDIT_ID: "x1",
            STAGE: "ResponseStarted",
            **bob,
            **pod,
            CODE: 101,
            REQUEST_TS: at(180_000),
            STAGE_TS: at(180_020),
            EVENT_BYTES: 300,
        },
        {
            AUDIT_ID: "x1",
            STAGE: "ResponseComplete",
            **bob,
            **pod,
            CODE: 101,
            REQUEST_TS: at(180_000),
            STAGE_TS: at(225_000),
            EVENT_BYTES: 300,
        },
        {
            AUDIT_ID: "d1",
            STAGE: "ResponseComplete",
            VERB: "get",
            REQUEST_URI: "/healthz",
            USER: "system:anonymous",
            GROUPS: ["system:unauthenticated"],
            CODE: 200,
            REQUEST_TS: at(240_000),
            STAGE_TS: at(240_002),
            EVENT_BYTES: 200,
        },
    ]
    base = {CLUSTER: "example", DATE: t0.date(), LEVEL: "Metadata", SOURCE_FORMAT: "native"}
    frame = pl.DataFrame([{**base, **row} for row in rows], schema=AUDIT_SCHEMA)
    return frame.lazy()
