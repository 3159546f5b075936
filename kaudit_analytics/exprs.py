"""Named, reusable polars expressions over the events table.

Every analysis, compliance check and chart aggregate composes these instead of
re-deriving "is this a write?" or "who is this?" on its own, so that one fix reaches
every caller. Each name is either a ready ``pl.Expr`` constant (``IS_WRITE_VERB``) or a
function returning one when it takes arguments (``exec_command(uri)``). Constants carry an
``alias`` where they produce a new column, and boolean predicates never return null (a
missing ``verb`` is "not a write", so ``~IS_WRITE_VERB`` behaves).

Actor classification
--------------------
``ACTOR_KIND`` sorts the authenticated user into one of ``ACTOR_KINDS``, checked in this
order (the first match wins):

``unknown``
    no ``user`` at all (stub events, some GKE entries).
``anonymous``
    ``system:anonymous``, ``system:unauthenticated``, or any user in the group
    ``system:unauthenticated``.
``service_account``
    ``system:serviceaccount:<namespace>:<name>`` (see ``SA_NAMESPACE``/``SA_NAME``).
``node``
    kubelets and node bootstrap: ``system:node:<name>``, ``system:bootstrap:<id>``,
    ``system:kube-proxy``, AKS ``nodeclient``/``kubelet-nodepool-bootstrap``, ``kubelet``,
    or any user in ``system:nodes``/``system:bootstrappers``.
``control_plane``
    any other ``system:`` user (``system:kube-controller-manager``, ``system:apiserver``,
    GKE ``system:gke-master-healthcheck``…), EKS-managed ``eks:*`` users, AKS ``aksService``,
    kubeadm's ``kube-apiserver-kubelet-client``.
``cloud_service``
    a cloud IAM service identity acting directly: Google service accounts
    (``…@…gserviceaccount.com``, e.g. ``container-engine-robot``).
``human``
    everything else: people, but also shared credentials held by people such as
    kubeadm's ``kubernetes-admin`` or AKS's ``masterclient`` admin certificate.

Cloud identities are orthogonal to the kind: ``CLOUD_PROVIDER`` (``eks``/``aks``/``gke``)
says which managed Kubernetes the identity is seen through, ``CLOUD_PRINCIPAL`` names the
cloud principal (EKS ``user.extra.canonicalArn``/``arn``, an Entra ID or Google account
e-mail, the AKS certificate user) and ``CLOUD_SESSION`` the EKS ``sessionName``.
``ACTOR`` is the label charts show: the user, plus the IAM role in brackets when EKS mapped
a role onto a shared Kubernetes user.

Impersonation: ``user`` is always the *real* actor (who authenticated), ``EFFECTIVE_USER``
and ``EFFECTIVE_GROUPS`` the identity the request was authorised as.

Examples
--------
>>> import polars as pl
>>> from kaudit_analytics import exprs
>>> from kaudit_analytics.schema import GROUPS, USER
>>> users = pl.DataFrame(
...     {
...         USER: ["system:serviceaccount:kube-system:coredns", "alice@example.com", None],
...         GROUPS: [["system:serviceaccounts"], ["system:authenticated"], None],
...     }
... )
>>> users.select(exprs.ACTOR_KIND, exprs.SA_NAMESPACE)
shape: (3, 2)
┌─────────────────┬──────────────┐
│ actor_kind      ┆ sa_namespace │
│ ---             ┆ ---          │
│ enum            ┆ str          │
╞═════════════════╪══════════════╡
│ service_account ┆ kube-system  │
│ human           ┆ null         │
│ unknown         ┆ null         │
└─────────────────┴──────────────┘
"""

from __future__ import annotations

import polars as pl

from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    AUTHZ_DECISION,
    CLUSTER,
    CODE,
    GROUPS,
    IMPERSONATED_GROUPS,
    IMPERSONATED_USER,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    SOURCE_FORMAT,
    STAGE,
    STAGE_TS,
    SUBRESOURCE,
    USER,
    USER_EXTRA,
    USER_UID,
    VERB,
)

