"""The controls catalogue, as data: what each control detects and what it needs.

A ``Control`` names what it detects, how severe a finding is, which framework clauses it
supports, what the audit log must contain for it to be assessable (level, stages, the
requests in scope, probe requests for policy coverage) and one evidence query (from
``evidence``) that selects its findings. ``CONTROLS`` is the catalogue; adding a control is
one entry there, one query and one fixture.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from kaudit_analytics import exprs
from kaudit_analytics import schema as s
from kaudit_analytics.compliance import evidence as ev
from kaudit_analytics.compliance.evidence import EvidenceQuery

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
        evidence=_W(ev.SECRET_READ & ev.HUMAN & exprs.NOT_FAILED),
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
            & exprs.NOT_FAILED
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
        evidence=_W(ev.POD_EXEC & exprs.NOT_FAILED),
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
        evidence=_W(ev.PROXY & ~ev.MACHINERY & exprs.NOT_FAILED),
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
        evidence=_W(ev.RBAC_WRITE & ~ev.MACHINERY & exprs.NOT_FAILED),
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
            & exprs.NOT_FAILED,
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
            & exprs.NOT_FAILED,
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
            & exprs.NOT_FAILED
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
        evidence=_W(ev.WEBHOOK_WRITE & ~ev.MACHINERY & exprs.NOT_FAILED),
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
        evidence=_W(ev.CRD_WRITE & ~ev.MACHINERY & exprs.NOT_FAILED),
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
        evidence=_W(ev.AUDIT_CONFIG_WRITE & exprs.NOT_FAILED),
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
        evidence=_W(ev.CLUSTER_SCOPED_CREATE_DELETE & ~ev.MACHINERY & exprs.NOT_FAILED),
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
        evidence=_W(ev.KUBE_SYSTEM_WRITE & ~ev.MACHINERY & exprs.NOT_FAILED),
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
            ev.POD_SPEC_WRITE & exprs.NOT_FAILED, ev.PRIVILEGED_NAMES, refine=ev.PRIVILEGED_BODY
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
