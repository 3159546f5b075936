"""Evidence queries behind the compliance controls (private to ``compliance``).

Each query is a function ``(events, ctx) -> LazyFrame`` that keeps the columns in
``EVIDENCE_INPUT`` plus a ``detail`` string, one row per finding. Simple controls are one
filter (one row per request); aggregate controls (bursts, gaps, first-seen values) return one
row per finding that points at the first event of that finding, so ``source_file`` and
``source_line`` always lead back to a raw log line.

Nothing here reads request or response bodies into an output column: bodies are matched with
regular expressions and only the *name* of what matched ("privileged", "hostPath") reaches
``detail``. That is what keeps Secret values out of every report, whatever level they were
logged at.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from kaudit_analytics import exprs
from kaudit_analytics import schema as s
from kaudit_analytics.window import Window

DETAIL = "detail"

#: Event columns every evidence query keeps (what the evidence table is built from).
EVIDENCE_INPUT: tuple[str, ...] = (
    s.CLUSTER,
    s.AUDIT_ID,
    s.STAGE,
    s.REQUEST_TS,
    s.USER,
    s.IMPERSONATED_USER,
    s.VERB,
    s.REQUEST_URI,
    s.NAMESPACE,
    s.SOURCE_IPS,
    s.USER_AGENT,
    s.CODE,
    s.AUTHZ_DECISION,
    s.SOURCE_FILE,
    s.SOURCE_LINE,
)

_ORDER = (s.REQUEST_TS, s.SOURCE_FILE, s.SOURCE_LINE)

#: Columns ``prepare`` derives once per window so that no control recomputes them.
ACTOR_COL = "_actor"
LAST_COL = "_last"
PSA_COL = "_psa"
#: The event columns the controls read; ``prepare`` keeps only these.
READ_COLUMNS: tuple[str, ...] = (
    *EVIDENCE_INPUT,
    s.LEVEL,
    s.IMPERSONATED_GROUPS,
    s.API_GROUP,
    s.RESOURCE,
    s.SUBRESOURCE,
    s.NAME,
)


@dataclass(frozen=True)
class Settings:
    """Thresholds and local conventions the controls use; change with ``dataclasses.replace``.

    Examples
    --------
    >>> import dataclasses
    >>> dataclasses.replace(Settings(), secret_burst=50).secret_burst
    50
    """

    #: Local working hours ``[start, end)`` and ISO weekdays (Monday = 1) of the humans.
    working_hours: tuple[int, int] = (8, 18)
    working_days: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3, 4, 5}))
    timezone: str = "UTC"
    #: Bursts are counted in fixed buckets of this length.
    burst_window: dt.timedelta = dt.timedelta(minutes=10)
    secret_burst: int = 20
    auth_failure_burst: int = 10
    #: Longest silence in one cluster's audit stream that is not a gap (PCI 10.2.1.6).
    gap_threshold: dt.timedelta = dt.timedelta(hours=1)
    #: A request younger than this at the window's end may still complete after it.
    stage_grace: dt.timedelta = dt.timedelta(hours=2)


@dataclass(frozen=True)
class Context:
    """What an evidence query may look at besides the window's events."""

    window: Window
    settings: Settings = field(default_factory=Settings)
    #: Events of an earlier period to compare with (first-seen controls), or None.
    baseline: pl.LazyFrame | None = field(default=None, compare=False)