__all__ = [
    "ACTOR",
    "ACTOR_KIND",
    "ACTOR_KINDS",
    "AKS_USERS",
    "CHANGE_VERBS",
    "CLOUD_PRINCIPAL",
    "CLOUD_PROVIDER",
    "CLOUD_SESSION",
    "DELETE_VERBS",
    "EFFECTIVE_ACTOR_KIND",
    "EFFECTIVE_GROUPS",
    "EFFECTIVE_USER",
    "EXEC_COMMAND",
    "IS_ANONYMOUS",
    "IS_CLIENT_ERROR",
    "IS_CONTROL_PLANE",
    "IS_DENIED",
    "IS_EXEC",
    "IS_FAILED",
    "IS_HUMAN",
    "IS_IMPERSONATED",
    "IS_LAST_STAGE",
    "IS_LONG_RUNNING",
    "IS_NODE",
    "IS_READ_VERB",
    "IS_SERVER_ERROR",
    "IS_SERVICE_ACCOUNT",
    "IS_SUCCESS",
    "IS_WRITE_VERB",
    "LATENCY_MS",
    "NODE_NAME",
    "NOT_FAILED",
    "OTHER",
    "OUTCOME",
    "OUTCOMES",
    "READ_VERBS",
    "REAL_USER",
    "RESOURCE_KEY",
    "SA_NAME",
    "SA_NAMESPACE",
    "WRITE_VERBS",
    "ActorKind",
    "Outcome",
    "day_of_week",
    "exec_command",
    "hour_of_day",
    "hour_of_week",
    "percent_decode",
    "user_extra_value",
]

#: The label of the row that sums everything past the top N of an aggregate (activity's
#: top talkers, heatmaps, latencies): charts draw it apart, or not at all.
OTHER = "(other)"

# --------------------------------------------------------------------------- actors

ACTOR_KINDS: tuple[str, ...] = (
    "human",
    "service_account",
    "node",
    "control_plane",
    "cloud_service",
    "anonymous",
    "unknown",
)
ActorKind = pl.Enum(ACTOR_KINDS)

_SA_PREFIX = "system:serviceaccount:"
_NODE_PREFIX = "system:node:"
_ANONYMOUS_USERS = ("system:anonymous", "system:unauthenticated")
#: Node agents that authenticate with a fixed user name instead of ``system:node:<name>``.
_NODE_USERS = ("system:kube-proxy", "kubelet", "nodeclient", "kubelet-nodepool-bootstrap")
_NODE_GROUPS = ("system:nodes", "system:bootstrappers")
#: Managed control planes that use a fixed user name without the ``system:`` prefix.
_CONTROL_PLANE_USERS = ("aksService", "kube-apiserver-kubelet-client", "kube-apiserver")
#: The users AKS's own certificates authenticate as (admin cert, kubelet cert, resource provider).
AKS_USERS: tuple[str, ...] = ("masterclient", "nodeclient", "aksService")
_GCP_SA_SUFFIX = "gserviceaccount.com"


def _has_any(groups: pl.Expr, names: tuple[str, ...]) -> pl.Expr:
    # list.contains per name keeps this vectorised; a null list means "no groups".
    hits = [groups.list.contains(name) for name in names]
    return pl.any_horizontal(hits).fill_null(value=False)


def actor_kind(user: pl.Expr | None = None, groups: pl.Expr | None = None) -> pl.Expr:
    """Classify an authenticated identity into one of ``ACTOR_KINDS``.

    Parameters
    ----------
    user
        The user name expression; defaults to the real user (``user``).
    groups
        Its groups (``list[str]``); defaults to ``groups``.

    Returns
    -------
    pl.Expr
        An ``ActorKind`` enum expression (no alias: name it yourself).

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics.exprs import actor_kind
    >>> df = pl.DataFrame(
    ...     {
    ...         "u": ["system:node:ip-10-0-0-1", "eks:addon-manager", "system:anonymous"],
    ...         "g": [["system:nodes"], ["system:authenticated"], None],
    ...     }
    ... )
    >>> df.select(actor_kind(pl.col("u"), pl.col("g")).alias("kind"))["kind"].to_list()
    ['node', 'control_plane', 'anonymous']
    """
    user = pl.col(USER) if user is None else user
    groups = pl.col(GROUPS) if groups is None else groups
    return (
        pl.when(user.is_null())
        .then(pl.lit("unknown"))
        .when(user.is_in(_ANONYMOUS_USERS) | _has_any(groups, ("system:unauthenticated",)))
        .then(pl.lit("anonymous"))
        .when(user.str.starts_with(_SA_PREFIX))
        .then(pl.lit("service_account"))
        .when(
            user.str.starts_with(_NODE_PREFIX)
            | user.str.starts_with("system:bootstrap:")
            | user.is_in(_NODE_USERS)
            | _has_any(groups, _NODE_GROUPS)
        )
        .then(pl.lit("node"))
        .when(
            user.str.starts_with("system:")
            | user.str.starts_with("eks:")
            | user.is_in(_CONTROL_PLANE_USERS)
        )
        .then(pl.lit("control_plane"))
        .when(user.str.ends_with(_GCP_SA_SUFFIX))
        .then(pl.lit("cloud_service"))
        .otherwise(pl.lit("human"))
        .cast(ActorKind)
    )


