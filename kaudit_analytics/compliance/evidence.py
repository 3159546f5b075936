"""Evidence queries behind the compliance controls: predicates, query shapes, ``prepare``.

A control's evidence query runs in two steps so that a window can be assessed one slice (a
day) at a time with flat memory: ``partial(slice, ctx)`` reduces one slice of the prepared
events to what the control must remember (its findings, or small per-group partial
aggregates), and ``final(partials, ctx)`` turns the concatenated partials of every slice into
findings. A plain filter (``Where``) keeps its findings and passes them through; a windowed
aggregate (``Grouped`` and the classes of ``windowed``) keeps the first event of each group,
its counts and the distinct values it must count, and merges them across slices.

Every finding keeps the columns in ``EVIDENCE_INPUT`` plus a ``detail`` string, one row per
finding, pointing at a real event (for aggregates, the first event of the group), so that
``source_file`` and ``source_line`` always lead back to a raw log line.

Nothing here reads request or response bodies into an output column: ``bodies`` names what
matched ("privileged", "hostPath /"), never a value. That keeps Secret values out of every
report, whatever level they were logged at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import polars as pl

from kaudit_analytics import exprs
from kaudit_analytics import schema as s
from kaudit_analytics.compliance.settings import Settings, glob_regex, in_ranges, matches_any
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

ORDER = (s.REQUEST_TS, s.SOURCE_FILE, s.SOURCE_LINE)

#: Columns ``prepare`` derives once per slice so that no control recomputes them.
ACTOR_COL = "_actor"
LAST_COL = "_last"
MACHINERY_COL = "_machinery"
IP_COL = "_ip"
#: The event columns the controls read; ``prepare`` keeps only these.
READ_COLUMNS: tuple[str, ...] = (
    *EVIDENCE_INPUT,
    s.LEVEL,
    s.GROUPS,
    s.IMPERSONATED_GROUPS,
    s.API_GROUP,
    s.RESOURCE,
    s.SUBRESOURCE,
    s.NAME,
    s.MESSAGE,
)


@dataclass(frozen=True)
class Context:
    """What an evidence query may look at besides the window's events."""

    window: Window
    settings: Settings = field(default_factory=Settings)
    #: What was seen in an earlier period (``baseline_rows`` of it), for first-seen controls;
    #: None when there is nothing to compare with.
    baseline: pl.LazyFrame | None = field(default=None, compare=False)


@runtime_checkable
class EvidenceQuery(Protocol):
    """The shape of every control's evidence query: per slice, then over all slices."""

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        """What one slice of prepared events contributes (small)."""
        ...

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        """Findings (``EVIDENCE_INPUT`` + ``detail``) from the concatenated partials."""
        ...


def run(query: EvidenceQuery, events: pl.LazyFrame, ctx: Context) -> pl.LazyFrame:
    """A query over one prepared frame that is the whole window."""
    return query.final(query.partial(events, ctx), ctx)


#: A predicate or detail that may depend on the settings.
Tuned = pl.Expr | Callable[[Settings], pl.Expr]


def tuned(value: Tuned, settings: Settings) -> pl.Expr:
    """The expression of a ``Tuned`` value under these settings."""
    return value(settings) if callable(value) and not isinstance(value, pl.Expr) else value


# --------------------------------------------------------------------------- building blocks

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
BINDINGS = ("rolebindings", "clusterrolebindings")
ROLES = ("roles", "clusterroles")
WORKLOADS = ("deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs")
#: Cluster-scoped "resources" that are questions, not objects: creating one stores nothing.
VIRTUAL = (
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "selfsubjectreviews",
    "localsubjectaccessreviews",
)
HEALTH_PATHS = r"^/(healthz|livez|readyz|version)(/|\?|$)"

