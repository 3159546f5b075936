"""The controls catalogue, as data: what each control detects, leaves out and needs.

A ``Control`` names what it detects and what it deliberately leaves out (``excludes``, shown
in every report), how severe a finding is, the framework clauses and MITRE ATT&CK techniques
it supports, the detections of other projects it covers (``covers``: rule ids of
``anchors.yaml``), what the audit log must contain for it to be assessable (level, stages, the
requests in scope, probe requests for policy coverage) and one evidence query (``evidence``,
``windowed``). ``CONTROLS`` is the catalogue; adding a control is one entry here and one pair
of fixture files (``tests/fixtures/controls/<id>/hit.jsonl`` and ``miss.jsonl``).

Precision is part of each entry: the cluster's own machinery (control plane, nodes,
kube-system service accounts and the settings' ``trusted_users``) is left out of every
control whose findings would otherwise be its normal work, and no control that can fire on
the machinery's normal work is high or critical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from kaudit_analytics import exprs
from kaudit_analytics import schema as s
from kaudit_analytics.compliance import bodies
from kaudit_analytics.compliance import evidence as ev
from kaudit_analytics.compliance import windowed as wd
from kaudit_analytics.compliance.attack import tactics_of
from kaudit_analytics.compliance.evidence import (
    ANONYMOUS,
    FAILED,
    HUMAN,
    IN_CLUSTER,
    MACHINERY,
    SUCCEEDED,
    EvidenceQuery,
    Flagged,
    Grouped,
    Tuned,
    bucket,
    minutes,
    some,
    where,
)
from kaudit_analytics.compliance.settings import Settings, in_ranges, matches_any

__all__ = [
    "CIS",
    "CONTROLS",
    "FRAMEWORKS",
    "HIPAA",
    "ISO",
    "PCI",
    "SEVERITIES",
    "SOC2",
    "STATUSES",
    "Clause",
    "Control",
    "Probe",
    "Severity",
    "Status",
    "control",
    "severity_at_least",
]

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
Status = Literal["pass", "fail", "not assessable"]
STATUSES: tuple[Status, ...] = ("fail", "not assessable", "pass")

CIS = "CIS Kubernetes Benchmark"
PCI = "PCI-DSS v4"
SOC2 = "SOC 2"
HIPAA = "HIPAA"
ISO = "ISO/IEC 27001:2022"
FRAMEWORKS: tuple[str, ...] = (CIS, PCI, SOC2, HIPAA, ISO)


@dataclass(frozen=True, order=True)
class Clause:
    """One requirement of one framework, e.g. ``Clause("PCI-DSS v4", "10.2.1.2")``."""

    framework: str
    ref: str

    def __str__(self) -> str:
        return f"{self.framework} {self.ref}"


def _clauses(
    *, cis: Iterable[str] = (), pci: Iterable[str] = (), soc2: Iterable[str] = ()
) -> tuple[Clause, ...]:
    # Every control here is audit logging, which HIPAA 164.312(b) and ISO A.8.15 require.
    return (
        *(Clause(CIS, ref) for ref in cis),
        *(Clause(PCI, ref) for ref in pci),
        *(Clause(SOC2, ref) for ref in soc2),
        Clause(HIPAA, "164.312(b)"),
        Clause(ISO, "A.8.15"),
    )


@dataclass(frozen=True)
class Probe:
    """A request a control needs to see logged; evaluated under a policy for coverage.

    The fields are those of ``kaudit_analytics.policy.RequestAttributes``.
    """

    verb: str
    resource: str = ""
    subresource: str = ""
    api_group: str = ""
    namespace: str = ""
    name: str = ""
    user: str = "alice@example.com"
    groups: tuple[str, ...] = ("system:authenticated",)
    path: str = ""
    resource_request: bool = True

    def describe(self) -> str:
        """``create pods/exec in default by alice@example.com``."""
        what = self.path if not self.resource_request else self.resource
        if self.subresource:
            what += f"/{self.subresource}"
        if self.api_group:
            what += f".{self.api_group}"
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {what}{where} by {self.user}"


@dataclass(frozen=True, eq=False)
class Control:
    """One compliance control: metadata, what it needs, and its evidence query.

    ``level`` is the lowest audit level at which ``scope`` (the requests the control reads)
    must be logged; ``stages`` the stages that must not be omitted. ``probes`` are the same
    requirement in the policy's terms. ``requires`` names settings that must be set (an
    allow-list) for the control to be assessable at all.
    """

    id: str
    title: str
    detects: str
    severity: Severity
    clauses: tuple[Clause, ...]
    evidence: EvidenceQuery
    probes: tuple[Probe, ...]
    #: MITRE ATT&CK technique ids (``attack.TECHNIQUES``).
    attack: tuple[str, ...]
    #: What the control deliberately leaves out, and why.
    excludes: str = "nothing"
    #: Rules of other projects' detections this control covers (``anchors.yaml`` ids), with
    #: a note on how when it is not the whole control ("the 'binds privileged role' detail").
    covers: Mapping[str, str] = field(default_factory=dict)
    scope: Tuned | None = None
    scope_label: str = "events"
    level: str = "Metadata"
    stages: tuple[str, ...] = ("ResponseComplete",)
    needs_baseline: bool = False
    requires: tuple[str, ...] = ()
    #: Event columns the evidence query reads besides those ``prepare`` keeps (Sigma rules).
    reads: tuple[str, ...] = ()

    @property
    def tactics(self) -> tuple[str, ...]:
        """The ATT&CK tactics of the control's techniques, in kill-chain order."""
        return tactics_of(self.attack)

    def scope_expr(self, settings: Settings) -> pl.Expr | None:
        """The scope under these settings (None: every event)."""
        return None if self.scope is None else ev.tuned(self.scope, settings)


def _covers(*ids: str, notes: Mapping[str, str] | None = None) -> dict[str, str]:
    """Anchor rule ids this control covers; ``notes`` adds rules covered by a named part."""
    return {**dict.fromkeys(ids, ""), **(notes or {})}


_SA = "system:serviceaccount:default:app"
_SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
_NODE = "system:node:node-1"
_NODE_GROUPS = ("system:nodes", "system:authenticated")
_ANON = ("system:anonymous", ("system:unauthenticated",))


#: Denied requests come from every verb: a policy must log reads and writes to see them.
_DENIED_PROBES = (
    Probe("get", "secrets", namespace="kube-system", name="admin"),
    Probe("create", "pods", namespace="kube-system"),
    Probe(
        "get",
        "",
        path="/api",
        resource_request=False,
        user="system:anonymous",
        groups=("system:unauthenticated",),
    ),
)
_RBAC_PROBES = (
    Probe("create", "clusterrolebindings", api_group=ev.RBAC_GROUP),
    Probe("create", "rolebindings", api_group=ev.RBAC_GROUP, namespace="default"),
    Probe("patch", "roles", api_group=ev.RBAC_GROUP, namespace="default", name="r"),
    Probe("update", "clusterroles", api_group=ev.RBAC_GROUP, name="edit"),
)
_POD_PROBES = (
    Probe("create", "pods", namespace="default"),
    Probe("create", "deployments", api_group="apps", namespace="default"),
    Probe("patch", "daemonsets", api_group="apps", namespace="default", name="d"),
)
_POD_SPEC_NOTE = (
    "the platform's own pods: controllers, nodes and the control plane writing pod specs in "
    "settings.system_namespaces (kube-proxy and CNI agents need host access); a controller "
    "creating a pod elsewhere is reported, as the workload it copies is the risk"
)
_MACHINERY_NOTE = (
    "the cluster's own machinery (control plane, nodes, kube-system service accounts and "
    "the settings' trusted_users): doing this is their job"
)


def _not_machinery(predicate: pl.Expr) -> pl.Expr:
    return predicate & ~MACHINERY


_POD_SPEC = ev.POD_SPEC_WRITE & SUCCEEDED


def _by_pod_spec_author(names: Tuned) -> Tuned:
    """``names``, for pod specs written by people and workloads, and by controllers outside
    the platform's namespaces: a controller that creates a privileged pod in ``default``
    copies a workload someone wrote (maybe before the window), while kube-proxy's and the
    CNI's privileged pods in kube-system are the platform. Evaluated after the cheap filter."""

    def author(st: Settings) -> pl.Expr:
        return pl.when(~MACHINERY | ~_system_namespace(st)).then(ev.tuned(names, st))

    return author


def _system_namespace(st: Settings) -> pl.Expr:
    return matches_any(pl.col(s.NAMESPACE).cast(pl.String), st.system_namespaces)


def _body() -> pl.Expr:
    return pl.col(s.REQUEST_OBJECT)


def _controller_sa(st: Settings) -> pl.Expr:
    del st
    sa = _body().str.extract(r'"serviceAccountName"\s*:\s*"([^"]*controller[^"]*)"', 1)
    return pl.when(sa.is_not_null()).then(pl.format("pod runs as controller account {}", sa))


def _secret_reads_by(who: str) -> pl.Expr:
    return pl.format("{} {} Secret read(s)", pl.col("_n"), pl.lit(who))


_WRITE_WORD = (
    pl.when(ev.CREATE)
    .then(pl.lit("created"))
    .when(ev.DELETE)
    .then(pl.lit("deleted"))
    .otherwise(pl.lit("changed"))
)
_OBJECT = pl.format(
    "{} {}/{} {}",
    pl.col(s.RESOURCE).cast(pl.String),
    pl.col(s.NAMESPACE).cast(pl.String).fill_null("-"),
    pl.col(s.NAME).fill_null("-"),
    _WRITE_WORD,
)


def _exec_classes() -> pl.Expr:
    return bodies.flag_names(bodies.EXEC_CLASSES[:6], ev.exec_text().str.to_lowercase())


def _exec_detail() -> pl.Expr:
    command = ev.exec_text()
    kinds = bodies.flag_names(bodies.EXEC_CLASSES, command.str.to_lowercase())
    return pl.when(command.is_not_null()).then(
        pl.concat_str(
            [
                pl.lit("command: "),
                command.str.slice(0, 200),
                pl.when(kinds != "").then(pl.format(" ({})", kinds)),
            ],
            ignore_nulls=True,
        )
    )


def _rbac_body() -> pl.Expr:
    return pl.concat_str(
        [bodies.as_fragment(_body().fill_null("")), pl.col(s.RESPONSE_OBJECT).fill_null("")],
        separator="\n",
    )