#: Kind of the real (authenticated) user, column ``actor_kind``.
ACTOR_KIND: pl.Expr = actor_kind().alias("actor_kind")
IS_HUMAN: pl.Expr = actor_kind() == "human"
IS_SERVICE_ACCOUNT: pl.Expr = pl.col(USER).str.starts_with(_SA_PREFIX).fill_null(value=False)
IS_NODE: pl.Expr = actor_kind() == "node"
IS_CONTROL_PLANE: pl.Expr = actor_kind() == "control_plane"
IS_ANONYMOUS: pl.Expr = actor_kind() == "anonymous"

#: ``system:serviceaccount:<ns>:<name>`` -> ``<ns>``; null for other users.
SA_NAMESPACE: pl.Expr = (
    pl.col(USER).str.extract(r"^system:serviceaccount:([^:]+):", 1).alias("sa_namespace")
)
#: ``system:serviceaccount:<ns>:<name>`` -> ``<name>``; null for other users.
SA_NAME: pl.Expr = (
    pl.col(USER).str.extract(r"^system:serviceaccount:[^:]+:(.+)$", 1).alias("sa_name")
)
#: ``system:node:<name>`` -> ``<name>``; null for other users.
NODE_NAME: pl.Expr = pl.col(USER).str.extract(r"^system:node:(.+)$", 1).alias("node_name")


def user_extra_value(key: str) -> pl.Expr:
    """The first value of ``user.extra[key]``, or null when the key is absent.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics.exprs import user_extra_value
    >>> from kaudit_analytics.schema import USER_EXTRA
    >>> df = pl.DataFrame({USER_EXTRA: [[{"key": "sessionName", "values": ["bob"]}], []]})
    >>> df.select(user_extra_value("sessionName"))["sessionName"].to_list()
    ['bob', None]
    """
    return (
        pl.col(USER_EXTRA)
        .list.eval(
            pl.element().filter(pl.element().struct.field("key") == key).struct.field("values")
        )
        .list.first()
        .list.first()
        .alias(key)
    )


_EKS_ARN = pl.coalesce(user_extra_value("canonicalArn"), user_extra_value("arn"))

_IS_EKS = (
    _EKS_ARN.is_not_null()
    | pl.col(USER_UID).str.starts_with("aws-iam-authenticator:")
    | pl.col(USER_UID).str.starts_with("heptio-authenticator-aws:")
    | pl.col(USER).str.starts_with("eks:")
).fill_null(value=False)
_IS_AKS = (pl.col(USER).is_in(AKS_USERS) | (pl.col(SOURCE_FORMAT) == "aks")).fill_null(value=False)
_IS_GKE = (
    (pl.col(SOURCE_FORMAT) == "gke")
    | pl.col(USER).str.ends_with(_GCP_SA_SUFFIX)
    | pl.col(USER).str.starts_with("system:gke-")
).fill_null(value=False)

#: The managed Kubernetes an identity is seen through: ``"eks"``, ``"aks"``, ``"gke"``, or null
#: for a plain cluster. Set by cloud identities (an EKS IAM mapping, AKS's certificate users,
#: Google service accounts and ``system:gke-*``) and by the source format of AKS and GKE
#: exports, so a service account in an AKS export says ``"aks"`` too.
CLOUD_PROVIDER: pl.Expr = (
    pl.when(_IS_EKS)
    .then(pl.lit("eks"))
    .when(_IS_AKS)
    .then(pl.lit("aks"))
    .when(_IS_GKE)
    .then(pl.lit("gke"))
    .otherwise(pl.lit(None, dtype=pl.String))
    .alias("cloud_provider")
)