VERB = pl.col(s.VERB)
RESOURCE = pl.col(s.RESOURCE)
SUBRESOURCE = pl.col(s.SUBRESOURCE)
CORE = pl.col(s.API_GROUP).fill_null("") == ""
NO_SUBRESOURCE = SUBRESOURCE.is_null() | (SUBRESOURCE == "")
CREATE = VERB == "create"
CHANGE = VERB.is_in(exprs.CHANGE_VERBS)
DELETE = VERB.is_in(exprs.DELETE_VERBS)
#: The request was refused or failed: any response code of 400 or more.
FAILED = exprs.IS_FAILED
SUCCEEDED = exprs.NOT_FAILED


def resource_is(resource: str, *, group: str | None = "") -> pl.Expr:
    """Requests on ``resource`` of API ``group`` (core by default; None: any group)."""
    match = RESOURCE.eq(resource)
    if group is None:
        return match
    return match & (CORE if group == "" else pl.col(s.API_GROUP) == group)


SECRETS = resource_is("secrets")
SECRET_READ = SECRETS & exprs.IS_READ_VERB
SECRET_WRITE = SECRETS & exprs.IS_WRITE_VERB & NO_SUBRESOURCE
PODS = resource_is("pods")
POD_EXEC = (
    PODS & SUBRESOURCE.is_in(("exec", "attach", "portforward")) & VERB.is_in(("create", "get"))
)
PROXY = CORE & RESOURCE.is_in(("nodes", "services", "pods")) & (SUBRESOURCE == "proxy")
RBAC = (pl.col(s.API_GROUP) == RBAC_GROUP) & RESOURCE.is_in(RBAC_RESOURCES)
RBAC_WRITE = RBAC & exprs.IS_WRITE_VERB
RBAC_CHANGE = RBAC & CHANGE
ROLE_CHANGE = RBAC_CHANGE & RESOURCE.is_in(ROLES)
POD_CREATE = PODS & CREATE & NO_SUBRESOURCE
WORKLOAD_CHANGE = (
    pl.col(s.API_GROUP).is_in(("apps", "batch", "extensions"))
    & RESOURCE.is_in(WORKLOADS)
    & CHANGE
    & NO_SUBRESOURCE
)
#: Writes that set a pod spec: pod creates and updates, ephemeral containers, and workloads.
POD_SPEC_WRITE = (
    PODS & CHANGE & (NO_SUBRESOURCE | (SUBRESOURCE == "ephemeralcontainers"))
) | WORKLOAD_CHANGE
EPHEMERAL = PODS & (SUBRESOURCE == "ephemeralcontainers") & CHANGE
SA_TOKEN = resource_is("serviceaccounts") & (SUBRESOURCE == "token") & CREATE
CSR = resource_is("certificatesigningrequests", group="certificates.k8s.io")
CSR_WRITE = CSR & exprs.IS_WRITE_VERB
WEBHOOK_WRITE = (
    (pl.col(s.API_GROUP) == "admissionregistration.k8s.io")
    | ((pl.col(s.API_GROUP) == "apiregistration.k8s.io") & (RESOURCE == "apiservices"))
) & exprs.IS_WRITE_VERB
CRD_WRITE = (
    resource_is("customresourcedefinitions", group="apiextensions.k8s.io") & exprs.IS_WRITE_VERB
)
CONFIGMAPS = resource_is("configmaps")
AUDIT_CONFIG_WRITE = (
    (RESOURCE == "auditsinks")
    | (CONFIGMAPS & (pl.col(s.NAMESPACE) == "kube-system") & pl.col(s.NAME).str.contains("audit"))
) & exprs.IS_WRITE_VERB
SERVICES = resource_is("services")
INGRESS_CREATE = (
    RESOURCE.is_in(("ingresses",))
    & pl.col(s.API_GROUP).is_in(("networking.k8s.io", "extensions"))
    & CREATE
    & NO_SUBRESOURCE
)
NODE_CREATE = resource_is("nodes") & CREATE & NO_SUBRESOURCE
EVENTS_DELETE = (
    (RESOURCE == "events") & pl.col(s.API_GROUP).fill_null("").is_in(("", "events.k8s.io")) & DELETE
)
SERVICE_ACCOUNT_WRITE = resource_is("serviceaccounts") & (CREATE | DELETE) & NO_SUBRESOURCE
SELF_REVIEW = (
    (pl.col(s.API_GROUP) == "authorization.k8s.io")
    & RESOURCE.is_in(("selfsubjectaccessreviews", "selfsubjectrulesreviews"))
    & CREATE
)
PERSISTENT_WORKLOAD = (
    (
        ((pl.col(s.API_GROUP) == "batch") & RESOURCE.is_in(("cronjobs", "jobs")))
        | ((pl.col(s.API_GROUP) == "apps") & (RESOURCE == "daemonsets"))
    )
    & exprs.IS_WRITE_VERB
    & NO_SUBRESOURCE
)
APP_WORKLOAD = (
    (pl.col(s.API_GROUP) == "apps")
    & RESOURCE.is_in(("deployments", "statefulsets", "replicasets"))
    & exprs.IS_WRITE_VERB
    & NO_SUBRESOURCE
)
CLUSTER_SCOPED_CREATE_DELETE = (
    VERB.is_in(("create", *exprs.DELETE_VERBS))
    & RESOURCE.is_not_null()
    # The apiserver puts a Namespace's own name in objectRef.namespace for get/update/delete.
    & (pl.col(s.NAMESPACE).is_null() | (CORE & (RESOURCE == "namespaces")))
    & NO_SUBRESOURCE
    & ~RESOURCE.is_in(VIRTUAL)
    # A kubelet registering and removing its own Node is node-registration's to judge.
    & ~resource_is("nodes")
)
#: Writes in a namespace that configure something (leases and Events are heartbeats).
NAMESPACED_WRITE = exprs.IS_WRITE_VERB & ~RESOURCE.is_in(("leases", "events")).fill_null(
    value=False
)
#: The apiserver logs a failed authentication once, at ResponseStarted, with code 401 and no
#: user: that record is complete as it is.
FAILED_AUTHENTICATION = (pl.col(s.CODE) == 401).fill_null(value=False)
ANONYMOUS = (pl.col(ACTOR_COL) == "anonymous").fill_null(value=False)
HUMAN = (pl.col(ACTOR_COL) == "human").fill_null(value=False)
#: The cluster's own machinery: control-plane users, nodes, kube-system service accounts and
#: the users the settings trust (computed by ``prepare``).
MACHINERY = pl.col(MACHINERY_COL)
#: Service accounts and nodes: the identities of workloads and kubelets.
IN_CLUSTER = pl.col(ACTOR_COL).is_in(("service_account", "node")).fill_null(value=False)
IMPERSONATED = pl.col(s.IMPERSONATED_USER).is_not_null() | (
    pl.col(s.IMPERSONATED_GROUPS).list.len().fill_null(0) > 0
)
#: A refused impersonation: the apiserver denies it before the impersonated user exists.
IMPERSONATION_REFUSED = (
    (pl.col(s.CODE) == 403) & pl.col(s.MESSAGE).str.contains("cannot impersonate", literal=True)
).fill_null(value=False)