def _impersonation_target(st: Settings) -> pl.Expr:
    user = matches_any(pl.col(s.IMPERSONATED_USER), st.privileged_identities)
    group = pl.any_horizontal(
        [
            pl.col(s.IMPERSONATED_GROUPS).list.contains(g).fill_null(value=False)
            for g in st.privileged_groups
        ]
        or [pl.lit(value=False)]
    )
    return user | group


def _disallowed_user(st: Settings) -> pl.Expr:
    if not (st.allowed_users or st.allowed_groups):
        return pl.lit(value=False)  # no allow-list: the control is not assessable
    user_ok = matches_any(pl.col(s.USER), st.allowed_users)
    group_ok = pl.any_horizontal(
        [pl.col(s.GROUPS).list.contains(g).fill_null(value=False) for g in st.allowed_groups]
        or [pl.lit(value=False)]
    )
    system = pl.col(s.USER).str.starts_with("system:").fill_null(value=True)
    return ~system & ~user_ok & ~group_ok & pl.col(s.USER).is_not_null()


def _node_outside_list(st: Settings) -> pl.Expr:
    name = pl.coalesce(pl.col(s.NAME), _body().str.json_path_match("$.metadata.name"))
    outside = ~matches_any(name, st.allowed_nodes) if st.allowed_nodes else pl.lit(value=False)
    own = pl.col(s.USER) == pl.concat_str(pl.lit("system:node:"), name)
    by_other = ~own.fill_null(value=False) & ~pl.col(ev.ACTOR_COL).is_in(("control_plane",))
    return pl.concat_str(
        [
            pl.when(outside).then(pl.format("node {} is not in allowed_nodes", name)),
            pl.when(by_other & (pl.col(ev.ACTOR_COL) != "node")).then(
                pl.lit("registered by an identity that is neither the node nor the control plane")
            ),
            pl.when(by_other & (pl.col(ev.ACTOR_COL) == "node")).then(
                pl.lit("registered by another node's credentials")
            ),
        ],
        separator="; ",
        ignore_nulls=True,
    )


def _failed_twin(
    base: Control,
    *,
    title: str,
    detects: str,
    evidence: EvidenceQuery,
    excludes: str,
    covers: Mapping[str, str] | None = None,
) -> Control:
    """The refused or failed attempts at a control's behaviour: findings of their own kind."""
    return dataclasses.replace(
        base,
        id=f"{base.id}-failed",
        title=title,
        detects=detects,
        severity="medium",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC6.1", "CC7.2")),
        evidence=evidence,
        excludes=excludes,
        covers=covers or {},
        requires=(),
    )


def _off_hours(st: Settings) -> pl.Expr:
    local = pl.col(s.REQUEST_TS).dt.convert_time_zone(st.timezone)
    start, end = st.working_hours
    return ~local.dt.weekday().is_in(sorted(st.working_days)) | ~local.dt.hour().is_between(
        start, end, closed="left"
    )


_MISSING = (
    # A failed authentication has no user to record; its source IP identifies it.
    ("user", (pl.col(s.USER).fill_null("") == "") & ~ev.FAILED_AUTHENTICATION),
    ("verb", pl.col(s.VERB).cast(pl.String).fill_null("") == ""),
    ("timestamp", pl.col(s.REQUEST_TS).is_null()),
    ("source IP", pl.col(s.SOURCE_IPS).list.len().fill_null(0) == 0),
    ("request URI", pl.col(s.REQUEST_URI).fill_null("") == ""),
    (
        "response code",
        (pl.col(s.STAGE).to_physical() == s.STAGES.index("ResponseComplete"))
        & pl.col(s.CODE).is_null(),
    ),
)
_MISSING_ANY = pl.any_horizontal([hit for _, hit in _MISSING])
_MISSING_DETAIL = pl.concat_str(
    pl.lit("missing: "),
    pl.concat_str(
        [pl.when(hit).then(pl.lit(name)) for name, hit in _MISSING],
        separator=", ",
        ignore_nulls=True,
    ),
)


_POD_EXEC = Control(
    id="pod-exec",
    title="Interactive access to containers",
    detects="pods/exec, pods/attach and pods/portforward that went through, by create or by "
    "WebSocket get; the detail shows the decoded command and what it looks like.",
    severity="high",
    clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC6.1", "CC6.8", "CC7.2")),
    evidence=where(ev.POD_EXEC & SUCCEEDED, _exec_detail()),
    attack=("T1609",),
    excludes="failed attempts (pod-exec-failed reports them)",
    covers=_covers(
        "falco/attach-exec-pod",
        "falco/port-forward",
        "elastic/kubernetes-user-exec-into-pod",
        "sigma/potential-remote-command-execution-in-pod-container",
        "panther/kubernetes-exec-into-pod",
        "panther/exec-into-pod-gcp-k8s-execintopod",
    ),
    scope=ev.POD_EXEC,
    scope_label="exec/attach/portforward requests",
    probes=(
        Probe("create", "pods", "exec", namespace="default", name="web"),
        Probe("get", "pods", "exec", namespace="default", name="web"),
        Probe("create", "pods", "attach", namespace="default", name="web"),
        Probe("create", "pods", "portforward", namespace="default", name="web"),
    ),
)