#: The cloud principal: the EKS IAM role/user ARN, the AKS certificate user, the e-mail of
#: an Entra ID (AKS) or Google (GKE) account; null elsewhere (an OIDC e-mail on a plain
#: cluster is no cloud principal).
CLOUD_PRINCIPAL: pl.Expr = (
    pl.when(_EKS_ARN.is_not_null())
    .then(_EKS_ARN)
    .when(pl.col(USER).is_in(AKS_USERS))
    .then(pl.col(USER))
    .when((_IS_AKS | _IS_GKE) & pl.col(USER).str.contains("@", literal=True))
    .then(pl.col(USER))
    .otherwise(pl.lit(None, dtype=pl.String))
    .alias("cloud_principal")
)

#: The EKS ``user.extra.sessionName`` (who assumed the IAM role, when SSO sets it).
CLOUD_SESSION: pl.Expr = user_extra_value("sessionName").alias("cloud_session")

#: The label charts and tables show for the real actor: the user, plus the IAM role in
#: brackets when EKS mapped one onto a Kubernetes user (many roles often share
#: ``kubernetes-admin``, and the role is what tells them apart).
ACTOR: pl.Expr = (
    pl.when(_EKS_ARN.is_not_null() & (pl.col(USER) != _EKS_ARN))
    .then(pl.concat_str(pl.col(USER), pl.lit(" ["), _EKS_ARN, pl.lit("]")))
    .otherwise(pl.col(USER))
    .alias("actor")
)

#: The user who authenticated (the real actor, whether or not they impersonated someone).
REAL_USER: pl.Expr = pl.col(USER).alias("real_user")
IS_IMPERSONATED: pl.Expr = pl.col(IMPERSONATED_USER).is_not_null().alias("is_impersonated")
#: The identity the request was authorised as: the impersonated user when there is one.
EFFECTIVE_USER: pl.Expr = pl.coalesce(pl.col(IMPERSONATED_USER), pl.col(USER)).alias(
    "effective_user"
)
EFFECTIVE_GROUPS: pl.Expr = (
    pl.when(pl.col(IMPERSONATED_USER).is_not_null())
    .then(pl.col(IMPERSONATED_GROUPS))
    .otherwise(pl.col(GROUPS))
    .alias("effective_groups")
)
EFFECTIVE_ACTOR_KIND: pl.Expr = actor_kind(
    pl.coalesce(pl.col(IMPERSONATED_USER), pl.col(USER)), EFFECTIVE_GROUPS
).alias("effective_actor_kind")

# --------------------------------------------------------------------------- verbs, outcomes

#: Resource verbs that create or change an object (its new state is the request body).
CHANGE_VERBS: tuple[str, ...] = ("create", "update", "patch")
#: Resource verbs that delete objects.
DELETE_VERBS: tuple[str, ...] = ("delete", "deletecollection")
#: Verbs that change state: the resource verbs above, plus the HTTP methods that
#: non-resource requests (``/apis``, ``/healthz``…) are logged with.
WRITE_VERBS: tuple[str, ...] = (*CHANGE_VERBS, *DELETE_VERBS, "post", "put")
#: Verbs that only read: ``get``, ``list``, ``watch`` and the read-only HTTP methods.
READ_VERBS: tuple[str, ...] = ("get", "list", "watch", "head", "options")
IS_WRITE_VERB: pl.Expr = pl.col(VERB).is_in(WRITE_VERBS).fill_null(value=False)
IS_READ_VERB: pl.Expr = pl.col(VERB).is_in(READ_VERBS).fill_null(value=False)

#: Refused by authentication (401) or authorisation (403, or an authoriser said ``forbid``).
IS_DENIED: pl.Expr = (
    (pl.col(CODE).is_in((401, 403)) | (pl.col(AUTHZ_DECISION) == "forbid"))
    .fill_null(value=False)
    .alias("is_denied")
)
#: The request did not fail: its response code is not an error, or no response was logged
#: (a RequestReceived event, an exec still streaming). What "it happened" means to a control.
NOT_FAILED: pl.Expr = pl.col(CODE).is_null() | (pl.col(CODE) < 400)
#: The request was refused or failed: any response code of 400 or more (the complement of
#: ``NOT_FAILED``, except that a missing code is neither).
IS_FAILED: pl.Expr = (pl.col(CODE) >= 400).fill_null(value=False)
IS_CLIENT_ERROR: pl.Expr = pl.col(CODE).is_between(400, 499).fill_null(value=False)
IS_SERVER_ERROR: pl.Expr = (pl.col(CODE) >= 500).fill_null(value=False)
#: 1xx (exec/attach upgrades), 2xx and 3xx.
IS_SUCCESS: pl.Expr = pl.col(CODE).is_between(100, 399).fill_null(value=False)