def in_namespaces(patterns: Callable[[Settings], tuple[str, ...]]) -> Callable[[Settings], pl.Expr]:
    """A predicate: the request's namespace matches the settings' glob patterns."""
    return lambda st: matches_any(pl.col(s.NAMESPACE), patterns(st))


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
#: The Pod Security violation text: the admission annotation, or the refusal's message.
PSA_FOUND = pl.coalesce(_PSA_VALUE, pl.when(_PSA_REFUSED).then(pl.col(s.MESSAGE)))

#: Private, loopback, link-local, shared (CGNAT) and unique-local addresses: never "public".
PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
)
_PRIVATE_V6 = r"^(?:::1|::|f[cd][0-9a-f]{2}:.*|fe[89ab][0-9a-f]:.*|::ffff:(?:10|127|192\.168)\..*)$"


def public_address(ip: pl.Expr, settings: Settings) -> pl.Expr:
    """Whether an address is public: not private or loopback, and not in ``trusted_cidrs``."""
    private = (
        in_ranges(ip, PRIVATE_RANGES)
        | in_ranges(ip, settings.trusted_cidrs)
        | ip.str.to_lowercase().str.contains(_PRIVATE_V6).fill_null(value=False)
    )
    return ip.is_not_null() & ~private


# --------------------------------------------------------------------------- query shapes