_IMPERSONATION = Control(
    id="impersonation",
    title="Impersonation",
    detects="Requests made as another user or group (Impersonate-User/-Group headers) that "
    "went through.",
    severity="high",
    clauses=_clauses(pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.1", "CC6.3")),
    evidence=where(
        _not_machinery(ev.IMPERSONATED) & SUCCEEDED,
        pl.format("as {}", pl.col(s.IMPERSONATED_USER).fill_null("(groups only)")),
    ),
    attack=("T1134", "T1078"),
    excludes=_MACHINERY_NOTE + " (the API server's aggregation proxies impersonate)",
    covers=_covers(
        notes={
            "elastic/kubernetes-secret-or-configmap-access-via-azure-arc-proxy": (
                "the Azure Arc proxy impersonates its callers: each of its requests is a finding"
            )
        },
    ),
    probes=(Probe("get", "pods", namespace="default", name="web"),),
)

_SECRET_READ_HUMAN = Control(
    id="secret-read-by-human",
    title="Secret reads by humans",
    detects="get, list or watch of Secrets by a person (not a service account or node).",
    severity="medium",
    clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC6.1", "CC7.2")),
    evidence=where(ev.SECRET_READ & HUMAN & SUCCEEDED),
    attack=("T1552.007",),
    excludes="service accounts and nodes (secret-read-by-workload), refused reads "
    "(secret-read-failed)",
    covers=_covers(
        "falco/k8s-secret-get-successfully",
        "sigma/kubernetes-secrets-enumeration",
    ),
    scope=ev.SECRET_READ,
    scope_label="Secret reads",
    probes=(Probe("get", "secrets", namespace="default", name="db"),),
)

_RBAC_ESCALATION = Control(
    id="rbac-escalation",
    title="Privilege escalation through RBAC",
    detects="Roles with wildcard verbs, resources or API groups or granting escalate, bind or "
    "impersonate (in the body, in a JSON Patch's operations, or in the role as stored when the "
    "response was logged); bindings of a privileged role (settings.privileged_roles) or of "
    "system:masters; bindings of a role flagged in the same window.",
    severity="critical",
    clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.3", "CC8.1")),
    evidence=wd.RbacEscalation(SUCCEEDED),
    attack=("T1098.006", "T1098"),
    excludes=_MACHINERY_NOTE + " (the API server creates cluster-admin and its binding at "
    "every start); a JSON Patch that edits one field of an existing rule is graded for "
    "wildcards and escalate/bind/impersonate only, unless the response object was logged",
    covers=_covers(
        "falco/attach-to-cluster-admin-role",
        "falco/clusterrole-with-wildcard-created",
        "elastic/kubernetes-cluster-admin-role-binding-created",
        "elastic/kubernetes-rbac-wildcard-elevation-on-existing-role",
        "panther/kubernetes-clusterrolebinding-to-privileged-role",
        "panther/kubernetes-role-with-wildcard-permissions-created",
        notes={
            "elastic/kubernetes-creation-or-modification-of-sensitive-role": (
                "wildcards and escalate/bind/impersonate here, sensitive resources in "
                "rbac-sensitive-grant"
            )
        },
    ),
    scope=ev.RBAC_CHANGE,
    scope_label="RBAC create/update/patch requests",
    level="Request",
    probes=_RBAC_PROBES,
)

_SECRET_READ_WORKLOAD = Control(
    id="secret-read-by-workload",
    title="Secret reads by service accounts and nodes",
    detects="get, list or watch of Secrets by service accounts and nodes, one finding per "
    "identity and namespace with the number of reads.",
    severity="low",
    clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC6.1",)),
    evidence=Grouped(
        ev.SECRET_READ & IN_CLUSTER & SUCCEEDED,
        keys=(s.CLUSTER, s.USER, "_ns"),
        having=pl.lit(value=True),
        detail=pl.format(
            "{} Secret read(s) in {} (e.g. {})", pl.col("_n"), pl.col("_ns"), some(s.NAME)
        ),
        derive=lambda st: [pl.col(s.NAMESPACE).cast(pl.String).fill_null("(all)").alias("_ns")],
        distinct=(s.NAME,),
    ),
    attack=("T1552.007",),
    excludes="the control plane's own users (the API server and controller manager cache "
    "every Secret); it is low because kubelets read the Secrets of the pods they run",
    covers=_covers(
        "elastic/kubernetes-secret-get-or-list-from-node-or-pod-service-account",
    ),
    scope=ev.SECRET_READ,
    scope_label="Secret reads",
    probes=(Probe("get", "secrets", namespace="default", name="db", user=_SA, groups=_SA_GROUPS),),
)

_CATALOGUE: tuple[Control, ...] = (
    _SECRET_READ_HUMAN,
    _SECRET_READ_WORKLOAD,
    Control(
        id="secret-list-all-namespaces",
        title="Secrets listed across all namespaces or in sensitive ones",
        detects="list or watch of Secrets cluster-wide, or in settings.sensitive_namespaces "
        "(kube-system, default), by anyone but the machinery.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC6.1", "CC7.2")),
        evidence=where(
            lambda st: (
                ev.SECRET_READ
                & ev.VERB.is_in(("list", "watch"))
                & (
                    pl.col(s.NAMESPACE).is_null()
                    | matches_any(pl.col(s.NAMESPACE).cast(pl.String), st.sensitive_namespaces)
                )
                & ~MACHINERY
                & SUCCEEDED
            ),
            pl.when(pl.col(s.NAMESPACE).is_null())
            .then(pl.lit("all namespaces"))
            .otherwise(pl.format("namespace {}", pl.col(s.NAMESPACE))),
        ),
        attack=("T1552.007", "T1613"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "panther/kubernetes-all-secrets-dumped-across-namespaces",
            "elastic/kubernetes-secrets-list-across-cluster-or-sensitive-namespaces",
        ),
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(Probe("list", "secrets"), Probe("list", "secrets", user=_SA, groups=_SA_GROUPS)),
    ),
    Control(
        id="secret-read-burst",
        title="Bursts of Secret reads by one identity",
        detects="One identity reading Secrets many times within a few minutes "
        "(settings.secret_burst within settings.burst_window).",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC7.2", "CC7.3")),
        evidence=Grouped(
            ev.SECRET_READ & ~MACHINERY,
            keys=(s.CLUSTER, s.USER, "_bucket"),
            having=lambda st: pl.col("_n") >= st.secret_burst,
            detail=lambda st: pl.format(
                "{} Secret reads in {} namespace(s) within {} minutes",
                pl.col("_n"),
                pl.col(f"_d_{s.NAMESPACE}"),
                pl.lit(minutes(st.burst_window)),
            ),
            derive=bucket(lambda st: st.burst_window),
            distinct=(s.NAMESPACE,),
        ),
        attack=("T1552.007",),
        excludes=_MACHINERY_NOTE + " (controllers re-read Secrets after every restart)",
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(
            Probe("get", "secrets", namespace="default", name="db"),
            Probe("get", "secrets", namespace="default", name="db", user=_SA, groups=_SA_GROUPS),
        ),
    ),
    Control(
        id="secret-enumeration",
        title="Many distinct Secrets read by one identity",
        detects="One identity reading settings.secret_enumeration or more distinct Secrets "
        "within settings.burst_window (any outcome: failed guesses count).",
        severity="medium",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1", "10.2.1.4"), soc2=("CC7.2",)),
        evidence=Grouped(
            ev.SECRET_READ & (pl.col(s.VERB) == "get") & ~MACHINERY,
            keys=(s.CLUSTER, s.USER, "_bucket"),
            having=lambda st: pl.col(f"_d_{s.NAME}") >= st.secret_enumeration,
            detail=lambda st: pl.format(
                "{} distinct Secrets within {} minutes ({} ...)",
                pl.col(f"_d_{s.NAME}"),
                pl.lit(minutes(st.burst_window)),
                some(s.NAME),
            ),
            derive=bucket(lambda st: st.burst_window),
            distinct=(s.NAME,),
        ),
        attack=("T1552.007", "T1613"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "elastic/kubernetes-rapid-secret-get-activity-against-multiple-objects",
            "panther/kubernetes-secret-enumeration-by-a-user",
        ),
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(Probe("get", "secrets", namespace="default", name="db"),),
    ),
    Control(
        id="secret-write",
        title="Secrets created, changed or deleted",
        detects="create, update, patch and delete of Secrets by anyone but the machinery.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2", "10.2.1.7"), soc2=("CC6.1", "CC8.1")),
        evidence=where(_not_machinery(ev.SECRET_WRITE) & SUCCEEDED, _OBJECT),
        attack=("T1552.007", "T1098"),
        excludes=_MACHINERY_NOTE + " (controllers write token and TLS Secrets)",
        covers=_covers(
            "falco/k8s-secret-created",
            "falco/k8s-secret-deleted",
            "sigma/kubernetes-secrets-modified-or-deleted",
        ),
        scope=ev.SECRET_WRITE,
        scope_label="Secret writes",
        probes=(Probe("create", "secrets", namespace="default"),),
    ),
    _POD_EXEC,
    Control(
        id="suspicious-exec",
        title="Exec commands that read credentials, reach out or copy data",
        detects="Exec commands (decoded from the request URI, or the body of GKE and AKS "
        "exports) that reach the cloud instance metadata service, read token or credential "
        "paths, open a reverse shell, download with curl or wget, copy files with tar "
        "(kubectl cp) or run cluster tools in the pod.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC6.8", "CC7.2")),
        evidence=Flagged(ev.POD_EXEC & (ev.SUBRESOURCE == "exec"), _exec_classes()),
        attack=("T1609", "T1552.005", "T1552.001", "T1059.004", "T1105", "T1005"),
        excludes="plain interactive shells (pod-exec shows them); outcome is not tested, as "
        "in every anchor rule: an attempt to read a token is a finding even when refused",
        covers=_covers(
            "elastic/kubernetes-pod-exec-cloud-instance-metadata-access",
            "elastic/kubernetes-pod-exec-sensitive-file-or-credential-path-access",
            "elastic/kubernetes-pod-exec-with-curl-or-wget-to-https",
            "elastic/kubernetes-pod-exec-potential-reverse-shell",
            "panther/kubernetes-data-copy-via-kubectl-cp",
            "panther/kubernetes-service-account-token-theft-from-pod",
            notes={
                "sigma/kubernetes-potential-enumeration-activity": (
                    "the exec-command branch; the tool user agents are suspicious-user-agent's"
                )
            },
        ),
        scope=ev.POD_EXEC,
        scope_label="exec requests",
        probes=(Probe("create", "pods", "exec", namespace="default", name="web"),),
    ),
    Control(
        id="ephemeral-container",
        title="Ephemeral containers added to running pods",
        detects="Writes to pods/ephemeralcontainers (kubectl debug): code run inside an "
        "existing pod without going through pods/exec.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC6.8", "CC7.2")),
        evidence=where(
            _not_machinery(ev.EPHEMERAL) & SUCCEEDED,
            pl.concat_str(
                [
                    pl.lit("images: "),
                    bodies.images(_body()).list.unique(maintain_order=True).list.join(", "),
                ]
            ),
        ),
        attack=("T1609", "T1610"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "falco/ephemeralcontainers-created",
            "elastic/kubernetes-ephemeral-container-added-to-pod",
        ),
        scope=ev.EPHEMERAL,
        scope_label="ephemeral container writes",
        probes=(Probe("patch", "pods", "ephemeralcontainers", namespace="default", name="web"),),
    ),
    Control(
        id="proxy-access",
        title="API server proxy to nodes, services and pods",
        detects="nodes/proxy, services/proxy and pods/proxy: direct access to kubelets "
        "(including their logs) and to workloads through the API server.",
        severity="medium",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.3"), soc2=("CC6.1", "CC6.6")),
        evidence=where(_not_machinery(ev.PROXY) & SUCCEEDED),
        attack=("T1609", "T1613"),
        excludes=_MACHINERY_NOTE + " (metrics scrapers run in kube-system)",
        covers=_covers("elastic/kubernetes-api-server-proxying-request-to-kubelet"),
        scope=ev.PROXY,
        scope_label="proxy requests",
        probes=(
            Probe("get", "nodes", "proxy", name="node-1"),
            Probe("get", "services", "proxy", namespace="default", name="web"),
        ),
    ),
    Control(
        id="rbac-change",
        title="RBAC changes",
        detects="Writes to Roles, ClusterRoles and their bindings by anyone but the control "
        "plane and nodes, including kube-system service accounts other than "
        "settings.trusted_rbac_writers; the detail names bindings whose subject is a "
        "ServiceAccount.",
        severity="medium",
        clauses=_clauses(
            cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.2", "CC6.3", "CC8.1")
        ),
        evidence=where(
            lambda st: (
                ev.RBAC_WRITE
                & ~pl.col(ev.ACTOR_COL).is_in(("control_plane", "node"))
                & ~matches_any(pl.col(s.USER), (*st.trusted_users, *st.trusted_rbac_writers))
                & SUCCEEDED
            ),
            pl.when(
                pl.col(s.RESOURCE).is_in(ev.BINDINGS)
                & _body().str.contains(r'"kind"\s*:\s*"ServiceAccount"').fill_null(value=False)
            ).then(pl.lit("binds a ServiceAccount")),
        ),
        attack=("T1098.006",),
        excludes="the control plane and nodes, and settings.trusted_rbac_writers (the "
        "clusterrole aggregation controller rewrites aggregated roles)",
        covers=_covers(
            "falco/k8s-role-created",
            "falco/k8s-role-deleted",
            "falco/k8s-clusterrole-created",
            "falco/k8s-clusterrole-deleted",
            "falco/k8s-rolebinding-created",
            "falco/k8s-rolebinding-deleted",
            "falco/k8s-clusterrolebinding-created",
            "falco/k8s-clusterrolebinding-deleted",
            "sigma/kubernetes-rolebinding-modification",
            "elastic/kubernetes-service-account-modified-rbac-objects",
            notes={
                "elastic/kubernetes-creation-of-a-rolebinding-referencing-a-serviceaccount": (
                    "the 'binds a ServiceAccount' detail"
                )
            },
        ),
        scope=ev.RBAC_WRITE,
        scope_label="RBAC writes",
        probes=_RBAC_PROBES[:2],
    ),
    _RBAC_ESCALATION,
    Control(
        id="rbac-sensitive-grant",
        title="Roles granting sensitive resources",
        detects="Roles and ClusterRoles whose rules grant pods/exec or attach, nodes/proxy, "
        "serviceaccounts/token, Secret reads, writes to RBAC, or writes to pods and workloads "
        "(from the body, and from the role as stored when the response was logged).",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.3", "CC8.1")),
        evidence=Flagged(
            _not_machinery(ev.ROLE_CHANGE) & SUCCEEDED,
            bodies.rule_grants(_rbac_body()),
        ),
        attack=("T1098.006",),
        excludes=_MACHINERY_NOTE + " (the default roles admin, edit and system:* grant these "
        "by design)",
        covers=_covers(
            "falco/clusterrole-with-pod-exec-created",
            "panther/kubernetes-role-with-node-proxy-permissions-created",
            "panther/kubernetes-role-with-pod-exec-permissions-created",
            notes={
                "elastic/kubernetes-creation-or-modification-of-sensitive-role": (
                    "sensitive resources here, wildcards and escalate/bind/impersonate in "
                    "rbac-escalation"
                )
            },
        ),
        scope=ev.ROLE_CHANGE,
        scope_label="role create/update/patch requests",
        level="Request",
        probes=_RBAC_PROBES[2:],
    ),
    Control(
        id="rbac-write-grant",
        title="Roles granting write verbs",
        detects="Roles and ClusterRoles created or changed with rules that grant create, "
        "update, patch, delete or deletecollection.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.3",)),
        evidence=Flagged(
            _not_machinery(ev.ROLE_CHANGE) & SUCCEEDED,
            pl.when(
                _rbac_body().str.contains(
                    r'"verbs"\s*:\s*(?:\[[^\]]*)?"(?:create|update|patch|delete|deletecollection)"'
                )
            ).then(pl.lit("grants write verbs")),
        ),
        attack=("T1098.006",),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "falco/clusterrole-with-write-privileges-created",
            "panther/kubernetes-role-with-write-permissions-created",
        ),
        scope=ev.ROLE_CHANGE,
        scope_label="role create/update/patch requests",
        level="Request",
        probes=_RBAC_PROBES[2:],
    ),
    Control(
        id="system-role-change",
        title="Built-in system roles changed",
        detects="create, update, patch or delete of Roles and ClusterRoles (and their "
        "bindings) named system:* or eks:* by anyone but the control plane.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.3", "CC8.1")),
        evidence=where(
            _not_machinery(ev.RBAC_WRITE)
            & pl.col(s.NAME).str.contains(r"^(?:system|eks):").fill_null(value=False)
            & SUCCEEDED,
            _OBJECT,
        ),
        attack=("T1098.006", "T1562.001"),
        excludes=_MACHINERY_NOTE + " (the API server reconciles the system roles at start)",
        covers=_covers(
            "falco/system-clusterrole-modified-deleted",
            "panther/kubernetes-system-role-modified-or-deleted",
        ),
        scope=ev.RBAC_WRITE,
        scope_label="RBAC writes",
        probes=(Probe("patch", "clusterroles", api_group=ev.RBAC_GROUP, name="system:node"),),
    ),
    Control(
        id="rbac-then-workload",
        title="RBAC change followed by a workload write",
        detects="A workload (DaemonSet, Deployment, StatefulSet, CronJob, Job) created or "
        "patched by an identity that changed RBAC within settings.sequence_window before.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.2", "10.2.1.5"), soc2=("CC7.2", "CC8.1")),
        evidence=wd.FollowedBy(
            first=_not_machinery(ev.RBAC_CHANGE) & SUCCEEDED,
            then=_not_machinery(ev.WORKLOAD_CHANGE & ev.VERB.is_in(("create", "patch")))
            & SUCCEEDED,
            first_label="an RBAC change",
        ),
        attack=("T1098.006", "T1610"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "elastic/kubernetes-sensitive-rbac-change-followed-by-workload-modification"
        ),
        scope=ev.RBAC_CHANGE | ev.WORKLOAD_CHANGE,
        scope_label="RBAC and workload writes",
        probes=(_RBAC_PROBES[0], _POD_PROBES[1]),
    ),
    _IMPERSONATION,
    Control(
        id="privileged-impersonation",
        title="Impersonation of privileged identities",
        detects="Requests that went through as a privileged user (settings.privileged_"
        "identities: admin, system:* components, nodes, kube-system service accounts) or group "
        "(settings.privileged_groups: system:masters, cluster-admin, system:nodes).",
        severity="critical",
        clauses=_clauses(pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.1", "CC6.3")),
        evidence=where(
            lambda st: _not_machinery(ev.IMPERSONATED) & _impersonation_target(st) & SUCCEEDED,
            pl.format(
                "as {} (groups: {})",
                pl.col(s.IMPERSONATED_USER).fill_null("-"),
                pl.col(s.IMPERSONATED_GROUPS).list.join(", ").fill_null("-"),
            ),
        ),
        attack=("T1134", "T1078"),
        excludes=_MACHINERY_NOTE,
        covers=_covers("elastic/kubernetes-api-request-impersonating-privileged-identity"),
        probes=(Probe("get", "pods", namespace="default", name="web"),),
    ),
    Control(
        id="anonymous-allowed",
        title="Anonymous requests that were allowed",
        detects="Requests by system:anonymous or system:unauthenticated that succeeded, "
        "other than the public health and version endpoints.",
        severity="critical",
        clauses=_clauses(cis=("1.2.1",), pci=("10.2.1.4",), soc2=("CC6.1", "CC6.6")),
        evidence=where(
            ANONYMOUS
            & ((pl.col(s.AUTHZ_DECISION) == "allow") | pl.col(s.CODE).is_between(100, 399))
            & ~pl.col(s.REQUEST_URI).str.contains(ev.HEALTH_PATHS).fill_null(value=False)
        ),
        attack=("T1078.001", "T1190"),
        excludes="/healthz, /livez, /readyz and /version, which Kubernetes serves to anyone "
        "by design (system:public-info-viewer)",
        covers=_covers(
            "falco/anonymous-request-allowed",
            "elastic/kubernetes-anonymous-request-authorized-by-unusual-user-agent",
            "elastic/kubernetes-anonymous-user-create-update-patch-pods-request",
            "panther/kubernetes-anonymous-api-access-detected",
            "panther/eks-anonymous-api-access-detected",
        ),
        scope=ANONYMOUS,
        scope_label="anonymous requests",
        probes=(Probe("get", "pods", user="system:anonymous", groups=("system:unauthenticated",)),),
    ),
    Control(
        id="anonymous-auth-enabled",
        title="Anonymous authentication is enabled",
        detects="Any request authenticated as system:anonymous, allowed or refused, proves "
        "--anonymous-auth is on; one finding per cluster and source address.",
        severity="medium",
        clauses=_clauses(cis=("1.2.1",), pci=("10.2.1.4",), soc2=("CC6.1",)),
        evidence=Grouped(
            ANONYMOUS,
            keys=(s.CLUSTER, ev.IP_COL),
            having=pl.lit(value=True),
            detail=pl.format(
                "{} anonymous request(s), {} refused: the API server accepts anonymous "
                "authentication",
                pl.col("_n"),
                pl.col("_refused"),
            ),
            sums=(("_refused", FAILED.cast(pl.Int64)),),
        ),
        attack=("T1078.001",),
        excludes="nothing: health probes that authenticate anonymously also prove it (a "
        "kubeadm cluster needs --anonymous-auth for them, or an authentication config that "
        "limits anonymous to the health endpoints)",
        scope=ANONYMOUS,
        scope_label="anonymous requests",
        probes=(Probe("get", "pods", user="system:anonymous", groups=("system:unauthenticated",)),),
    ),
    Control(
        id="denied-requests",
        title="Denied requests (401 and 403)",
        detects="Unauthenticated (401) and forbidden (403) responses, one finding per "
        "identity and source IP.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC6.1", "CC7.2")),
        evidence=Grouped(
            exprs.IS_DENIED,
            keys=(s.CLUSTER, "_who", ev.IP_COL),
            having=pl.lit(value=True),
            detail=pl.format(
                "{} denied request(s) from this identity and address (401: {}, 403: {})",
                pl.col("_n"),
                pl.col("_401"),
                pl.col("_403"),
            ),
            derive=lambda st: [pl.col(s.USER).fill_null("<unauthenticated>").alias("_who")],
            sums=(
                ("_401", (pl.col(s.CODE) == 401).cast(pl.Int64)),
                ("_403", (pl.col(s.CODE) == 403).cast(pl.Int64)),
            ),
        ),
        attack=("T1078", "T1110"),
        covers=_covers(
            "sigma/kubernetes-unauthorized-or-unauthenticated-access",
            "elastic/kubernetes-forbidden-creation-request",
            "elastic/kubernetes-forbidden-request-from-unusual-user-agent",
            "elastic/kubernetes-denied-service-account-request-via-unusual-user-agent",
        ),
        probes=_DENIED_PROBES,
    ),
    Control(
        id="denied-burst",
        title="Bursts of denied requests",
        detects="Many 401/403 responses for one identity and source IP within a few minutes "
        "(settings.auth_failure_burst within settings.burst_window): guessing or scanning.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC6.6", "CC7.2", "CC7.3")),
        evidence=Grouped(
            exprs.IS_DENIED & ~MACHINERY,
            keys=(s.CLUSTER, "_who", ev.IP_COL, "_bucket"),
            having=lambda st: pl.col("_n") >= st.auth_failure_burst,
            detail=lambda st: pl.format(
                "{} denied requests within {} minutes (401: {}, 403: {})",
                pl.col("_n"),
                pl.lit(minutes(st.burst_window)),
                pl.col("_401"),
                pl.col("_403"),
            ),
            derive=lambda st: [
                pl.col(s.USER).fill_null("<unauthenticated>").alias("_who"),
                *bucket(lambda x: x.burst_window)(st),
            ],
            sums=(
                ("_401", (pl.col(s.CODE) == 401).cast(pl.Int64)),
                ("_403", (pl.col(s.CODE) == 403).cast(pl.Int64)),
            ),
        ),
        attack=("T1110",),
        excludes=_MACHINERY_NOTE + " (components are refused until the API server has "
        "bootstrapped RBAC); denied-requests still lists them",
        probes=_DENIED_PROBES,
    ),
    Control(
        id="public-address-denied-burst",
        title="Floods of 403s from one public address",
        detects="settings.public_denied_burst or more 403 responses from one public source "
        "address within settings.flood_window, whatever identities it used.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC6.6", "CC7.2")),
        evidence=Grouped(
            pl.col(s.CODE) == 403,
            keys=(s.CLUSTER, ev.IP_COL, "_bucket"),
            having=lambda st: pl.col("_n") >= st.public_denied_burst,
            detail=lambda st: pl.format(
                "{} forbidden requests within {} minutes from {} identities",
                pl.col("_n"),
                pl.lit(minutes(st.flood_window)),
                pl.col(f"_d_{s.USER}"),
            ),
            derive=bucket(lambda st: st.flood_window),
            distinct=(s.USER,),
            refine=lambda st: ev.public_address(pl.col(ev.IP_COL), st),
        ),
        attack=("T1110", "T1613"),
        excludes="private, loopback and settings.trusted_cidrs addresses (denied-burst counts "
        "those per identity)",
        covers=_covers(
            "panther/kubernetes-api-multiple-403-responses-from-single-public-ip",
            "panther/eks-audit-log-based-single-sourceip-is-generating-multiple-403s",
        ),
        probes=_DENIED_PROBES,
    ),
    Control(
        id="permission-enumeration",
        title="Permission enumeration",
        detects="One identity and address touching more than settings.enumeration_uris "
        "distinct URIs and settings.enumeration_resources distinct resources within "
        "settings.burst_window, with some refused (or settings.enumeration_not_found 404s).",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC7.2",)),
        evidence=Grouped(
            ~MACHINERY,
            keys=(s.CLUSTER, "_who", ev.IP_COL, "_bucket"),
            having=lambda st: (
                (pl.col(f"_d_{s.REQUEST_URI}") > st.enumeration_uris)
                & (pl.col("_d__res") > st.enumeration_resources)
                & ((pl.col("_denied") > 0) | (pl.col("_404") >= st.enumeration_not_found))
            ),
            detail=lambda st: pl.format(
                "{} URIs, {} resources, {} denied and {} not found within {} minutes",
                pl.col(f"_d_{s.REQUEST_URI}"),
                pl.col("_d__res"),
                pl.col("_denied"),
                pl.col("_404"),
                pl.lit(minutes(st.burst_window)),
            ),
            derive=lambda st: [
                pl.col(s.USER).fill_null("<unauthenticated>").alias("_who"),
                pl.col(s.RESOURCE).cast(pl.String).alias("_res"),
                *bucket(lambda x: x.burst_window)(st),
            ],
            sums=(
                ("_denied", exprs.IS_DENIED.cast(pl.Int64)),
                ("_404", (pl.col(s.CODE) == 404).fill_null(value=False).cast(pl.Int64)),
            ),
            distinct=(s.REQUEST_URI, "_res"),
            needs=exprs.IS_DENIED | (pl.col(s.CODE) == 404),
        ),
        attack=("T1069", "T1613"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "elastic/kubernetes-potential-endpoint-permission-enumeration-attempt-by-anonymous-user",
            "elastic/kubernetes-potential-endpoint-permission-enumeration-attempt-detected",
        ),
        probes=_DENIED_PROBES,
    ),
    Control(
        id="discovery-sweep",
        title="Discovery sweeps",
        detects="One identity reading settings.discovery_kinds or more kinds among "
        "namespaces, nodes, pods, roles, bindings, configmaps and service accounts within "
        "settings.discovery_window.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC7.2",)),
        evidence=Grouped(
            ~MACHINERY
            & ~ANONYMOUS
            & ev.VERB.is_in(("get", "list"))
            & ev.RESOURCE.is_in(
                (
                    "namespaces",
                    "nodes",
                    "pods",
                    "roles",
                    "clusterroles",
                    "rolebindings",
                    "clusterrolebindings",
                    "configmaps",
                    "serviceaccounts",
                    "secrets",
                )
            ),
            keys=(s.CLUSTER, s.USER, "_bucket"),
            having=lambda st: pl.col("_d__res") >= st.discovery_kinds,
            detail=lambda st: pl.format(
                "{} kinds read within {}s: {}",
                pl.col("_d__res"),
                pl.lit(int(st.discovery_window.total_seconds())),
                some("_res"),
            ),
            derive=lambda st: [
                pl.col(s.RESOURCE).cast(pl.String).alias("_res"),
                *bucket(lambda x: x.discovery_window)(st),
            ],
            distinct=("_res",),
        ),
        attack=("T1613", "T1087"),
        excludes=_MACHINERY_NOTE + "; anonymous requests (permission-enumeration and "
        "anonymous-auth-enabled see them)",
        covers=_covers("elastic/kubernetes-multi-resource-discovery"),
        probes=(Probe("list", "pods", namespace="default"), Probe("list", "nodes")),
    ),
    Control(
        id="self-permission-review",
        title="Self-permission enumeration (kubectl auth can-i)",
        detects="SelfSubjectAccessReviews and SelfSubjectRulesReviews created by anyone but "
        "the machinery; the detail names service accounts and nodes, for which it is unusual.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC7.2",)),
        evidence=where(
            _not_machinery(ev.SELF_REVIEW) & SUCCEEDED,
            pl.format(
                "{} by a {}",
                pl.col(s.RESOURCE).cast(pl.String),
                pl.col(ev.ACTOR_COL).cast(pl.String).str.replace("_", " "),
            ),
        ),
        attack=("T1069", "T1613"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "elastic/kubernetes-suspicious-self-subject-review-via-unusual-user-agent",
            "sigma/rbac-permission-enumeration-attempt",
        ),
        scope=ev.SELF_REVIEW,
        scope_label="self-subject reviews",
        probes=(
            Probe("create", "selfsubjectaccessreviews", api_group="authorization.k8s.io"),
            Probe("create", "selfsubjectrulesreviews", api_group="authorization.k8s.io"),
        ),
    ),
    Control(
        id="suspicious-user-agent",
        title="Requests from attack tools and scripts",
        detects="Any request by an attack or scanning tool (settings.tool_user_agents), and "
        "Secret reads by scripts (settings.script_user_agents: curl, python, Go's default "
        "client...).",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC7.2",)),
        evidence=where(
            lambda st: (
                ~MACHINERY
                & (
                    pl.col(s.USER_AGENT).str.contains("(?i)" + "|".join(st.tool_user_agents))
                    | (
                        ev.SECRET_READ
                        & pl.col(s.USER_AGENT).str.contains(
                            "(?i)" + "|".join(st.script_user_agents)
                        )
                    )
                ).fill_null(value=False)
            ),
            pl.format("user agent {}", pl.col(s.USER_AGENT)),
        ),
        attack=("T1613", "T1552.007"),
        excludes=_MACHINERY_NOTE + " (controllers use Go's default client)",
        covers=_covers(
            "elastic/kubernetes-secret-get-or-list-with-suspicious-user-agent",
            notes={
                "sigma/kubernetes-potential-enumeration-activity": (
                    "the tool user-agent branch; exec commands are suspicious-exec's"
                )
            },
        ),
        probes=(Probe("get", "secrets", namespace="default", name="db"),),
    ),
    Control(
        id="new-agent-or-address",
        title="New user agents and source IPs for a person",
        detects="A user agent or source IP that a known person did not use in the previous "
        "window of the same length.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC7.2")),
        evidence=wd.Union(
            (
                wd.FirstSeen(HUMAN, "user agent", known_only=True),
                wd.FirstSeen(HUMAN, "source IP", known_only=True),
            )
        ),
        attack=("T1078",),
        excludes="people not seen in the previous window (nothing to compare with), and "
        "every identity that is not a person (first-seen-access)",
        scope=HUMAN,
        scope_label="human requests",
        needs_baseline=True,
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="first-seen-access",
        title="Sensitive requests from a new address, agent or decision",
        detects="A (user, source address, user agent) combination not seen in the previous "
        "window, on a Secret read, a workload or RBAC write, an exec or a self-subject review; "
        "and a (user, user agent, authorization decision) combination not seen before.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC7.2")),
        evidence=wd.Union(
            (
                wd.FirstSeen(
                    ~MACHINERY
                    & (
                        ev.SECRET_READ
                        | ev.WORKLOAD_CHANGE
                        | ev.RBAC_WRITE
                        | ev.POD_EXEC
                        | ev.SELF_REVIEW
                    ),
                    "address and user agent",
                    what=pl.format("{} {}", pl.col(s.VERB), pl.col(s.RESOURCE).cast(pl.String)),
                ),
                wd.FirstSeen(
                    ~MACHINERY & pl.col(s.AUTHZ_DECISION).is_not_null(),
                    "user agent and decision",
                    what=pl.format("{} {}", pl.col(s.VERB), pl.col(s.REQUEST_URI)),
                ),
            )
        ),
        attack=("T1078",),
        excludes=_MACHINERY_NOTE + "; windows with no previous window to compare with",
        covers=_covers(
            "elastic/kubernetes-secret-access-via-unusual-user-agent",
            "elastic/kubernetes-unusual-decision-by-user-agent",
            "elastic/unusual-kubernetes-sensitive-workload-modification",
        ),
        needs_baseline=True,
        probes=(Probe("get", "secrets", namespace="default", name="db"),),
    ),
    Control(
        id="in-cluster-credential-public-address",
        title="In-cluster credentials used from a public address",
        detects="Service accounts and nodes whose request came from a public address (not "
        "private, loopback or settings.trusted_cidrs) and was not refused: a stolen token used "
        "from outside.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC6.6")),
        evidence=Grouped(
            pl.col(ev.ACTOR_COL).is_in(("service_account", "node"))
            & ~(pl.col(s.CODE) == 403).fill_null(value=False),
            keys=(s.CLUSTER, s.USER, ev.IP_COL),
            having=pl.lit(value=True),
            refine=lambda st: ev.public_address(pl.col(ev.IP_COL), st),
            detail=pl.format(
                "{} request(s) from public address {}", pl.col("_n"), pl.col(ev.IP_COL)
            ),
        ),
        attack=("T1078.004", "T1528", "T1133"),
        excludes="the control plane's own users (a managed control plane calls from the "
        "provider's public addresses), and addresses in settings.trusted_cidrs: add your "
        "nodes' NAT addresses there (Panther drops cloud ASNs with an enrichment this project "
        "has not). Medium, not high: a managed cluster with a public endpoint sees its own "
        "nodes arrive from public addresses until they are listed",
        covers=_covers(
            notes=dict.fromkeys(
                (
                    "panther/kubernetes-system-principal-accessed-from-non-cloud-public-ip",
                    "panther/eks-audit-log-reporting-system-namespace-is-used-from-a-public-ip",
                ),
                "service accounts and nodes; system: and eks: control-plane users come "
                "from the provider's addresses, which Panther drops by cloud ASN",
            )
        ),
        probes=(Probe("get", "pods", namespace="default", user=_SA, groups=_SA_GROUPS),),
    ),
    Control(
        id="untrusted-address",
        title="Requests from listed addresses",
        detects="Any request from an address in settings.untrusted_cidrs (e.g. a Tor exit-node "
        "or threat-intelligence list).",
        severity="high",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.6", "CC7.2")),
        evidence=Grouped(
            lambda st: in_ranges(pl.col(ev.IP_COL), st.untrusted_cidrs),
            keys=(s.CLUSTER, s.USER, ev.IP_COL),
            having=pl.lit(value=True),
            detail=pl.format(
                "{} request(s) from listed address {}", pl.col("_n"), pl.col(ev.IP_COL)
            ),
        ),
        attack=("T1090.003",),
        excludes="nothing; not assessable until settings.untrusted_cidrs lists addresses",
        covers=_covers(
            notes={
                "panther/gcp-k8s-iocactivity": (
                    "given the indicator list in settings.untrusted_cidrs"
                ),
                "panther/kubernetes-api-activity-from-tor-exit-node": (
                    "given a Tor exit-node list in settings.untrusted_cidrs, as Panther is given "
                    "its lookup table"
                ),
            },
        ),
        requires=("untrusted_cidrs",),
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="disallowed-user",
        title="Identities outside the allow-list",
        detects="Requests by users that are neither in settings.allowed_users nor members of "
        "settings.allowed_groups; one finding per user and address.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC6.2")),
        evidence=Grouped(
            _disallowed_user,
            keys=(s.CLUSTER, s.USER, ev.IP_COL),
            having=pl.lit(value=True),
            detail=pl.format("{} request(s) by an identity outside the allow-list", pl.col("_n")),
        ),
        attack=("T1078",),
        excludes="system: identities (the cluster's own); not assessable until "
        "settings.allowed_users or allowed_groups is set",
        covers=_covers("falco/disallowed-k8s-user"),
        requires=("allowed_users|allowed_groups",),
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="shared-admin-credential",
        title="Shared administrator credentials in use",
        detects="Requests by shared administrator users (settings.admin_users: "
        "kubernetes-admin, admin, minikube-user...); one finding per user, address and day.",
        severity="low",
        clauses=_clauses(cis=("3.1.1",), pci=("10.2.1.2", "10.2.2"), soc2=("CC6.1",)),
        evidence=Grouped(
            lambda st: matches_any(pl.col(s.USER), st.admin_users),
            keys=(s.CLUSTER, s.USER, ev.IP_COL, "_day"),
            having=pl.lit(value=True),
            detail=pl.format(
                "{} request(s) on {} with a credential no one person owns",
                pl.col("_n"),
                pl.col("_day").cast(pl.String),
            ),
            derive=lambda st: [pl.col(s.REQUEST_TS).dt.date().alias("_day")],
        ),
        attack=("T1078.001",),
        excludes="nothing; impersonated requests count for the real user",
        covers=_covers("falco/full-k8s-administrative-access"),
        probes=(Probe("get", "pods", namespace="default", user="kubernetes-admin"),),
    ),
    Control(
        id="sa-token-created",
        title="Service-account tokens created",
        detects="TokenRequests (serviceaccounts/token) by anyone but kubelets, and Secrets of "
        "type kubernetes.io/service-account-token (the latter needs Request level).",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.2",)),
        evidence=where(
            _not_machinery(ev.SA_TOKEN | (ev.SECRETS & ev.CREATE)) & SUCCEEDED,
            refine=ev.SA_TOKEN
            | _body().str.contains(r'"type"\s*:\s*"kubernetes\.io/service-account-token"'),
        ),
        attack=("T1528",),
        excludes=_MACHINERY_NOTE + " (kubelets request the tokens of the pods they run)",
        covers=_covers(
            "elastic/kubernetes-service-account-token-created-via-tokenrequest-api",
            "panther/kubernetes-long-lived-service-account-token-created",
        ),
        scope=ev.SA_TOKEN,
        scope_label="TokenRequests",
        probes=(Probe("create", "serviceaccounts", "token", namespace="default", name="app"),),
    ),
    Control(
        id="serviceaccount-change",
        title="Service accounts created or deleted",
        detects="create and delete of ServiceAccounts by anyone but the machinery: new "
        "identities for persistence.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.2",)),
        evidence=where(_not_machinery(ev.SERVICE_ACCOUNT_WRITE) & SUCCEEDED, _OBJECT),
        attack=("T1136", "T1098"),
        excludes=_MACHINERY_NOTE + " (the service-account controller creates 'default' in "
        "every namespace)",
        covers=_covers(
            "falco/k8s-serviceaccount-created",
            "falco/k8s-serviceaccount-deleted",
            "sigma/new-kubernetes-service-account-created",
        ),
        scope=ev.SERVICE_ACCOUNT_WRITE,
        scope_label="service account creates and deletes",
        probes=(Probe("create", "serviceaccounts", namespace="default"),),
    ),
    Control(
        id="csr-activity",
        title="Certificate signing requests created or approved",
        detects="CertificateSigningRequests created by anyone but nodes, and approvals by "
        "anyone but the controller manager: new cluster credentials; the detail names "
        "client-auth usages and the kube-apiserver-client signer.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.2", "CC6.3")),
        evidence=where(
            ev.CSR_WRITE
            & (
                (ev.CREATE & ev.NO_SUBRESOURCE)
                | ((ev.SUBRESOURCE == "approval") & ev.VERB.is_in(("update", "patch")))
            )
            & ~MACHINERY
            & SUCCEEDED,
            pl.concat_str(
                [
                    pl.when(_body().str.contains(r'"client auth"').fill_null(value=False)).then(
                        pl.lit("client auth usage")
                    ),
                    pl.when(
                        _body()
                        .str.contains(r"kubernetes\.io/kube-apiserver-client")
                        .fill_null(value=False)
                    ).then(pl.lit("kube-apiserver-client signer")),
                ],
                separator=", ",
                ignore_nulls=True,
            ),
        ),
        attack=("T1649",),
        excludes="nodes (kubelets request their own certificates) and the controller manager "
        "(it approves node certificates)",
        covers=_covers(
            "elastic/kubernetes-client-certificate-signing-request-created-or-approved",
            "panther/kubernetes-client-certificate-credential-created",
        ),
        scope=ev.CSR_WRITE,
        scope_label="CSR requests",
        probes=(
            Probe("create", "certificatesigningrequests", api_group="certificates.k8s.io"),
            Probe(
                "update",
                "certificatesigningrequests",
                "approval",
                api_group="certificates.k8s.io",
                name="csr-1",
            ),
        ),
    ),
    Control(
        id="admission-webhook-change",
        title="Admission webhook and API service changes",
        detects="Writes to admission webhooks and policies (admissionregistration.k8s.io) and "
        "to aggregated APIServices: code that sees or changes every request.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.7"), soc2=("CC6.8", "CC8.1")),
        evidence=where(_not_machinery(ev.WEBHOOK_WRITE) & SUCCEEDED, _OBJECT),
        attack=("T1562.001", "T1556"),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "elastic/kubernetes-admission-webhook-created-or-modified",
            "sigma/kubernetes-admission-controller-modification",
            "panther/kubernetes-admission-controller-webhook-created",
        ),
        scope=ev.WEBHOOK_WRITE,
        scope_label="webhook writes",
        probes=(
            Probe(
                "create",
                "validatingwebhookconfigurations",
                api_group="admissionregistration.k8s.io",
            ),
            Probe(
                "patch",
                "mutatingwebhookconfigurations",
                api_group="admissionregistration.k8s.io",
                name="hook",
            ),
        ),
    ),
    Control(
        id="crd-change",
        title="CustomResourceDefinition changes",
        detects="Creation, change and deletion of CRDs (new API types).",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=where(_not_machinery(ev.CRD_WRITE) & SUCCEEDED, _OBJECT),
        attack=("T1578",),
        excludes=_MACHINERY_NOTE,
        scope=ev.CRD_WRITE,
        scope_label="CRD writes",
        probes=(Probe("create", "customresourcedefinitions", api_group="apiextensions.k8s.io"),),
    ),
    Control(
        id="audit-config-change",
        title="Changes to audit configuration",
        detects="Writes to AuditSinks and to kube-system ConfigMaps whose name mentions audit: "
        "attempts to stop or redirect the audit trail.",
        severity="critical",
        clauses=_clauses(cis=("3.2.1",), pci=("10.2.1.3", "10.2.1.6"), soc2=("CC7.2", "CC8.1")),
        evidence=where(ev.AUDIT_CONFIG_WRITE & SUCCEEDED, _OBJECT),
        attack=("T1562.008",),
        excludes="nothing: no component rewrites audit configuration in normal operation",
        scope=ev.AUDIT_CONFIG_WRITE,
        scope_label="audit configuration writes",
        probes=(Probe("update", "configmaps", namespace="kube-system", name="audit-policy"),),
    ),
    Control(
        id="cluster-config-change",
        title="Cluster DNS and authentication ConfigMaps changed",
        detects="update, patch or delete of kube-system ConfigMaps that configure cluster DNS "
        "(coredns, kube-dns, coredns-custom) or authentication (EKS aws-auth).",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.2", "CC8.1")),
        evidence=where(
            _not_machinery(
                ev.CONFIGMAPS
                & (pl.col(s.NAMESPACE) == "kube-system")
                & pl.col(s.NAME).is_in(("coredns", "kube-dns", "coredns-custom", "aws-auth"))
                & ev.VERB.is_in(("update", "patch", *exprs.DELETE_VERBS))
            )
            & SUCCEEDED,
            _OBJECT,
        ),
        attack=("T1556", "T1557"),
        excludes=_MACHINERY_NOTE + " (managed add-ons reconcile these)",
        covers=_covers(
            "elastic/kubernetes-coredns-or-kube-dns-configuration-modified",
            "elastic/eks-authentication-configuration-modified",
        ),
        scope=ev.CONFIGMAPS & (pl.col(s.NAMESPACE) == "kube-system"),
        scope_label="kube-system ConfigMap requests",
        probes=(Probe("patch", "configmaps", namespace="kube-system", name="aws-auth"),),
    ),
    Control(
        id="configmap-credentials",
        title="Credentials written into ConfigMaps",
        detects="ConfigMaps created or changed with keys that name credentials "
        "(settings.credential_keys: passwords, passphrases, AWS keys...) or a PEM private key; "
        "the detail names the keys, never their values.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC6.7")),
        evidence=Flagged(
            ev.CONFIGMAPS & ev.CHANGE & ~MACHINERY & SUCCEEDED,
            lambda st: bodies.credential_keys(_body(), st),
        ),
        attack=("T1552.001", "T1552.007"),
        excludes=_MACHINERY_NOTE,
        covers=_covers("falco/create-modify-configmap-with-private-credentials"),
        scope=ev.CONFIGMAPS & ev.CHANGE,
        scope_label="ConfigMap writes",
        level="Request",
        probes=(Probe("create", "configmaps", namespace="default"),),
    ),
    Control(
        id="configmap-change",
        title="ConfigMaps created or deleted",
        detects="create and delete of ConfigMaps by anyone but the machinery (Falco's "
        "activity stream).",
        severity="info",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=where(
            _not_machinery(ev.CONFIGMAPS & (ev.CREATE | ev.DELETE)) & SUCCEEDED, _OBJECT
        ),
        attack=("T1578",),
        excludes=_MACHINERY_NOTE,
        covers=_covers("falco/k8s-configmap-created", "falco/k8s-configmap-deleted"),
        scope=ev.CONFIGMAPS & (ev.CREATE | ev.DELETE),
        scope_label="ConfigMap creates and deletes",
        probes=(Probe("create", "configmaps", namespace="default"),),
    ),
    Control(
        id="service-change",
        title="Services created or deleted",
        detects="create and delete of Services by anyone but the machinery (Falco's "
        "activity stream).",
        severity="info",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=where(
            _not_machinery(ev.SERVICES & (ev.CREATE | ev.DELETE) & ev.NO_SUBRESOURCE) & SUCCEEDED,
            _OBJECT,
        ),
        attack=("T1133",),
        excludes=_MACHINERY_NOTE,
        covers=_covers("falco/k8s-service-created", "falco/k8s-service-deleted"),
        scope=ev.SERVICES & (ev.CREATE | ev.DELETE),
        scope_label="Service creates and deletes",
        probes=(Probe("create", "services", namespace="default"),),
    ),
    Control(
        id="nodeport-service",
        title="Services exposed on node ports",
        detects="Services created, updated or patched with type NodePort: a port opened on "
        "every node.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.6",)),
        evidence=where(
            _not_machinery(ev.SERVICES & ev.CHANGE & ev.NO_SUBRESOURCE) & SUCCEEDED,
            pl.lit("type NodePort"),
            refine=_body().str.contains(r'"type"\s*:\s*"NodePort"'),
        ),
        attack=("T1133",),
        excludes=_MACHINERY_NOTE,
        covers=_covers(
            "falco/create-nodeport-service",
            "elastic/kubernetes-exposed-service-created-with-type-nodeport",
            "panther/kubernetes-nodeport-service-deployed",
            "panther/gcp-k8s-service-type-nodeport-deployed",
        ),
        scope=ev.SERVICES & ev.CHANGE,
        scope_label="Service writes",
        level="Request",
        probes=(Probe("create", "services", namespace="default"),),
    ),
    Control(
        id="ingress-without-tls",
        title="Ingresses created without TLS",
        detects="Ingress objects created with no spec.tls: traffic to them in clear text.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.7",)),
        evidence=where(
            _not_machinery(ev.INGRESS_CREATE) & SUCCEEDED,
            pl.lit("no spec.tls"),
            refine=_body().is_not_null() & ~_body().str.contains(r'"tls"\s*:\s*\[\s*\{'),
        ),
        attack=("T1040", "T1557"),
        excludes=_MACHINERY_NOTE + "; Ingresses whose body was not logged",
        covers=_covers(
            "falco/ingress-object-without-tls-certificate-created",
            "panther/kubernetes-ingress-created-without-tls",
        ),
        scope=ev.INGRESS_CREATE,
        scope_label="Ingress creates",
        level="Request",
        probes=(Probe("create", "ingresses", api_group="networking.k8s.io", namespace="default"),),
    ),
    Control(
        id="event-deletion",
        title="Kubernetes Events deleted",
        detects="delete and deletecollection of Event objects (core and events.k8s.io): "
        "covering tracks.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.6", "10.2.1.7"), soc2=("CC7.2",)),
        evidence=where(_not_machinery(ev.EVENTS_DELETE) & SUCCEEDED),
        attack=("T1070",),
        excludes=_MACHINERY_NOTE + " (the namespace controller deletes a namespace's Events; "
        "Events also expire by TTL without any request)",
        covers=_covers("elastic/kubernetes-events-deleted", "sigma/kubernetes-events-deleted"),
        scope=ev.EVENTS_DELETE,
        scope_label="Event deletes",
        probes=(Probe("delete", "events", namespace="default", name="e"),),
    ),
    Control(
        id="cluster-scoped-create-delete",
        title="Cluster-scoped objects created or deleted",
        detects="create/delete of system-level (cluster-scoped) objects such as namespaces, "
        "ClusterRoles, StorageClasses, by anyone but the control plane and nodes.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=where(_not_machinery(ev.CLUSTER_SCOPED_CREATE_DELETE) & SUCCEEDED, _OBJECT),
        attack=("T1578",),
        excludes=_MACHINERY_NOTE + "; Nodes (node-registration judges them)",
        covers=_covers(
            "falco/create-disallowed-namespace",
            "falco/k8s-namespace-created",
            "falco/k8s-namespace-deleted",
        ),
        scope=ev.CLUSTER_SCOPED_CREATE_DELETE,
        scope_label="cluster-scoped creates/deletes",
        probes=(Probe("create", "namespaces"), Probe("delete", "namespaces", name="team-a")),
    ),
    Control(
        id="system-namespace-change",
        title="Changes in system namespaces",
        detects="Writes in the platform's namespaces (settings.system_namespaces: kube-system, "
        "kube-public, kube-node-lease, gke-system, ...) by anyone but the machinery; the "
        "detail names pods set to run as a controller's service account.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC8.1",)),
        evidence=where(
            pl.col(s.NAMESPACE).is_not_null() & ev.NAMESPACED_WRITE & ~MACHINERY & SUCCEEDED,
            lambda st: pl.coalesce(_controller_sa(st), _OBJECT),
            refine=_system_namespace,
        ),
        attack=("T1610", "T1543.005"),
        excludes=_MACHINERY_NOTE + "; leases and Events (heartbeats, not configuration)",
        covers=_covers(
            "falco/pod-created-in-kube-namespace",
            "falco/service-account-created-in-kube-namespace",
            "sigma/creation-of-pod-in-system-namespace",
            "panther/kubernetes-pod-created-in-system-namespace",
            notes={
                "elastic/kubernetes-suspicious-assignment-of-controller-service-account": (
                    "the 'pod runs as controller account' detail"
                )
            },
        ),
        scope=lambda st: _system_namespace(st) & ev.NAMESPACED_WRITE,
        scope_label="system namespace writes",
        probes=(
            Probe(
                "patch", "daemonsets", api_group="apps", namespace="kube-system", name="kube-proxy"
            ),
            Probe("create", "pods", namespace="kube-system"),
            Probe("create", "pods", namespace="kube-public"),
        ),
    ),
    Control(
        id="persistent-workload-change",
        title="CronJobs, Jobs and DaemonSets created or changed",
        detects="create, update, patch and delete of CronJobs, Jobs and DaemonSets by anyone "
        "but the machinery: code that runs again on a schedule or on every node.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2", "10.2.1.7"), soc2=("CC8.1",)),
        evidence=where(_not_machinery(ev.PERSISTENT_WORKLOAD) & SUCCEEDED, _OBJECT),
        attack=("T1053.007", "T1543.005", "T1610"),
        excludes=_MACHINERY_NOTE + " (the CronJob controller creates a Job at every run)",
        covers=_covers(
            "sigma/kubernetes-cronjob-job-modification",
            "panther/kubernetes-cronjob-created-or-modified",
            "panther/kubernetes-daemonset-created",
            "panther/gcp-gke-kubernetes-cron-job-created-or-modified",
            "panther/gcp-k8s-new-daemonset-deployed",
        ),
        scope=ev.PERSISTENT_WORKLOAD,
        scope_label="CronJob, Job and DaemonSet writes",
        probes=(Probe("create", "cronjobs", api_group="batch", namespace="default"),),
    ),
    Control(
        id="workload-change",
        title="Deployments and StatefulSets created, patched or deleted",
        detects="Writes to Deployments, StatefulSets and ReplicaSets by anyone but the "
        "machinery; the detail marks patches that change containers (sidecar injection).",
        severity="low",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=where(
            _not_machinery(ev.APP_WORKLOAD) & SUCCEEDED,
            pl.concat_str(
                [
                    _OBJECT,
                    pl.when(
                        (ev.VERB == "patch")
                        & _body().str.contains(r'"containers"\s*:').fill_null(value=False)
                    ).then(pl.lit(" (patch changes containers)")),
                ],
                ignore_nulls=True,
            ),
        ),
        attack=("T1610",),
        excludes=_MACHINERY_NOTE + " (the deployment controller writes ReplicaSets)",
        covers=_covers(
            "falco/k8s-deployment-created",
            "falco/k8s-deployment-deleted",
            "sigma/deployment-deleted-from-kubernetes-cluster",
            "sigma/potential-sidecar-injection-into-running-deployment",
        ),
        scope=ev.APP_WORKLOAD,
        scope_label="Deployment, StatefulSet and ReplicaSet writes",
        probes=(Probe("patch", "deployments", api_group="apps", namespace="default", name="web"),),
    ),
    Control(
        id="privileged-pod",
        title="Privileged and host-access pods",
        detects="Pods and workload templates with privileged containers, hostPath volumes, "
        "hostNetwork, hostPID or hostIPC, root containers (runAsUser 0, runAsNonRoot false) or "
        "allowPrivilegeEscalation (read from request bodies).",
        severity="high",
        clauses=_clauses(
            cis=("3.2.2", "5.2.2", "5.2.3", "5.2.4", "5.2.5", "5.2.6", "5.2.7"),
            pci=("10.2.1.2",),
            soc2=("CC6.8", "CC8.1"),
        ),
        evidence=Flagged(
            _POD_SPEC, _by_pod_spec_author(bodies.flag_names(bodies.POD_FLAGS, _body()))
        ),
        attack=("T1611", "T1610"),
        excludes=_POD_SPEC_NOTE,
        covers=_covers(
            "falco/create-privileged-pod",
            "falco/create-hostnetwork-pod",
            "falco/create-hostpid-pod",
            "falco/create-hostipc-pod",
            "elastic/kubernetes-pod-created-with-hostipc",
            "elastic/kubernetes-pod-created-with-hostnetwork",
            "elastic/kubernetes-pod-created-with-hostpid",
            "elastic/kubernetes-privileged-pod-created",
            "sigma/container-with-a-hostpath-mount-created",
            "panther/kubernetes-pod-using-host-ipc-namespace",
            "panther/kubernetes-pod-attached-to-host-network",
            "panther/kubernetes-pod-using-host-pid-namespace",
            "panther/kubernetes-pod-with-hostpath-volume-mount",
            "panther/kubernetes-privileged-pod-created",
            "panther/gcp-k8s-pod-attached-to-node-host-network",
            "panther/gcp-k8s-pod-using-host-pid-namespace",
            "panther/gcp-k8s-privileged-pod-created",
        ),
        scope=ev.POD_SPEC_WRITE,
        scope_label="pod and workload writes",
        level="Request",
        probes=_POD_PROBES,
    ),
    Control(
        id="sensitive-host-path",
        title="Pods mounting sensitive host paths",
        detects="hostPath volumes on paths that give a container the node "
        "(settings.sensitive_host_paths: /, /proc, /etc, container runtime sockets, "
        "/var/lib/kubelet, ...).",
        severity="critical",
        clauses=_clauses(cis=("5.2.12",), pci=("10.2.1.2",), soc2=("CC6.8",)),
        evidence=Flagged(_POD_SPEC, _by_pod_spec_author(lambda st: bodies.host_paths(_body(), st))),
        attack=("T1611",),
        excludes=_POD_SPEC_NOTE,
        covers=_covers(
            "falco/create-sensitive-mount-pod",
            "elastic/kubernetes-pod-created-with-a-sensitive-hostpath-volume",
            "panther/gcp-k8s-pod-create-or-modify-host-path-volume-mount",
        ),
        scope=ev.POD_SPEC_WRITE,
        scope_label="pod and workload writes",
        level="Request",
        probes=_POD_PROBES,
    ),
    Control(
        id="dangerous-capabilities",
        title="Containers adding dangerous Linux capabilities",
        detects="Containers whose securityContext adds a capability that allows escaping to "
        "the node (settings.dangerous_capabilities: SYS_ADMIN, NET_ADMIN, BPF, SYS_PTRACE, "
        "SYS_MODULE, DAC_READ_SEARCH, ...).",
        severity="high",
        clauses=_clauses(cis=("5.2.8", "5.2.9"), pci=("10.2.1.2",), soc2=("CC6.8",)),
        evidence=Flagged(
            _POD_SPEC, _by_pod_spec_author(lambda st: bodies.added_capabilities(_body(), st))
        ),
        attack=("T1611",),
        excludes=_POD_SPEC_NOTE
        + (
            "; capabilities that are dropped or harmless (Sigma fires on any capabilities "
            "field, drops included)"
        ),
        covers=_covers(
            "elastic/kubernetes-container-created-with-excessive-linux-capabilities",
            "panther/kubernetes-pod-with-dangerous-linux-capabilities",
        ),
        scope=ev.POD_SPEC_WRITE,
        scope_label="pod and workload writes",
        level="Request",
        probes=_POD_PROBES,
    ),
    Control(
        id="disallowed-image",
        title="Images from outside the allowed registries",
        detects="Pods and workload templates naming an image that is neither in "
        "settings.allowed_images nor from settings.allowed_registries.",
        severity="medium",
        clauses=_clauses(cis=("5.5.1",), pci=("10.2.1.2",), soc2=("CC7.1", "CC8.1")),
        evidence=Flagged(
            _POD_SPEC, _by_pod_spec_author(lambda st: bodies.disallowed_images(_body(), st))
        ),
        attack=("T1525", "T1610"),
        excludes=_POD_SPEC_NOTE
        + "; not assessable until settings.allowed_images or allowed_registries is set",
        covers=_covers("falco/create-disallowed-pod"),
        scope=ev.POD_SPEC_WRITE,
        scope_label="pod and workload writes",
        level="Request",
        requires=("allowed_images|allowed_registries",),
        probes=_POD_PROBES,
    ),
    Control(
        id="node-registration",
        title="Nodes registered outside the allow-list or by someone else",
        detects="Node objects created for a name outside settings.allowed_nodes (when set), or "
        "by an identity that is neither that node's kubelet nor the control plane.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.5", "10.2.1.7"), soc2=("CC6.2", "CC8.1")),
        evidence=Flagged(ev.NODE_CREATE & SUCCEEDED, _node_outside_list),
        attack=("T1578.002",),
        excludes="a kubelet registering its own Node (system:node:<name> creating <name>) when "
        "no allow-list is set: that is how every node joins",
        covers=_covers("falco/untrusted-node-successfully-joined-the-cluster"),
        scope=ev.NODE_CREATE,
        scope_label="Node creates",
        probes=(Probe("create", "nodes", user=_NODE, groups=_NODE_GROUPS),),
    ),
    Control(
        id="pod-security-violation",
        title="Pod Security admission violations",
        detects="Requests the Pod Security admission controller flagged "
        "(pod-security.kubernetes.io/audit-violations) or refused.",
        severity="medium",
        clauses=_clauses(cis=("5.2.1",), soc2=("CC6.8", "CC7.2")),
        evidence=where(ev.PSA_FOUND.is_not_null(), ev.PSA_FOUND),
        attack=("T1610", "T1611"),
        excludes="nothing: a controller creating a violating pod is reported too (medium), "
        "since the workload it copies is the violation",
        probes=(Probe("create", "pods", namespace="default"),),
    ),
    Control(
        id="off-hours-human",
        title="Human activity outside working hours",
        detects="Requests by people outside settings.working_hours and working_days "
        "(settings.timezone); one finding per person and day.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC7.2",)),
        evidence=Grouped(
            lambda st: HUMAN & _off_hours(st),
            keys=(s.CLUSTER, s.USER, "_day"),
            having=pl.lit(value=True),
            detail=lambda st: pl.format(
                "{} request(s) outside working hours on {} ({})",
                pl.col("_n"),
                pl.col("_day").cast(pl.String),
                pl.lit(st.timezone),
            ),
            derive=lambda st: [
                pl.col(s.REQUEST_TS).dt.convert_time_zone(st.timezone).dt.date().alias("_day")
            ],
        ),
        attack=("T1078",),
        excludes="every identity that is not a person",
        scope=HUMAN,
        scope_label="human requests",
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="audit-gap",
        title="Gaps in the audit trail",
        detects="Silences longer than settings.gap_threshold in a cluster's event stream, "
        "including at the window's edges: logging stopped or events were lost.",
        severity="high",
        clauses=_clauses(cis=("1.2.16", "3.2.1"), pci=("10.2.1.6",), soc2=("CC7.2",)),
        evidence=wd.Gaps(),
        attack=("T1562.008",),
        excludes="nothing: a quiet cluster still renews leases every few seconds",
        stages=(),
        probes=(
            Probe("get", "pods", namespace="default", user=_SA, groups=_SA_GROUPS),
            Probe(
                "update",
                "leases",
                api_group="coordination.k8s.io",
                namespace="kube-system",
                user="system:kube-controller-manager",
            ),
        ),
    ),
    Control(
        id="incomplete-request",
        title="Requests whose completion was never logged",
        detects="Requests with a RequestReceived or ResponseStarted event but no "
        "ResponseComplete or Panic: events dropped between stages. Failed authentications "
        "(401), which the apiserver logs only at ResponseStarted, are complete.",
        severity="medium",
        clauses=_clauses(cis=("1.2.16",), pci=("10.2.1.6",), soc2=("CC7.2",)),
        evidence=wd.Incomplete(),
        attack=("T1562.008",),
        excludes="requests younger than settings.stage_grace at the stream's end (long watches "
        "complete later)",
        stages=("RequestReceived", "ResponseComplete"),
        probes=(Probe("create", "configmaps", namespace="default", user=_SA, groups=_SA_GROUPS),),
    ),
    Control(
        id="missing-record-fields",
        title="Audit records missing required fields",
        detects="Events without a user (failed authentications excepted), verb, timestamp, "
        "source IP, request URI or (when complete) a response code: the record fields "
        "PCI-DSS 10.2.2 requires.",
        severity="medium",
        clauses=_clauses(pci=("10.2.2",), soc2=("CC7.2",)),
        evidence=wd.EveryEvent(_MISSING_ANY, _MISSING_DETAIL),
        attack=("T1562.008",),
        excludes="the user of failed authentications (there is none to record)",
        stages=(),
        probes=(Probe("get", "pods", namespace="default"),),
    ),
)