OUTCOMES: tuple[str, ...] = ("success", "denied", "client_error", "server_error", "unknown")
Outcome = pl.Enum(OUTCOMES)
#: One word per response: denied wins over client_error; ``unknown`` when no code was logged.
OUTCOME: pl.Expr = (
    pl.when(IS_DENIED)
    .then(pl.lit("denied"))
    .when(IS_SUCCESS)
    .then(pl.lit("success"))
    .when(IS_CLIENT_ERROR)
    .then(pl.lit("client_error"))
    .when(IS_SERVER_ERROR)
    .then(pl.lit("server_error"))
    .otherwise(pl.lit("unknown"))
    .cast(Outcome)
    .alias("outcome")
)

# --------------------------------------------------------------------------- requests

#: ``pods``, ``deployments.apps``, ``pods/exec``: the kubectl spelling of the resource.
#: Null for non-resource requests (``/healthz``, ``/apis``).
RESOURCE_KEY: pl.Expr = (
    pl.when(pl.col(RESOURCE).is_not_null())
    .then(
        pl.concat_str(
            pl.col(RESOURCE),
            pl.when(pl.col(API_GROUP).fill_null("") != "").then(pl.lit(".") + pl.col(API_GROUP)),
            pl.when(pl.col(SUBRESOURCE).is_not_null()).then(pl.lit("/") + pl.col(SUBRESOURCE)),
            ignore_nulls=True,
        )
    )
    .alias("resource_key")
)

_STREAMING_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
IS_EXEC: pl.Expr = pl.col(SUBRESOURCE).is_in(("exec", "attach")).fill_null(value=False)
#: Watches (``verb=watch`` or ``?watch=true``), streaming subresources and followed logs:
#: the requests whose latency is a session length, not a response time.
IS_LONG_RUNNING: pl.Expr = (
    (pl.col(VERB) == "watch")
    | pl.col(REQUEST_URI).str.contains(r"[?&]watch=(?:true|1)(?:&|$)")
    | pl.col(SUBRESOURCE).is_in(_STREAMING_SUBRESOURCES)
    | ((pl.col(SUBRESOURCE) == "log") & pl.col(REQUEST_URI).str.contains(r"[?&]follow=(?:true|1)"))
).fill_null(value=False)

#: ``stage_ts - request_ts`` in milliseconds (float; null when either is missing).
LATENCY_MS: pl.Expr = (
    (pl.col(STAGE_TS) - pl.col(REQUEST_TS)).dt.total_microseconds() / 1000.0
).alias("latency_ms")

#: True on the furthest stage logged for each request (Panic > ResponseComplete >
#: ResponseStarted > RequestReceived), and on every event without an ``audit_id``:
#: filtering on it counts each request once.
IS_LAST_STAGE: pl.Expr = (
    pl.col(AUDIT_ID).is_null() | (pl.col(STAGE) == pl.col(STAGE).max().over(CLUSTER, AUDIT_ID))
).fill_null(value=True)

# One valid UTF-8 sequence, spelled in lowercase hex pairs (RFC 3629 table 3-7).
_UTF8_HEX = (
    r"(?:[0-7][0-9a-f]"
    r"|(?:c[2-9a-f]|d[0-9a-f])[89ab][0-9a-f]"
    r"|e0[ab][0-9a-f][89ab][0-9a-f]"
    r"|(?:e[1-9a-cef])[89ab][0-9a-f][89ab][0-9a-f]"
    r"|ed[89][0-9a-f][89ab][0-9a-f]"
    r"|f0(?:9[0-9a-f]|[ab][0-9a-f])(?:[89ab][0-9a-f]){2}"
    r"|f[1-3](?:[89ab][0-9a-f]){3}"
    r"|f48[0-9a-f](?:[89ab][0-9a-f]){2})"
)