def keep(events: pl.LazyFrame, detail: pl.Expr) -> pl.LazyFrame:
    """The evidence columns and a ``detail`` text."""
    return events.select(*EVIDENCE_INPUT, detail.cast(pl.String).alias(DETAIL))


def requests(
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


@dataclass(frozen=True)
class Where:
    """An evidence query that is one filter: every matching request is a finding.

    ``refine`` is a further condition evaluated only on the rows ``predicate`` kept (put
    regular expressions over bodies there); ``detail`` is computed on the kept rows too.
    """

    predicate: Tuned
    detail: Tuned | None = None
    refine: Tuned | None = None

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        refine = None if self.refine is None else tuned(self.refine, st)
        text = pl.lit(None, dtype=pl.String) if self.detail is None else tuned(self.detail, st)
        return keep(requests(events, tuned(self.predicate, st), refine), text)

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx  # a filter's findings are complete in each slice
        return partials


def where(predicate: Tuned, detail: Tuned | None = None, *, refine: Tuned | None = None) -> Where:
    """``Where(predicate, detail, refine)``: every matching request is a finding."""
    return Where(predicate, detail, refine)


@dataclass(frozen=True)
class Flagged:
    """A filter whose findings are the rows where a detail text is not empty.

    ``names`` computes, on the rows ``predicate`` kept, a text naming what was found ("" or
    null for nothing); the rows with a name are the findings and the name is their detail.
    """

    predicate: Tuned
    names: Tuned

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        return (
            requests(events, tuned(self.predicate, st))
            .with_columns(tuned(self.names, st).alias("_names"))
            .filter(pl.col("_names").fill_null("") != "")
            .pipe(keep, pl.col("_names"))
        )

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        del ctx
        return partials


def first_of_groups(rows: pl.LazyFrame, keys: Sequence[str], extra: list[pl.Expr]) -> pl.LazyFrame:
    """One row per group: the group's earliest event plus the ``extra`` aggregates."""
    carried = [name for name in EVIDENCE_INPUT if name not in keys]
    # The earliest request of the group; among equal times, the first in reading order (the
    # frame is in the lake's order). Picking by arg_min spares sorting every matching row.
    first = pl.col(s.REQUEST_TS).arg_min().fill_null(0)
    return rows.group_by(list(keys)).agg(*[pl.col(name).get(first) for name in carried], *extra)


@dataclass(frozen=True)
class Grouped:
    """Findings that are groups of requests: one per group that passes ``having``.

    Per slice, the requests matching ``predicate`` (then ``refine``, computed on those rows
    only) get the ``derive`` columns and are grouped by ``keys``, keeping the first event, the
    request count (``_n``), the ``sums`` and the distinct values of each ``distinct`` column;
    over all slices the groups are merged by ``keys``: first event, summed counts, and
    ``_d_<name>`` for the number of distinct values (``_some_<name>`` a few of them).
    ``having`` and ``detail`` are then evaluated over the merged groups. With ``needs``, a
    slice keeps only the groups where some request meets it (exact whenever the groups do not
    straddle two slices, as buckets of a duration that divides a day never do).
    """

    predicate: Tuned
    keys: tuple[str, ...]
    having: Tuned
    detail: Tuned
    derive: Callable[[Settings], list[pl.Expr]] = lambda st: []
    sums: tuple[tuple[str, pl.Expr], ...] = ()
    distinct: tuple[str, ...] = ()
    refine: Tuned | None = None
    needs: Tuned | None = None

    def partial(self, events: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        refine = None if self.refine is None else tuned(self.refine, st)
        rows = requests(events, tuned(self.predicate, st), refine).with_columns(
            *self.derive(st), *[expr.alias(name) for name, expr in self.sums]
        )
        if self.needs is not None:
            rows = rows.filter(tuned(self.needs, st).fill_null(value=False).any().over(self.keys))
        return first_of_groups(
            rows,
            self.keys,
            [
                pl.len().cast(pl.Int64).alias("_n"),
                *[pl.col(n).sum() for n, _ in self.sums],
                *[pl.col(d).drop_nulls().unique().alias(f"_dl_{d}") for d in self.distinct],
            ],
        )

    def final(self, partials: pl.LazyFrame, ctx: Context, /) -> pl.LazyFrame:
        st = ctx.settings
        values = {d: pl.col(f"_dl_{d}").explode().drop_nulls() for d in self.distinct}
        merged = first_of_groups(
            partials,
            self.keys,
            [
                pl.col("_n").sum(),
                *[pl.col(n).sum() for n, _ in self.sums],
                *[v.n_unique().alias(f"_d_{d}") for d, v in values.items()],
                *[v.unique().sort().head(5).alias(f"_some_{d}") for d, v in values.items()],
            ],
        )
        return merged.filter(tuned(self.having, st)).pipe(keep, tuned(self.detail, st))


def bucket(
    every: Callable[[Settings], object], name: str = "_bucket"
) -> Callable[[Settings], list[pl.Expr]]:
    """A ``derive`` step: the request time truncated to a settings duration."""

    def derive(st: Settings) -> list[pl.Expr]:
        seconds = int(every(st).total_seconds())  # type: ignore[attr-defined]
        return [pl.col(s.REQUEST_TS).dt.truncate(f"{seconds}s").alias(name)]

    return derive


def minutes(delta: object) -> int:
    """Whole minutes of a duration (for details)."""
    return int(delta.total_seconds() // 60)  # type: ignore[attr-defined]


def some(name: str) -> pl.Expr:
    """A few of a ``Grouped`` query's distinct values, as "a, b, c" text."""
    return pl.col(f"_some_{name}").list.join(", ")


# --------------------------------------------------------------------------- prepare

#: Columns ``prepare`` makes categorical (controls compare them with literals).
CATEGORICAL = (s.VERB, s.API_GROUP, s.RESOURCE, s.SUBRESOURCE, s.NAMESPACE)
#: The rows whose request body some control reads; every other row's body is dropped.
_BODY_NEEDED = (
    POD_SPEC_WRITE
    | RBAC_CHANGE
    | (SECRETS & CREATE)
    | (CONFIGMAPS & CHANGE)
    | (SERVICES & CHANGE)
    | INGRESS_CREATE
    | (CSR & CREATE)
    | POD_EXEC
).fill_null(value=False)
#: The rows Pod Security admission can annotate (pods and the workloads that template them,
#: and refusals): their annotations are kept.
_PSA_POSSIBLE = (
    (RESOURCE.is_in(("pods", *WORKLOADS)) & CHANGE & NO_SUBRESOURCE) | (pl.col(s.CODE) == 403)
).fill_null(value=False)
#: The rows whose response body some control reads (the merged role after a patch).
_RESPONSE_NEEDED = ROLE_CHANGE.fill_null(value=False)
# One key per request: hashing (cluster, audit_id) to u64 makes the per-request maximum
# several times faster than a window over the two string columns.
_REQUEST_KEY = pl.struct(s.CLUSTER, s.AUDIT_ID).hash()
_SA_KUBE_SYSTEM = pl.col(s.USER).str.starts_with("system:serviceaccount:kube-system:")


def exec_text() -> pl.Expr:
    """The exec command as one line: from the URI's ``command=`` parameters, else from the
    body's ``command`` (GKE and AKS exports put it there); null when there is none."""
    argv = exprs.exec_command()
    from_uri = pl.when(argv.list.len() > 0).then(argv.list.join(" "))
    from_body = (
        pl.col(s.REQUEST_OBJECT)
        .str.json_path_match("$.command")
        .str.replace_all(r'^\[|\]$|"', "")
        .str.replace_all(",", " ")
    )
    return pl.coalesce(from_uri, from_body)


def machinery(settings: Settings) -> pl.Expr:
    """Control-plane users, nodes, kube-system service accounts and ``trusted_users`` (over
    a prepared frame: it reads ``ACTOR_COL``)."""
    return (
        pl.col(ACTOR_COL).is_in(("control_plane", "node")).fill_null(value=False)
        | _SA_KUBE_SYSTEM.fill_null(value=False)
        | matches_any(pl.col(s.USER), settings.trusted_users)
    )


def prepare(
    events: pl.LazyFrame,
    window: Window | None,
    settings: Settings | None = None,
    extra: Sequence[str] = (),
) -> pl.LazyFrame:
    """The events as the controls read them, with the shared columns derived once.

    Keeps ``READ_COLUMNS``; keeps a request body only where a control matches on it (pod
    specs, RBAC writes, Secret creates, ConfigMap, Service and Ingress writes, exec), a
    response body only for role writes, and annotations only where Pod Security admission
    writes them; adds the actor kind (``ACTOR_COL``), whether the identity is the cluster's
    machinery (``MACHINERY_COL``), the client address (``IP_COL``) and whether the row is its
    request's furthest logged stage (``LAST_COL``). What only a few rows need (decoding an
    exec command, whether an address is public) is left to the controls, after their filter.
    """
    st = settings or Settings()
    rows = events if window is None else events.filter(window.contains())
    # Columns other controls (Sigma rules) read; a body they read is kept on every row.
    more = [name for name in dict.fromkeys(extra) if name in s.AUDIT_SCHEMA]
    keep_all = {name for name in more if name in (s.REQUEST_OBJECT, s.RESPONSE_OBJECT)}
    more = [
        name
        for name in more
        if name not in READ_COLUMNS and name not in keep_all and name != s.ANNOTATIONS
    ]
    stage = pl.col(s.STAGE).to_physical()
    return rows.select(
        *[
            # Every control compares these with literals; as categoricals that is an integer
            # comparison instead of a string one (ten times faster over millions of rows).
            pl.col(name).cast(pl.Categorical) if name in CATEGORICAL else pl.col(name)
            for name in READ_COLUMNS
        ],
        *[pl.col(name) for name in more],
        pl.col(s.REQUEST_OBJECT)
        if s.REQUEST_OBJECT in keep_all
        else pl.when(_BODY_NEEDED).then(pl.col(s.REQUEST_OBJECT)).alias(s.REQUEST_OBJECT),
        pl.col(s.RESPONSE_OBJECT)
        if s.RESPONSE_OBJECT in keep_all
        else pl.when(_RESPONSE_NEEDED).then(pl.col(s.RESPONSE_OBJECT)).alias(s.RESPONSE_OBJECT),
        pl.col(s.ANNOTATIONS)
        if s.ANNOTATIONS in extra
        else pl.when(_PSA_POSSIBLE).then(pl.col(s.ANNOTATIONS)).alias(s.ANNOTATIONS),
        exprs.actor_kind().alias(ACTOR_COL),
        pl.col(s.SOURCE_IPS).list.first().alias(IP_COL),
        (pl.col(s.AUDIT_ID).is_null() | (stage == stage.max().over(_REQUEST_KEY))).alias(LAST_COL),
    ).with_columns(machinery(st).alias(MACHINERY_COL))


#: What a window remembers for the first-seen controls of the next: who came from where with
#: which agent and what decision, once per combination.
BASELINE_COLUMNS: tuple[str, ...] = (s.CLUSTER, s.USER, s.USER_AGENT, IP_COL, s.AUTHZ_DECISION)


def baseline_rows(prepared: pl.LazyFrame) -> pl.LazyFrame:
    """The distinct (cluster, user, agent, address, decision) combinations of a prepared slice.

    Additive: the union of the slices' rows, made unique, is the window's.
    """
    return (
        prepared.filter(pl.col(LAST_COL))
        .select(
            *[pl.col(name).cast(pl.String) for name in BASELINE_COLUMNS],
            pl.col(ACTOR_COL),
        )
        .unique()
    )


def glob(patterns: tuple[str, ...]) -> str:
    """``settings.glob_regex``, re-exported for the catalogue."""
    return glob_regex(patterns)