#: Refused or failed attempts at the most sensitive actions, each a finding of its own kind
#: (PCI-DSS 10.2.1.4 asks for invalid access attempts), next to the control of the action.
_ATTEMPTS: dict[str, Control] = {
    "pod-exec": _failed_twin(
        _POD_EXEC,
        title="Failed attempts at interactive access",
        detects="pods/exec, attach and portforward requests that were refused or failed "
        "(any code of 400 or more: forbidden, no such pod, kubelet unreachable).",
        evidence=where(ev.POD_EXEC & FAILED, _exec_detail()),
        excludes="nothing",
    ),
    "impersonation": _failed_twin(
        _IMPERSONATION,
        title="Refused impersonation",
        detects="Requests refused because the caller may not impersonate the identity it "
        "asked for, and impersonated requests that were refused.",
        evidence=where(
            ev.IMPERSONATION_REFUSED | (ev.IMPERSONATED & FAILED),
            pl.col(s.MESSAGE).str.slice(0, 200),
        ),
        excludes="nothing",
    ),
    "secret-read-by-human": _failed_twin(
        _SECRET_READ_HUMAN,
        title="Failed Secret reads",
        detects="get, list or watch of Secrets that were refused or failed (403, 404 for a "
        "guessed name, ...), by any identity.",
        evidence=where(ev.SECRET_READ & FAILED, pl.col(s.MESSAGE).str.slice(0, 200)),
        excludes="nothing",
        covers=_covers(
            "falco/k8s-secret-get-unsuccessfully-tried",
            "panther/kubernetes-secret-access-denied",
        ),
    ),
    "rbac-escalation": _failed_twin(
        _RBAC_ESCALATION,
        title="Refused RBAC escalation",
        detects="The RBAC writes rbac-escalation looks for, refused (forbidden, or the API "
        "server's escalation check: 'attempting to grant RBAC permissions not currently held').",
        evidence=wd.RbacEscalation(FAILED, exclude=pl.lit(value=False)),
        excludes="nothing",
    ),
}
_NODE_TWIN = "node-registration"