def percent_decode(text: pl.Expr) -> pl.Expr:
    """Decode ``application/x-www-form-urlencoded`` text (``+`` and ``%XX``), vectorised.

    Each ``%XX`` becomes its byte; the bytes are read as UTF-8. A value whose escapes do
    not form valid UTF-8 is returned with only ``+`` decoded, and a ``%`` not followed by
    two hex digits stays as it is (what Go's lenient query parsing shows users).

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics.exprs import percent_decode
    >>> s = pl.Series(["echo+h%C3%A9llo%3B", "100%", "%ff"])
    >>> s.to_frame("q").select(percent_decode(pl.col("q")))["q"].to_list()
    ['echo héllo;', '100%', '%ff']
    """
    plus = text.str.replace_all("+", " ", literal=True)
    # Spell the text in hex: escapes become their two hex digits, everything else its
    # UTF-8 bytes; then decode once. Splitting on "%" makes every piece after the first
    # start with the escape's digits (or with a stray "%" that was not an escape).
    piece = pl.element()
    hex_spelling = (
        plus.str.split("%")
        .list.eval(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(piece.str.encode("hex"))
            .when(piece.str.contains(r"^[0-9A-Fa-f]{2}"))
            .then(piece.str.slice(0, 2).str.to_lowercase() + piece.str.slice(2).str.encode("hex"))
            .otherwise(pl.lit("%").str.encode("hex") + piece.str.encode("hex"))
        )
        .list.join("")
    )
    safe_hex = (
        pl.when(hex_spelling.str.contains(f"^{_UTF8_HEX}*$"))
        .then(hex_spelling)
        .otherwise(plus.str.encode("hex"))
    )
    return safe_hex.str.decode("hex").cast(pl.String)


def exec_command(uri: pl.Expr | None = None) -> pl.Expr:
    """The argv of an exec request, decoded from the URI's repeated ``command=`` parameters.

    Parameters
    ----------
    uri
        The request URI; defaults to ``request_uri``.

    Returns
    -------
    pl.Expr
        ``list[str]``, empty when the URI has no ``command=``; null when the URI is null.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics.exprs import exec_command
    >>> uri = "/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=cat+%2Fetc%2Fshadow"
    >>> pl.DataFrame({"u": [uri]}).select(exec_command(pl.col("u")))["command"].to_list()
    [['sh', '-c', 'cat /etc/shadow']]
    """
    uri = pl.col(REQUEST_URI) if uri is None else uri
    values = uri.str.extract_all(r"[?&]command=[^&#]*").list.eval(
        percent_decode(pl.element().str.replace(r"^[?&]command=", ""))
    )
    return values.alias("command")


#: The exec argv joined by spaces (``sh -c cat /etc/shadow``); null when there is none.
EXEC_COMMAND: pl.Expr = (
    pl.when(exec_command().list.len() > 0)
    .then(exec_command().list.join(" "))
    .otherwise(pl.lit(None, dtype=pl.String))
    .alias("exec_command")
)

# --------------------------------------------------------------------------- time


def hour_of_day(ts: pl.Expr | None = None) -> pl.Expr:
    """Hour 0-23 (UTC) of ``ts``, default ``request_ts``; column ``hour``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> from kaudit_analytics.exprs import hour_of_day
    >>> pl.DataFrame({"t": [datetime(2026, 11, 27, 6, 30, tzinfo=UTC)]}).select(
    ...     hour_of_day(pl.col("t"))
    ... )["hour"].to_list()
    [6]
    """
    ts = pl.col(REQUEST_TS) if ts is None else ts
    return ts.dt.hour().cast(pl.Int8).alias("hour")


def day_of_week(ts: pl.Expr | None = None) -> pl.Expr:
    """ISO weekday 1 (Monday) to 7 (Sunday), UTC, of ``ts``; column ``weekday``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> from kaudit_analytics.exprs import day_of_week
    >>> pl.DataFrame({"t": [datetime(2026, 11, 27, tzinfo=UTC)]}).select(
    ...     day_of_week(pl.col("t"))
    ... )["weekday"].to_list()
    [5]
    """
    ts = pl.col(REQUEST_TS) if ts is None else ts
    return ts.dt.weekday().cast(pl.Int8).alias("weekday")


def hour_of_week(ts: pl.Expr | None = None) -> pl.Expr:
    """Hours since Monday 00:00 UTC, 0-167, of ``ts``; column ``hour_of_week``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> from kaudit_analytics.exprs import hour_of_week
    >>> pl.DataFrame({"t": [datetime(2026, 11, 27, 6, tzinfo=UTC)]}).select(
    ...     hour_of_week(pl.col("t"))
    ... )["hour_of_week"].to_list()
    [102]
    """
    ts = pl.col(REQUEST_TS) if ts is None else ts
    return ((ts.dt.weekday().cast(pl.Int16) - 1) * 24 + ts.dt.hour().cast(pl.Int16)).alias(
        "hour_of_week"
    )
