"""Compliance controls over the events table, as data.

A ``Control`` names what it detects, how severe a finding is, which framework clauses it
supports (CIS Kubernetes Benchmark, PCI-DSS v4 requirement 10, SOC 2, HIPAA 164.312(b),
ISO/IEC 27001:2022 A.8.15), what the audit log must contain for it to be assessable (level,
stages, the requests in scope), and one evidence query that selects its findings from the
events. ``CONTROLS`` is the catalogue; adding a control is one entry there and one test.

For a window of events a control is ``pass``, ``fail`` (with a finding count and the
control's severity) or ``not assessable`` with a reason - never a silent pass: a control
passes only when the events it needs were logged at the level it needs. Given an audit
policy, ``policy_coverage`` evaluates each control's probe requests under it and says which
controls the policy can support at all.

Evidence rows (``EVIDENCE_SCHEMA``) say who, what, when, where from and with what outcome,
and carry ``source_file``/``source_line`` back to the raw log line. No request or response
body ever reaches them.

Everything here is lazy: ``evidence`` and ``observations`` return LazyFrames and
``decide`` turns their (small) collected results into ``ControlResult`` values;
``kaudit_analytics.report.assess`` is the edge that collects.

Examples
--------
>>> from kaudit_analytics.compliance import CONTROLS, control
>>> len(CONTROLS) >= 20
True
>>> c = control("privileged-pod")
>>> c.level, c.severity
('Request', 'high')
>>> sorted({clause.framework for clause in c.clauses})
['CIS Kubernetes Benchmark', 'HIPAA', 'ISO/IEC 27001:2022', 'PCI-DSS v4', 'SOC 2']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import polars as pl

from kaudit_analytics import _compliance_evidence as ev
from kaudit_analytics import schema as s
from kaudit_analytics._compliance_evidence import Context, EvidenceQuery, Settings, Window

__all__ = [
    "CONTROLS",
    "EVIDENCE_SCHEMA",
    "FRAMEWORKS",
    "SEVERITIES",
    "STATUSES",
    "Clause",
    "Context",
    "Control",
    "ControlResult",
    "Coverage",
    "EvidenceQuery",
    "Probe",
    "Settings",
    "Severity",
    "Status",
    "Window",
    "control",
    "control_evidence",
    "decide",
    "evidence",
    "observation_counts",
    "observations",
    "observations_from_counts",
    "order_evidence",
    "policy_coverage",
    "prepare",
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


_SA = "system:serviceaccount:default:app"
_SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")


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


@dataclass(frozen=True, eq=False)
class Control:
    """One compliance control: metadata, what it needs, and its evidence query.

    ``level`` is the lowest audit level at which ``scope`` (the requests the control reads)
    must be logged; ``stages`` the stages that must not be omitted. ``probes`` are the same
    requirement in the policy's terms.
    """

    id: str
    title: str
    detects: str
    severity: Severity
    clauses: tuple[Clause, ...]
    evidence: EvidenceQuery
    probes: tuple[Probe, ...]
    scope: pl.Expr | None = None
    scope_label: str = "events"
    level: str = "Metadata"
    stages: tuple[str, ...] = ("ResponseComplete",)
    needs_baseline: bool = False


_W = ev.where

CONTROLS: tuple[Control, ...] = (
    Control(
        id="secret-read-by-human",
        title="Secret reads by humans",
        detects="get, list or watch of Secrets by a person (not a service account or node).",
        severity="medium",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC6.1", "CC7.2")),
        evidence=_W(ev.SECRET_READ & ev.HUMAN & ev.SUCCEEDED),
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(Probe("get", "secrets", namespace="default", name="db"),),
    ),
    Control(
        id="secret-list-all-namespaces",
        title="Secrets listed across all namespaces",
        detects="list or watch of Secrets cluster-wide by anyone but the cluster's own "
        "control plane, nodes and kube-system controllers.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC6.1", "CC7.2")),
        evidence=_W(
            ev.SECRET_READ
            & pl.col(s.VERB).is_in(("list", "watch"))
            & pl.col(s.NAMESPACE).is_null()
            & ~ev.MACHINERY
            & ev.SUCCEEDED
        ),
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(Probe("list", "secrets"), Probe("list", "secrets", user=_SA, groups=_SA_GROUPS)),
    ),
    Control(
        id="secret-read-burst",
        title="Bursts of Secret reads by one identity",
        detects="One identity reading Secrets many times within a few minutes "
        "(Settings.secret_burst within Settings.burst_window).",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.1",), soc2=("CC7.2", "CC7.3")),
        evidence=ev.secret_read_bursts,
        scope=ev.SECRET_READ,
        scope_label="Secret reads",
        probes=(
            Probe("get", "secrets", namespace="default", name="db"),
            Probe("get", "secrets", namespace="default", name="db", user=_SA, groups=_SA_GROUPS),
        ),
    ),
    Control(
        id="pod-exec",
        title="Interactive access to containers",
        detects="pods/exec, pods/attach and pods/portforward, by create or by WebSocket get.",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC6.1", "CC6.8", "CC7.2")),
        evidence=_W(ev.POD_EXEC & ev.SUCCEEDED),
        scope=ev.POD_EXEC,
        scope_label="exec/attach/portforward requests",
        probes=(
            Probe("create", "pods", "exec", namespace="default", name="web"),
            Probe("get", "pods", "exec", namespace="default", name="web"),
            Probe("create", "pods", "attach", namespace="default", name="web"),
            Probe("create", "pods", "portforward", namespace="default", name="web"),
        ),
    ),
    Control(
        id="proxy-access",
        title="API server proxy to nodes, services and pods",
        detects="nodes/proxy, services/proxy and pods/proxy: direct access to kubelets "
        "(including their logs) and to workloads through the API server.",
        severity="medium",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.3"), soc2=("CC6.1", "CC6.6")),
        evidence=_W(ev.PROXY & ~ev.MACHINERY & ev.SUCCEEDED),
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
        "plane, nodes and kube-system controllers.",
        severity="medium",
        clauses=_clauses(
            cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.2", "CC6.3", "CC8.1")
        ),
        evidence=_W(ev.RBAC_WRITE & ~ev.MACHINERY & ev.SUCCEEDED),
        scope=ev.RBAC_WRITE,
        scope_label="RBAC writes",
        probes=(
            Probe("create", "clusterrolebindings", api_group="rbac.authorization.k8s.io"),
            Probe("patch", "roles", api_group="rbac.authorization.k8s.io", namespace="default"),
        ),
    ),
    Control(
        id="rbac-escalation",
        title="Privilege escalation through RBAC",
        detects="Bindings to cluster-admin or system:masters, roles with wildcard verbs, "
        "resources or API groups, roles granting escalate, bind or impersonate, and bindings "
        "to such roles (when the role was written in the same window).",
        severity="critical",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.3", "CC8.1")),
        evidence=ev.rbac_escalations,
        scope=ev.RBAC_CHANGE,
        scope_label="RBAC create/update/patch requests",
        level="Request",
        probes=(
            Probe("create", "clusterrolebindings", api_group="rbac.authorization.k8s.io"),
            Probe(
                "create", "rolebindings", api_group="rbac.authorization.k8s.io", namespace="default"
            ),
            Probe("update", "clusterroles", api_group="rbac.authorization.k8s.io", name="edit"),
        ),
    ),
    Control(
        id="impersonation",
        title="Impersonation",
        detects="Requests made as another user or group (Impersonate-User/-Group headers).",
        severity="high",
        clauses=_clauses(pci=("10.2.1.2", "10.2.1.5"), soc2=("CC6.1", "CC6.3")),
        evidence=_W(
            (
                pl.col(s.IMPERSONATED_USER).is_not_null()
                | (pl.col(s.IMPERSONATED_GROUPS).list.len().fill_null(0) > 0)
            )
            & ev.SUCCEEDED,
            pl.format("as {}", pl.col(s.IMPERSONATED_USER).fill_null("(groups only)")),
        ),
        scope_label="events",
        probes=(Probe("get", "pods", namespace="default", name="web"),),
    ),
    Control(
        id="anonymous-allowed",
        title="Anonymous requests that were allowed",
        detects="Requests by system:anonymous or system:unauthenticated that succeeded, "
        "other than the public health and version endpoints.",
        severity="critical",
        clauses=_clauses(cis=("1.2.1",), pci=("10.2.1.4",), soc2=("CC6.1", "CC6.6")),
        evidence=_W(
            ev.ANONYMOUS
            & ((pl.col(s.AUTHZ_DECISION) == "allow") | pl.col(s.CODE).is_between(100, 399))
            & ~pl.col(s.REQUEST_URI).str.contains(ev.HEALTH_PATHS).fill_null(value=False)
        ),
        scope=ev.ANONYMOUS,
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
        evidence=ev.denied_by_identity,
        probes=_DENIED_PROBES,
    ),
    Control(
        id="denied-burst",
        title="Bursts of denied requests",
        detects="Many 401/403 responses for one identity and source IP within a few minutes "
        "(Settings.auth_failure_burst within Settings.burst_window): guessing or scanning.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.4",), soc2=("CC6.6", "CC7.2", "CC7.3")),
        evidence=ev.denied_bursts,
        probes=_DENIED_PROBES,
    ),
    Control(
        id="sa-token-created",
        title="Service-account tokens created",
        detects="TokenRequests (serviceaccounts/token) by anyone but kubelets, and Secrets of "
        "type kubernetes.io/service-account-token (the latter needs Request level).",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.2",)),
        evidence=_W(
            (ev.SA_TOKEN | (ev.SECRETS & (pl.col(s.VERB) == "create")))
            & ~ev.MACHINERY
            & ev.SUCCEEDED,
            refine=ev.SA_TOKEN | pl.col(s.REQUEST_OBJECT).str.contains(ev.SA_TOKEN_SECRET_BODY),
        ),
        scope=ev.SA_TOKEN,
        scope_label="TokenRequests",
        probes=(Probe("create", "serviceaccounts", "token", namespace="default", name="app"),),
    ),
    Control(
        id="csr-activity",
        title="Certificate signing requests created or approved",
        detects="CertificateSigningRequests created by anyone but nodes, and approvals by "
        "anyone but the controller manager: new cluster credentials.",
        severity="high",
        clauses=_clauses(pci=("10.2.1.5",), soc2=("CC6.2", "CC6.3")),
        evidence=_W(
            ev.CSR_WRITE
            & (
                ((pl.col(s.VERB) == "create") & ev.NO_SUBRESOURCE)
                | (
                    (pl.col(s.SUBRESOURCE) == "approval")
                    & pl.col(s.VERB).is_in(("update", "patch"))
                )
            )
            & ~ev.MACHINERY
            & ev.SUCCEEDED
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
        evidence=_W(ev.WEBHOOK_WRITE & ~ev.MACHINERY & ev.SUCCEEDED),
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
        evidence=_W(ev.CRD_WRITE & ~ev.MACHINERY & ev.SUCCEEDED),
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
        evidence=_W(ev.AUDIT_CONFIG_WRITE & ev.SUCCEEDED),
        scope=ev.AUDIT_CONFIG_WRITE,
        scope_label="audit configuration writes",
        probes=(Probe("update", "configmaps", namespace="kube-system", name="audit-policy"),),
    ),
    Control(
        id="cluster-scoped-create-delete",
        title="Cluster-scoped objects created or deleted",
        detects="create/delete of system-level (cluster-scoped) objects such as namespaces, "
        "nodes, ClusterRoles, StorageClasses, by anyone but the control plane and nodes.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.7",), soc2=("CC8.1",)),
        evidence=_W(ev.CLUSTER_SCOPED_CREATE_DELETE & ~ev.MACHINERY & ev.SUCCEEDED),
        scope=ev.CLUSTER_SCOPED_CREATE_DELETE,
        scope_label="cluster-scoped creates/deletes",
        probes=(Probe("create", "namespaces"), Probe("delete", "namespaces", name="team-a")),
    ),
    Control(
        id="kube-system-change",
        title="Changes in kube-system",
        detects="Writes in the kube-system namespace by anyone but the control plane, nodes "
        "and kube-system's own controllers (leases and Events excepted: heartbeats, not "
        "configuration).",
        severity="high",
        clauses=_clauses(cis=("3.2.2",), pci=("10.2.1.2",), soc2=("CC8.1",)),
        evidence=_W(ev.KUBE_SYSTEM_WRITE & ~ev.MACHINERY & ev.SUCCEEDED),
        scope=ev.KUBE_SYSTEM_WRITE,
        scope_label="kube-system writes",
        probes=(
            Probe(
                "patch", "daemonsets", api_group="apps", namespace="kube-system", name="kube-proxy"
            ),
            Probe("create", "pods", namespace="kube-system"),
        ),
    ),
    Control(
        id="privileged-pod",
        title="Privileged and host-access pods",
        detects="Pods and workload templates with privileged containers, hostPath volumes, "
        "hostNetwork, hostPID or hostIPC (read from request bodies).",
        severity="high",
        clauses=_clauses(
            cis=("3.2.2", "5.2.2", "5.2.3", "5.2.4", "5.2.5"),
            pci=("10.2.1.2",),
            soc2=("CC6.8", "CC8.1"),
        ),
        evidence=_W(
            ev.POD_SPEC_WRITE & ev.SUCCEEDED, ev.PRIVILEGED_NAMES, refine=ev.PRIVILEGED_BODY
        ),
        scope=ev.POD_SPEC_WRITE,
        scope_label="pod creates and workload writes",
        level="Request",
        probes=(
            Probe("create", "pods", namespace="default"),
            Probe("create", "deployments", api_group="apps", namespace="default"),
            Probe(
                "create",
                "pods",
                namespace="default",
                user="system:serviceaccount:kube-system:replicaset-controller",
                groups=("system:serviceaccounts", "system:authenticated"),
            ),
        ),
    ),
    Control(
        id="pod-security-violation",
        title="Pod Security admission violations",
        detects="Requests the Pod Security admission controller flagged "
        "(pod-security.kubernetes.io/audit-violations) or refused.",
        severity="medium",
        clauses=_clauses(cis=("5.2.1",), soc2=("CC6.8", "CC7.2")),
        evidence=_W(ev.PSA_VIOLATION, ev.PSA_DETAIL),
        probes=(Probe("create", "pods", namespace="default"),),
    ),
    Control(
        id="off-hours-human",
        title="Human activity outside working hours",
        detects="Requests by people outside Settings.working_hours and working_days "
        "(Settings.timezone); one finding per person and day.",
        severity="low",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC7.2",)),
        evidence=ev.off_hours_humans,
        scope=ev.HUMAN,
        scope_label="human requests",
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="new-agent-or-address",
        title="New user agents and source IPs for a person",
        detects="A user agent or source IP that a known person did not use in the previous "
        "window of the same length.",
        severity="medium",
        clauses=_clauses(pci=("10.2.1.2",), soc2=("CC6.1", "CC7.2")),
        evidence=ev.new_agents_and_addresses,
        scope=ev.HUMAN,
        scope_label="human requests",
        needs_baseline=True,
        probes=(Probe("get", "pods", namespace="default"),),
    ),
    Control(
        id="audit-gap",
        title="Gaps in the audit trail",
        detects="Silences longer than Settings.gap_threshold in a cluster's event stream, "
        "including at the window's edges: logging stopped or events were lost.",
        severity="high",
        clauses=_clauses(cis=("1.2.16", "3.2.1"), pci=("10.2.1.6",), soc2=("CC7.2",)),
        evidence=ev.stream_gaps,
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
        evidence=ev.incomplete_requests,
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
        evidence=ev.missing_record_fields,
        stages=(),
        probes=(Probe("get", "pods", namespace="default"),),
    ),
)


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


# --------------------------------------------------------------------------- evidence

EVIDENCE_SCHEMA = pl.Schema(
    {
        "control": pl.String(),
        "severity": pl.String(),
        "when": pl.Datetime("us", "UTC"),
        "who": pl.String(),
        "what": pl.String(),
        "where": pl.String(),
        "outcome": pl.String(),
        "detail": pl.String(),
        s.CLUSTER: pl.String(),
        s.NAMESPACE: pl.String(),
        s.USER_AGENT: pl.String(),
        s.AUDIT_ID: pl.String(),
        s.SOURCE_FILE: pl.String(),
        s.SOURCE_LINE: pl.Int64(),
    }
)

_WHO = pl.concat_str(
    pl.col(s.USER).fill_null("<unknown>"),
    pl.when(pl.col(s.IMPERSONATED_USER).is_not_null()).then(
        pl.lit(" as ") + pl.col(s.IMPERSONATED_USER)
    ),
    ignore_nulls=True,
)
_WHAT = pl.concat_str(
    pl.col(s.VERB).fill_null("?"), pl.lit(" "), pl.col(s.REQUEST_URI).fill_null("?")
)
_OUTCOME = pl.concat_str(
    pl.col(s.CODE).cast(pl.String).fill_null("no code"),
    pl.when(pl.col(s.AUTHZ_DECISION).is_not_null()).then(
        pl.lit(" (") + pl.col(s.AUTHZ_DECISION) + pl.lit(")")
    ),
    ignore_nulls=True,
)


def prepare(events: pl.LazyFrame, window: Window | None = None) -> pl.LazyFrame:
    """The events of ``window`` as the controls read them, shared columns derived once.

    ``control_evidence``, ``evidence`` and ``observations`` call this themselves unless told
    the events are ``prepared``; a report collects it once per window and runs every control
    over that frame.

    Examples
    --------
    >>> from kaudit_analytics.compliance import prepare
    >>> from kaudit_analytics.schema import empty_events
    >>> "_actor" in prepare(empty_events().lazy()).collect_schema().names()
    True
    """
    return ev.prepare(events, window)


def _prepared(events: pl.LazyFrame, ctx: Context, prepared: bool) -> tuple[pl.LazyFrame, Context]:
    if prepared:
        return events, ctx
    baseline = None if ctx.baseline is None else ev.prepare(ctx.baseline, None)
    return ev.prepare(events, ctx.window), dataclasses.replace(ctx, baseline=baseline)


def control_evidence(
    events: pl.LazyFrame, ctrl: Control, ctx: Context, *, prepared: bool = False
) -> pl.LazyFrame:
    """The findings of one control over the window's events, in ``EVIDENCE_SCHEMA``.

    Parameters
    ----------
    events
        The events table; rows outside ``ctx.window`` are ignored.
    ctrl
        The control.
    ctx
        The window, settings and (for first-seen controls) the baseline events.
    prepared
        ``events`` (and ``ctx.baseline``) already went through ``prepare``.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Context, Window, control, control_evidence
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> found = control_evidence(empty_events().lazy(), control("pod-exec"), Context(window))
    >>> found.collect().shape
    (0, 14)
    """
    rows, ctx = _prepared(events, ctx, prepared)
    return (
        ctrl.evidence(rows, ctx)
        .select(
            pl.lit(ctrl.id, dtype=pl.String).alias("control"),
            pl.lit(ctrl.severity, dtype=pl.String).alias("severity"),
            pl.col(s.REQUEST_TS).alias("when"),
            _WHO.alias("who"),
            _WHAT.alias("what"),
            pl.col(s.SOURCE_IPS).list.first().alias("where"),
            _OUTCOME.alias("outcome"),
            pl.col(ev.DETAIL),
            pl.col(s.CLUSTER),
            pl.col(s.NAMESPACE),
            pl.col(s.USER_AGENT),
            pl.col(s.AUDIT_ID),
            pl.col(s.SOURCE_FILE),
            pl.col(s.SOURCE_LINE),
        )
        .cast(EVIDENCE_SCHEMA)
    )


def evidence(
    events: pl.LazyFrame,
    ctx: Context,
    controls: Iterable[Control] = CONTROLS,
    *,
    prepared: bool = False,
) -> pl.LazyFrame:
    """All controls' findings, in catalogue order then time order.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Context, Window, evidence
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> evidence(empty_events().lazy(), Context(window)).collect().height
    0
    """
    rows, ctx = _prepared(events, ctx, prepared)
    frames = [control_evidence(rows, c, ctx, prepared=True) for c in controls]
    if not frames:
        return pl.LazyFrame(schema=EVIDENCE_SCHEMA)
    return order_evidence(pl.concat(frames))


def order_evidence(found: pl.LazyFrame) -> pl.LazyFrame:
    """Findings in report order: catalogue order of the controls, then time order.

    ``evidence`` returns them so; an engine that gathers findings from several workers
    orders the union with this.

    Examples
    --------
    >>> from kaudit_analytics.compliance import EVIDENCE_SCHEMA, order_evidence
    >>> import polars as pl
    >>> order_evidence(pl.LazyFrame(schema=EVIDENCE_SCHEMA)).collect().width
    14
    """
    order = {c.id: i for i, c in enumerate(CONTROLS)}
    return (
        found.with_columns(
            pl.col("control").replace_strict(order, default=len(order)).alias("_order")
        )
        .sort("_order", "when", s.SOURCE_FILE, s.SOURCE_LINE, s.AUDIT_ID, "detail", nulls_last=True)
        .drop("_order")
    )


# --------------------------------------------------------------------------- assessability


def _level_rank(level: str) -> int:
    return s.LEVELS.index(level)


def observations(
    events: pl.LazyFrame,
    window: Window,
    controls: Iterable[Control] = CONTROLS,
    *,
    prepared: bool = False,
) -> pl.LazyFrame:
    """One row saying what the window's events can support: a single pass over them.

    Columns: ``events``; ``stage:<Stage>`` (events per stage); for each control with a
    scope, ``<id>:scope`` (in-scope events), ``<id>:below`` (in-scope events logged below the
    control's level) and ``<id>:below_level`` (the highest such level, as a string).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window, observations
    >>> from kaudit_analytics.schema import empty_events
    >>> day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> window = Window(day, day + dt.timedelta(days=1))
    >>> observations(empty_events().lazy(), window).collect()["events"].to_list()
    [0]
    """
    rows = events if prepared else ev.prepare(events, window)
    return observations_from_counts(observation_counts(rows, controls), controls)


def _scoped(controls: Iterable[Control]) -> list[Control]:
    return [ctrl for ctrl in controls if ctrl.scope is not None]


def observation_counts(
    prepared: pl.LazyFrame, controls: Iterable[Control] = CONTROLS
) -> pl.LazyFrame:
    """Prepared events counted (``_n``) per distinct value of the columns the scopes read.

    The first half of ``observations``, and additive: the counts of disjoint slices of the
    window, summed by the other columns, are the counts of the whole.

    Examples
    --------
    >>> from kaudit_analytics.compliance import observation_counts, prepare
    >>> from kaudit_analytics.schema import empty_events
    >>> "_n" in observation_counts(prepare(empty_events().lazy())).collect_schema().names()
    True
    """
    scoped = _scoped(controls)
    # Count once per distinct combination of the columns the scopes read (a few thousand
    # rows even for millions of events), then evaluate every scope on those counts.
    keys = sorted(
        {s.LEVEL, s.STAGE}.union(
            *(ctrl.scope.meta.root_names() for ctrl in scoped if ctrl.scope is not None)
        )
    )
    return prepared.group_by(keys).agg(pl.len().alias("_n"))


def observations_from_counts(
    counts: pl.LazyFrame, controls: Iterable[Control] = CONTROLS
) -> pl.LazyFrame:
    """``observations`` from ``observation_counts`` (of the window, or of slices of it)."""
    n = pl.col("_n")
    level = pl.col(s.LEVEL).to_physical()
    columns: list[pl.Expr] = [n.sum().cast(pl.Int64).alias("events")]
    columns += [
        n.filter(pl.col(s.STAGE).cast(pl.String) == stage)
        .sum()
        .cast(pl.Int64)
        .alias(f"stage:{stage}")
        for stage in s.STAGES
    ]
    for ctrl in _scoped(controls):
        assert ctrl.scope is not None  # for the type checker: filtered above
        scope = ctrl.scope.fill_null(value=False)
        below = scope & (level < _level_rank(ctrl.level))
        columns += [
            n.filter(scope).sum().cast(pl.Int64).alias(f"{ctrl.id}:scope"),
            n.filter(below).sum().cast(pl.Int64).alias(f"{ctrl.id}:below"),
            level.filter(below).max().cast(pl.Int64).alias(f"{ctrl.id}:below_level"),
        ]
    return counts.select(columns)


# --------------------------------------------------------------------------- policy coverage

Support = Literal["full", "partial", "none"]


@dataclass(frozen=True)
class Coverage:
    """Whether an audit policy logs what a control needs."""

    control: str
    support: Support
    reason: str


class _AuditConfig(Protocol):
    @property
    def level(self) -> str: ...
    @property
    def omit_stages(self) -> frozenset[str]: ...


class _Policy(Protocol):
    def evaluate_request(self, attrs: Any, /) -> _AuditConfig: ...


def _probe_gap(ctrl: Control, probe: Probe, cfg: _AuditConfig) -> str | None:
    """Why the policy's decision for ``probe`` falls short of ``ctrl``, or None."""
    if cfg.level == "None":
        return f"{probe.describe()} is not logged at all"
    if _level_rank(cfg.level) < _level_rank(ctrl.level):
        return f"{probe.describe()} is logged at {cfg.level}; {ctrl.title} needs {ctrl.level}"
    omitted = sorted(set(ctrl.stages) & set(cfg.omit_stages))
    if omitted:
        return f"{probe.describe()} omits stage {', '.join(omitted)}, which {ctrl.title} needs"
    return None


def policy_coverage(
    policy: _Policy, controls: Iterable[Control] = CONTROLS
) -> tuple[Coverage, ...]:
    """Which controls an audit policy can support: each control's probes, evaluated.

    ``full`` when every probe is logged at the control's level with its stages, ``partial``
    when some are, ``none`` otherwise; the reason names the first probe that falls short.

    Parameters
    ----------
    policy
        A policy from ``kaudit_analytics.policy.load_policy``.
    controls
        The controls to check.

    Examples
    --------
    >>> from kaudit_analytics.policy import load_policy
    >>> from kaudit_analytics.compliance import policy_coverage
    >>> policy = load_policy(
    ...     "apiVersion: audit.k8s.io/v1\\nkind: Policy\\nrules:\\n- level: Metadata\\n"
    ... )
    >>> {c.control: c.support for c in policy_coverage(policy)}["privileged-pod"]
    'none'
    """
    # Imported here: policy is a sibling module, and the catalogue must not need it to load.
    from kaudit_analytics.policy import RequestAttributes

    rows = []
    for ctrl in controls:
        gaps = [
            _probe_gap(ctrl, probe, policy.evaluate_request(RequestAttributes(**vars(probe))))
            for probe in ctrl.probes
        ]
        short = [gap for gap in gaps if gap is not None]
        support: Support = "full" if not short else "partial" if len(short) < len(gaps) else "none"
        reason = short[0] if short else f"all {len(gaps)} probe request(s) logged as needed"
        rows.append(Coverage(ctrl.id, support, reason))
    return tuple(rows)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class ControlResult:
    """The outcome of one control over one window."""

    control: str
    status: Status
    findings: int
    #: The control's severity when it fails; None otherwise.
    severity: Severity | None
    #: Why it is not assessable, or what a pass or fail rests on.
    reason: str


def _unassessable(
    ctrl: Control,
    observed: Mapping[str, Any],
    coverage: Coverage | None,
    baseline_events: int | None,
) -> str | None:
    missing = [stage for stage in ctrl.stages if not observed.get(f"stage:{stage}")]
    if missing:
        return (
            f"no {', '.join(missing)} events in the window (the policy omits the stage); "
            f"{ctrl.title} needs them"
        )
    if ctrl.needs_baseline and not baseline_events:
        return "no events in the previous window to compare with"
    below = int(observed.get(f"{ctrl.id}:below") or 0)
    if below:
        scope = int(observed.get(f"{ctrl.id}:scope") or 0)
        level = s.LEVELS[int(observed[f"{ctrl.id}:below_level"])]
        share = "all" if below == scope else f"{below} of {scope}"
        return f"{share} {ctrl.scope_label} are logged at {level}; {ctrl.title} needs {ctrl.level}"
    if coverage is not None and coverage.support != "full":
        return f"under the given policy, {coverage.reason}"
    return None


def decide(
    controls: Iterable[Control],
    observed: Mapping[str, Any],
    findings: Mapping[str, int],
    *,
    coverage: Iterable[Coverage] = (),
    baseline_events: int | None = None,
) -> tuple[ControlResult, ...]:
    """Each control's result from the window's observations and finding counts.

    Findings always fail a control (they are real, whatever else is missing); without any, a
    control passes only when what it needs was observed and, given a policy, is logged by it.

    Parameters
    ----------
    controls
        The controls, in report order.
    observed
        The one row of ``observations`` as a mapping.
    findings
        Finding count per control id (absent means none).
    coverage
        ``policy_coverage`` rows, when a policy was given.
    baseline_events
        How many events the comparison window holds (first-seen controls need some).

    Examples
    --------
    >>> from kaudit_analytics.compliance import control, decide
    >>> result, = decide([control("pod-exec")], {"events": 0}, {})
    >>> result.status, result.reason
    ('not assessable', 'no audit events in the window')
    """
    by_control = {row.control: row for row in coverage}
    results = []
    for ctrl in controls:
        count = int(findings.get(ctrl.id, 0))
        total = int(observed.get("events") or 0)
        in_scope = int(observed.get(f"{ctrl.id}:scope") or 0) if ctrl.scope is not None else total
        gap = _unassessable(ctrl, observed, by_control.get(ctrl.id), baseline_events)
        if count:
            reason = f"{count} finding(s) in {in_scope} {ctrl.scope_label}"
            if gap:
                reason += f"; coverage is incomplete: {gap}"
            results.append(ControlResult(ctrl.id, "fail", count, ctrl.severity, reason))
        elif not total:
            results.append(
                ControlResult(ctrl.id, "not assessable", 0, None, "no audit events in the window")
            )
        elif gap:
            results.append(ControlResult(ctrl.id, "not assessable", 0, None, gap))
        else:
            reason = f"no findings in {in_scope} {ctrl.scope_label}"
            if not in_scope:
                # Nothing to look at: say what the pass rests on, so it is never silent.
                reason = (
                    f"no {ctrl.scope_label} in the window, and the given policy logs them"
                    if ctrl.id in by_control
                    else f"no {ctrl.scope_label} were logged in the window; give the audit "
                    "policy (--policy) to confirm they would be"
                )
            results.append(ControlResult(ctrl.id, "pass", 0, None, reason))
    return tuple(results)