class EvidenceQuery(Protocol):
    """The shape of every control's evidence query."""

    def __call__(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame: ...


# --------------------------------------------------------------------------- building blocks

_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
_BINDINGS = ("rolebindings", "clusterrolebindings")
_ROLES = ("roles", "clusterroles")
_CREATE_DELETE = ("create", *exprs.DELETE_VERBS)
_WORKLOADS = ("deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs")
#: Cluster-scoped "resources" that are questions, not objects: creating one stores nothing.
_VIRTUAL = (
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "selfsubjectreviews",
)
HEALTH_PATHS = r"^/(healthz|livez|readyz|version)(/|\?|$)"

CORE = pl.col(s.API_GROUP).fill_null("") == ""
SECRETS = CORE & (pl.col(s.RESOURCE) == "secrets")
NO_SUBRESOURCE = pl.col(s.SUBRESOURCE).is_null() | (pl.col(s.SUBRESOURCE) == "")
_SA_KUBE_SYSTEM = pl.col(s.USER).str.starts_with("system:serviceaccount:kube-system:")
#: The cluster's own machinery: control-plane users, nodes, and kube-system controllers.
MACHINERY = (pl.col(ACTOR_COL).is_in(("control_plane", "node")) | _SA_KUBE_SYSTEM).fill_null(
    value=False
)

SECRET_READ = SECRETS & exprs.IS_READ_VERB
POD_EXEC = (
    CORE
    & (pl.col(s.RESOURCE) == "pods")
    & pl.col(s.SUBRESOURCE).is_in(("exec", "attach", "portforward"))
    & pl.col(s.VERB).is_in(("create", "get"))
)
PROXY = (
    CORE
    & pl.col(s.RESOURCE).is_in(("nodes", "services", "pods"))
    & (pl.col(s.SUBRESOURCE) == "proxy")
)
RBAC_WRITE = (
    (pl.col(s.API_GROUP) == _RBAC_GROUP)
    & pl.col(s.RESOURCE).is_in(_RBAC_RESOURCES)
    & exprs.IS_WRITE_VERB
)
RBAC_CHANGE = RBAC_WRITE & pl.col(s.VERB).is_in(exprs.CHANGE_VERBS)
POD_SPEC_WRITE = (
    CORE & (pl.col(s.RESOURCE) == "pods") & (pl.col(s.VERB) == "create") & NO_SUBRESOURCE
) | (
    pl.col(s.API_GROUP).is_in(("apps", "batch", "extensions"))
    & pl.col(s.RESOURCE).is_in(_WORKLOADS)
    & pl.col(s.VERB).is_in(exprs.CHANGE_VERBS)
    & NO_SUBRESOURCE
)
SA_TOKEN = (
    CORE
    & (pl.col(s.RESOURCE) == "serviceaccounts")
    & (pl.col(s.SUBRESOURCE) == "token")
    & (pl.col(s.VERB) == "create")
)
CSR_WRITE = (pl.col(s.API_GROUP) == "certificates.k8s.io") & (
    pl.col(s.RESOURCE) == "certificatesigningrequests"
)
WEBHOOK_WRITE = (
    (pl.col(s.API_GROUP) == "admissionregistration.k8s.io")
    | ((pl.col(s.API_GROUP) == "apiregistration.k8s.io") & (pl.col(s.RESOURCE) == "apiservices"))
) & exprs.IS_WRITE_VERB
CRD_WRITE = (
    (pl.col(s.API_GROUP) == "apiextensions.k8s.io")
    & (pl.col(s.RESOURCE) == "customresourcedefinitions")
    & exprs.IS_WRITE_VERB
)
AUDIT_CONFIG_WRITE = (
    (pl.col(s.RESOURCE) == "auditsinks")
    | (
        CORE
        & (pl.col(s.RESOURCE) == "configmaps")
        & (pl.col(s.NAMESPACE) == "kube-system")
        & pl.col(s.NAME).str.contains("audit")
    )
) & exprs.IS_WRITE_VERB
CLUSTER_SCOPED_CREATE_DELETE = (
    pl.col(s.VERB).is_in(_CREATE_DELETE)
    & pl.col(s.RESOURCE).is_not_null()
    # The apiserver puts a Namespace's own name in objectRef.namespace for get/update/delete.
    & (pl.col(s.NAMESPACE).is_null() | (CORE & (pl.col(s.RESOURCE) == "namespaces")))
    & NO_SUBRESOURCE
    & ~pl.col(s.RESOURCE).is_in(_VIRTUAL)
)
KUBE_SYSTEM_WRITE = (
    (pl.col(s.NAMESPACE) == "kube-system")
    & exprs.IS_WRITE_VERB
    # Leader-election leases and Event records change every few seconds and configure nothing.
    & ~pl.col(s.RESOURCE).is_in(("leases", "events")).fill_null(value=False)
)
#: The apiserver logs a failed authentication once, at ResponseStarted, with code 401 and no
#: user: that record is complete as it is.
FAILED_AUTHENTICATION = (pl.col(s.CODE) == 401).fill_null(value=False)
ANONYMOUS = (pl.col(ACTOR_COL) == "anonymous").fill_null(value=False)
HUMAN = (pl.col(ACTOR_COL) == "human").fill_null(value=False)

_PSA_ANNOTATION = "pod-security.kubernetes.io/audit-violations"
_PSA_VALUE = (
    pl.col(s.ANNOTATIONS)
    .list.eval(
        pl.element()
        .filter(pl.element().struct.field("key") == _PSA_ANNOTATION)
        .struct.field("value")
    )
    .list.first()
)
_PSA_REFUSED = (pl.col(s.CODE) == 403) & pl.col(s.MESSAGE).str.contains(
    "violates PodSecurity", literal=True
)
_PSA_FOUND = pl.coalesce(_PSA_VALUE, pl.when(_PSA_REFUSED).then(pl.col(s.MESSAGE)))
PSA_VIOLATION = pl.col(PSA_COL).is_not_null()
PSA_DETAIL = pl.col(PSA_COL)

# Bodies are raw JSON; these patterns look for a key and its value side by side, which also
# matches the same fields inside a patch. Escaped JSON (kubectl's last-applied annotation)
# does not match, because there the quote before the colon is preceded by a backslash.
_BODY_FLAGS: tuple[tuple[str, str], ...] = (
    ("privileged", r'"privileged"\s*:\s*true'),
    ("hostPath", r'"hostPath"\s*:\s*\{'),
    ("hostNetwork", r'"hostNetwork"\s*:\s*true'),
    ("hostPID", r'"hostPID"\s*:\s*true'),
    ("hostIPC", r'"hostIPC"\s*:\s*true'),
)
_ESCALATION_FLAGS: tuple[tuple[str, str], ...] = (
    ("binds cluster-admin", r'"roleRef"\s*:\s*\{[^}]*"name"\s*:\s*"cluster-admin"'),
    ("binds system:masters", r'"subjects"\s*:\s*\[[^\]]*"name"\s*:\s*"system:masters"'),
    ("wildcard verbs", r'"verbs"\s*:\s*\[[^\]]*"\*"'),
    ("wildcard resources", r'"resources"\s*:\s*\[[^\]]*"\*"'),
    ("wildcard apiGroups", r'"apiGroups"\s*:\s*\[[^\]]*"\*"'),
    (
        "grants escalate/bind/impersonate",
        r'"verbs"\s*:\s*\[[^\]]*"(?:escalate|bind|impersonate)"',
    ),
)
# Not a credential: the Secret type that marks legacy service-account tokens.
SA_TOKEN_SECRET_BODY = r'"type"\s*:\s*"kubernetes\.io/service-account-token"'  # noqa: S105


def body_flags(
    flags: tuple[tuple[str, str], ...], body: pl.Expr | None = None
) -> tuple[pl.Expr, pl.Expr]:
    """``(any_flag, names)``: whether the body matches any pattern, and their names joined.

    Regular expressions over bodies are the costly part of a control: use these as the
    ``refine`` step of ``where``, so they only see the rows the cheap predicate kept.
    """
    body = pl.col(s.REQUEST_OBJECT) if body is None else body
    hits = [body.str.contains(pattern).fill_null(value=False) for _, pattern in flags]
    names = pl.concat_str(
        [pl.when(hit).then(pl.lit(name)) for hit, (name, _) in zip(hits, flags, strict=True)],
        separator=", ",
        ignore_nulls=True,
    )
    return pl.any_horizontal(hits), names


PRIVILEGED_BODY, PRIVILEGED_NAMES = body_flags(_BODY_FLAGS)
ESCALATION_BODY, ESCALATION_NAMES = body_flags(_ESCALATION_FLAGS)


def _duration(delta: dt.timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


def _human_duration(delta: pl.Expr) -> pl.Expr:
    minutes = delta.dt.total_minutes()
    return pl.concat_str(
        (minutes // 60).cast(pl.String), pl.lit("h"), (minutes % 60).cast(pl.String), pl.lit("m")
    )


def _keep(events: pl.LazyFrame, detail: pl.Expr) -> pl.LazyFrame:
    return events.select(*EVIDENCE_INPUT, detail.cast(pl.String).alias(DETAIL))


def _requests(
    events: pl.LazyFrame, predicate: pl.Expr, refine: pl.Expr | None = None
) -> pl.LazyFrame:
    """Rows matching ``predicate`` (then ``refine``), one per request (its furthest stage).

    ``refine`` is computed as a column of the rows ``predicate`` kept before it filters:
    polars merges consecutive filters into one, which would run an expensive ``refine``
    (a regular expression over bodies) on every event.
    """
    rows = events.filter(pl.col(LAST_COL) & predicate.fill_null(value=False))
    if refine is None:
        return rows
    return (
        rows.with_columns(refine.fill_null(value=False).alias("_refine"))
        .filter(pl.col("_refine"))
        .drop("_refine")
    )


def where(
    predicate: pl.Expr, detail: pl.Expr | None = None, *, refine: pl.Expr | None = None
) -> EvidenceQuery:
    """An evidence query that is one filter: every matching request is a finding.

    ``refine`` is a further condition evaluated only on the rows ``predicate`` kept.
    """
    text = pl.lit(None, dtype=pl.String) if detail is None else detail

    def query(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx  # a plain filter needs nothing but the events
        return _keep(_requests(events, predicate, refine), text)

    return query


def _first_of_groups(rows: pl.LazyFrame, keys: list[str], extra: list[pl.Expr]) -> pl.LazyFrame:
    """One row per group: the group's earliest event plus the ``extra`` aggregates."""
    carried = [name for name in EVIDENCE_INPUT if name not in keys]
    return (
        rows.sort(*_ORDER, nulls_last=True)
        .group_by(keys, maintain_order=True)
        .agg(*[pl.col(name).first() for name in carried], *extra)
    )


# --------------------------------------------------------------------------- aggregate queries


def rbac_escalations(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """RBAC writes that grant more than they should, read from request bodies.

    A role is flagged for wildcard verbs, resources or API groups, or for granting
    ``escalate``, ``bind`` or ``impersonate``; a binding for naming cluster-admin or
    system:masters, or for binding a role flagged in the same window (a role written before
    the window is not known here).
    """
    del ctx
    changes = _requests(events, RBAC_CHANGE & exprs.NOT_FAILED).with_columns(
        ESCALATION_NAMES.alias("_flags"),
        pl.col(s.REQUEST_OBJECT).str.json_path_match("$.roleRef.name").alias("_bound"),
        pl.col(s.REQUEST_OBJECT).str.json_path_match("$.roleRef.kind").alias("_bound_kind"),
    )
    role_kind = (
        pl.when(pl.col(s.RESOURCE) == "roles").then(pl.lit("Role")).otherwise(pl.lit("ClusterRole"))
    )
    flagged_roles = (
        changes.filter(pl.col(s.RESOURCE).is_in(_ROLES) & (pl.col("_flags") != ""))
        .select(
            s.CLUSTER,
            pl.coalesce(
                pl.col(s.NAME), pl.col(s.REQUEST_OBJECT).str.json_path_match("$.metadata.name")
            ).alias("_bound"),
            role_kind.alias("_bound_kind"),
            pl.lit(value=True).alias("_risky"),
        )
        .unique()
    )
    binds_risky = pl.when(pl.col("_risky").fill_null(value=False)).then(
        pl.format("binds flagged {} {}", pl.col("_bound_kind"), pl.col("_bound"))
    )
    detail = pl.concat_str(
        [pl.when(pl.col("_flags") != "").then(pl.col("_flags")), binds_risky],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        changes.join(flagged_roles, on=[s.CLUSTER, "_bound", "_bound_kind"], how="left")
        .with_columns(detail.alias("_detail"))
        .filter(pl.col("_detail") != "")
        .pipe(_keep, pl.col("_detail"))
    )


def secret_read_bursts(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """One identity reading Secrets ``secret_burst`` times or more in one burst bucket."""
    st = ctx.settings
    return (
        _first_of_groups(
            _requests(events, SECRET_READ).with_columns(
                pl.col(s.REQUEST_TS).dt.truncate(_duration(st.burst_window)).alias("_bucket")
            ),
            [s.CLUSTER, s.USER, "_bucket"],
            [pl.len().alias("_n"), pl.col(s.NAMESPACE).n_unique().alias("_ns")],
        )
        .filter(pl.col("_n") >= st.secret_burst)
        .pipe(
            _keep,
            pl.format(
                "{} Secret reads in {} namespace(s) within {} minutes",
                pl.col("_n"),
                pl.col("_ns"),
                pl.lit(int(st.burst_window.total_seconds() // 60)),
            ),
        )
    )


def _denials(events: pl.LazyFrame) -> pl.LazyFrame:
    return _requests(events, exprs.IS_DENIED).with_columns(
        pl.col(s.USER).fill_null("<unauthenticated>").alias("_who"),
        pl.col(s.SOURCE_IPS).list.first().alias("_where"),
    )


def _denial_counts() -> list[pl.Expr]:
    return [
        pl.len().alias("_n"),
        (pl.col(s.CODE) == 401).sum().alias("_401"),
        (pl.col(s.CODE) == 403).sum().alias("_403"),
    ]


def denied_by_identity(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """All 401 and 403 responses, one finding per identity and source IP."""
    del ctx
    return _first_of_groups(_denials(events), [s.CLUSTER, "_who", "_where"], _denial_counts()).pipe(
        _keep,
        pl.format(
            "{} denied request(s) from this identity and address (401: {}, 403: {})",
            pl.col("_n"),
            pl.col("_401"),
            pl.col("_403"),
        ),
    )


def denied_bursts(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """``auth_failure_burst`` or more 401/403 for one identity and IP within one bucket."""
    st = ctx.settings
    return (
        _first_of_groups(
            _denials(events).with_columns(
                pl.col(s.REQUEST_TS).dt.truncate(_duration(st.burst_window)).alias("_bucket")
            ),
            [s.CLUSTER, "_who", "_where", "_bucket"],
            _denial_counts(),
        )
        .filter(pl.col("_n") >= st.auth_failure_burst)
        .pipe(
            _keep,
            pl.format(
                "{} denied requests within {} minutes (401: {}, 403: {})",
                pl.col("_n"),
                pl.lit(int(st.burst_window.total_seconds() // 60)),
                pl.col("_401"),
                pl.col("_403"),
            ),
        )
    )


def off_hours_humans(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """Human requests outside working hours: one finding per person and local day."""
    st = ctx.settings
    local = pl.col(s.REQUEST_TS).dt.convert_time_zone(st.timezone)
    start, end = st.working_hours
    off = ~local.dt.weekday().is_in(sorted(st.working_days)) | ~local.dt.hour().is_between(
        start, end, closed="left"
    )
    return _first_of_groups(
        _requests(events, HUMAN & off).with_columns(local.dt.date().alias("_day")),
        [s.CLUSTER, s.USER, "_day"],
        [pl.len().alias("_n")],
    ).pipe(
        _keep,
        pl.format(
            "{} request(s) outside working hours on {} ({})",
            pl.col("_n"),
            pl.col("_day").cast(pl.String),
            pl.lit(st.timezone),
        ),
    )


def _first_seen(
    events: pl.LazyFrame, baseline: pl.LazyFrame, value: pl.Expr, label: str
) -> pl.LazyFrame:
    """Per human, values of ``value`` seen in the window but never in the baseline."""
    keys = [s.CLUSTER, s.USER, "_value"]
    seen = baseline.filter(HUMAN).select(s.CLUSTER, s.USER, value.alias("_value")).unique()
    known = seen.select(s.CLUSTER, s.USER).unique()
    fresh = (
        _requests(events, HUMAN)
        .with_columns(value.alias("_value"))
        .filter(pl.col("_value").is_not_null())
        .join(known, on=[s.CLUSTER, s.USER], how="semi", nulls_equal=True)
        .join(seen, on=keys, how="anti", nulls_equal=True)
    )
    return _first_of_groups(fresh, keys, [pl.len().alias("_n")]).pipe(
        _keep,
        pl.format(
            "new {} for this identity: {} ({} request(s))",
            pl.lit(label),
            pl.col("_value"),
            pl.col("_n"),
        ),
    )


def new_agents_and_addresses(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """User agents and source IPs a known human has not used in the baseline period."""
    if ctx.baseline is None:
        return _keep(events.head(0), pl.lit(None, dtype=pl.String))
    return pl.concat(
        [
            _first_seen(events, ctx.baseline, pl.col(s.USER_AGENT), "user agent"),
            _first_seen(events, ctx.baseline, pl.col(s.SOURCE_IPS).list.first(), "source IP"),
        ]
    )


def stream_gaps(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """Silences longer than ``gap_threshold`` in each cluster's stream, window edges included.

    A gap inside the stream points at the event that ended it; a silence between the last
    event and the window's end points at that last event.
    """
    threshold, window = ctx.settings.gap_threshold, ctx.window
    indexed = events.with_row_index("_row")
    # Order three narrow columns, not the whole table; join the few gaps back afterwards.
    order = indexed.select(s.CLUSTER, s.REQUEST_TS, "_row").sort(
        s.CLUSTER, s.REQUEST_TS, "_row", nulls_last=True
    )
    same_before = pl.col(s.CLUSTER) == pl.col(s.CLUSTER).shift(1)
    same_after = pl.col(s.CLUSTER) == pl.col(s.CLUSTER).shift(-1)
    before = order.with_columns(
        (
            pl.col(s.REQUEST_TS)
            - pl.when(same_before.fill_null(value=False))
            .then(pl.col(s.REQUEST_TS).shift(1))
            .otherwise(pl.lit(window.since))
        ).alias("_gap"),
        pl.lit("no events for {} before this one").alias("_text"),
    )
    after = order.filter(~same_after.fill_null(value=False)).with_columns(
        (pl.lit(window.until) - pl.col(s.REQUEST_TS)).alias("_gap"),
        pl.lit("no events for {} after this one, up to the window's end").alias("_text"),
    )
    gaps = (
        pl.concat([before, after])
        .filter(pl.col("_gap") > threshold)
        .select("_row", "_gap", "_text")
    )
    return indexed.join(gaps, on="_row", how="inner").pipe(
        _keep,
        pl.col("_text").str.replace("{}", _human_duration(pl.col("_gap")), literal=True),
    )


def incomplete_requests(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """Requests whose start was logged but whose completion never was.

    A request's furthest logged stage is its last one; when that is RequestReceived or
    ResponseStarted, no ResponseComplete or Panic followed. Requests received within
    ``stage_grace`` of the window's end, or of the cluster's last event in it, are left
    alone: a long watch completes after them (a stream that stopped is ``audit-gap``'s).
    """
    grace = ctx.settings.stage_grace
    ends = events.group_by(s.CLUSTER).agg(
        pl.min_horizontal(pl.col(s.REQUEST_TS).max(), pl.lit(ctx.window.until)).alias("_end")
    )
    return (
        _requests(
            events,
            (pl.col(s.STAGE).to_physical() <= s.STAGES.index("ResponseStarted"))
            & pl.col(s.AUDIT_ID).is_not_null()
            & ~FAILED_AUTHENTICATION,
        )
        .join(ends, on=s.CLUSTER, how="inner", nulls_equal=True)
        .filter(pl.col(s.REQUEST_TS) < pl.col("_end") - grace)
        .pipe(
            _keep,
            pl.format(
                "last logged stage is {}; no ResponseComplete or Panic",
                pl.col(s.STAGE).cast(pl.String),
            ),
        )
    )


def missing_record_fields(events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
    """Events without a field PCI-DSS 10.2.2 requires in every audit record."""
    del ctx
    missing = [
        # A failed authentication has no user to record; its source IP identifies it.
        ("user", (pl.col(s.USER).fill_null("") == "") & ~FAILED_AUTHENTICATION),
        ("verb", pl.col(s.VERB).fill_null("") == ""),
        ("timestamp", pl.col(s.REQUEST_TS).is_null()),
        ("source IP", pl.col(s.SOURCE_IPS).list.len().fill_null(0) == 0),
        ("request URI", pl.col(s.REQUEST_URI).fill_null("") == ""),
        (
            "response code",
            (pl.col(s.STAGE).to_physical() == s.STAGES.index("ResponseComplete"))
            & pl.col(s.CODE).is_null(),
        ),
    ]
    names = pl.concat_str(
        [pl.when(hit).then(pl.lit(name)) for name, hit in missing],
        separator=", ",
        ignore_nulls=True,
    )
    return events.filter(pl.any_horizontal([hit for _, hit in missing])).pipe(
        _keep, pl.concat_str(pl.lit("missing: "), names)
    )


_CATEGORICAL = (s.VERB, s.API_GROUP, s.RESOURCE, s.SUBRESOURCE, s.NAMESPACE)
_BODY_NEEDED = (POD_SPEC_WRITE | RBAC_CHANGE | (SECRETS & (pl.col(s.VERB) == "create"))).fill_null(
    value=False
)
# One key per request: hashing (cluster, audit_id) to u64 makes the per-request maximum
# several times faster than a window over the two string columns.
_REQUEST_KEY = pl.struct(s.CLUSTER, s.AUDIT_ID).hash()


def prepare(events: pl.LazyFrame, window: Window | None) -> pl.LazyFrame:
    """The window's events as the controls read them, with the shared columns derived once.

    Keeps ``READ_COLUMNS``; keeps a request body only where a control matches on it (pod
    specs, RBAC writes, Secret creates); adds the actor kind (``ACTOR_COL``), whether the row
    is its request's furthest logged stage (``LAST_COL``) and the Pod Security violation text
    (``PSA_COL``).
    """
    rows = events if window is None else events.filter(window.contains())
    stage = pl.col(s.STAGE).to_physical()
    return rows.select(
        *[
            # Every control compares these with literals; as categoricals that is an integer
            # comparison instead of a string one (ten times faster over millions of rows).
            pl.col(name).cast(pl.Categorical) if name in _CATEGORICAL else pl.col(name)
            for name in READ_COLUMNS
        ],
        pl.when(_BODY_NEEDED).then(pl.col(s.REQUEST_OBJECT)).alias(s.REQUEST_OBJECT),
        exprs.actor_kind().alias(ACTOR_COL),
        (pl.col(s.AUDIT_ID).is_null() | (stage == stage.max().over(_REQUEST_KEY))).alias(LAST_COL),
        _PSA_FOUND.alias(PSA_COL),
    )