def _with_attempts(catalogue: tuple[Control, ...]) -> tuple[Control, ...]:
    out: list[Control] = []
    for ctrl in catalogue:
        out.append(ctrl)
        if ctrl.id in _ATTEMPTS:
            out.append(_ATTEMPTS[ctrl.id])
        if ctrl.id == _NODE_TWIN:
            out.append(
                _failed_twin(
                    ctrl,
                    title="Refused node registrations",
                    detects="Node objects whose creation was refused or failed (403, 409, "
                    "422): a machine trying to join the cluster.",
                    evidence=where(ev.NODE_CREATE & FAILED, pl.col(s.MESSAGE).str.slice(0, 200)),
                    excludes="nothing",
                    covers=_covers("falco/untrusted-node-unsuccessfully-tried-to-join-the-cluster"),
                )
            )
    return tuple(out)


CONTROLS: tuple[Control, ...] = _with_attempts(_CATALOGUE)


def control(control_id: str) -> Control:
    """The control with this id.

    Raises
    ------
    KeyError
        When no control has that id.

    Examples
    --------
    >>> from kaudit_analytics.compliance import control
    >>> control("pod-exec").title
    'Interactive access to containers'
    """
    for candidate in CONTROLS:
        if candidate.id == control_id:
            return candidate
    msg = f"no control {control_id!r}"
    raise KeyError(msg)


def severity_at_least(severity: Severity | None, threshold: Severity) -> bool:
    """Whether ``severity`` is ``threshold`` or worse (None, for no finding, never is).

    Examples
    --------
    >>> from kaudit_analytics.compliance import severity_at_least
    >>> severity_at_least("critical", "high"), severity_at_least("low", "high")
    (True, False)
    """
    return severity is not None and SEVERITIES.index(severity) >= SEVERITIES.index(threshold)
