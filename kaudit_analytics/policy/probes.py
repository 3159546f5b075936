"""Probe requests: typical API traffic as (label, attributes), evaluated against policies.

Lint uses them to check CIS 3.2.2 coverage and the exec-over-WebSocket blind spot; the
volume estimate uses them to name traffic a candidate logs but the observed policy never
did (that traffic is missing from the data, so the estimate is a lower bound).
"""

from __future__ import annotations

from typing import NamedTuple

from kaudit_analytics.policy.evaluate import evaluate_request
from kaudit_analytics.policy.rules import RequestAttributes, RuleSet

__all__ = ["CIS_PROBES", "PROBES", "never_logged_probes"]


class _Who(NamedTuple):
    user: str
    groups: tuple[str, ...]


_HUMAN = _Who("alice@example.com", ("system:authenticated", "developers"))
_SA = _Who(
    "system:serviceaccount:ci:deployer",
    ("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"),
)
_NODE = _Who("system:node:node-1", ("system:nodes", "system:authenticated"))
_CONTROLLER = _Who("system:kube-controller-manager", ("system:authenticated",))
_PROXY = _Who("system:kube-proxy", ("system:authenticated",))
_ANONYMOUS = _Who("system:anonymous", ("system:unauthenticated",))


def _r(
    who: _Who,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str = "default",
    name: str = "x",
    subresource: str = "",
) -> RequestAttributes:
    path = "/api/v1" if group == "" else f"/apis/{group}/v1"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += (
        f"/{resource}" + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")
    )
    return RequestAttributes(
        user=who.user,
        groups=who.groups,
        verb=verb,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        path=path,
    )


def _nr(who: _Who, path: str) -> RequestAttributes:
    return RequestAttributes(
        user=who.user,
        groups=who.groups,
        verb="get",
        resource_request=False,
        path=path,
    )


#: CIS 3.2.2 "Ensure that the audit policy covers key security concerns": each probe must
#: be logged (at least Metadata). Key: what the control asks for.
CIS_PROBES: tuple[tuple[str, RequestAttributes], ...] = (
    ("get secret", _r(_HUMAN, "get", "secrets")),
    ("list secrets", _r(_HUMAN, "list", "secrets", name="")),
    ("create pod", _r(_HUMAN, "create", "pods", name="")),
    ("delete pod", _r(_HUMAN, "delete", "pods")),
    ("patch deployment", _r(_SA, "patch", "deployments", group="apps")),
    ("create deployment", _r(_SA, "create", "deployments", group="apps", name="")),
    ("exec into pod (POST)", _r(_HUMAN, "create", "pods", subresource="exec")),
    ("exec into pod (WebSocket GET)", _r(_HUMAN, "get", "pods", subresource="exec")),
    ("attach to pod", _r(_HUMAN, "create", "pods", subresource="attach")),
    ("port-forward to pod", _r(_HUMAN, "create", "pods", subresource="portforward")),
    ("port-forward (WebSocket GET)", _r(_HUMAN, "get", "pods", subresource="portforward")),
    ("proxy to pod", _r(_HUMAN, "get", "pods", subresource="proxy")),
    ("proxy to service", _r(_HUMAN, "get", "services", subresource="proxy")),
)

#: Everyday traffic of a cluster, for "what would the candidate log that we never saw".
PROBES: tuple[tuple[str, RequestAttributes], ...] = (
    *CIS_PROBES,
    ("kubelet get node", _r(_NODE, "get", "nodes", namespace="", name="node-1")),
    (
        "kubelet update node status",
        _r(_NODE, "patch", "nodes", namespace="", name="node-1", subresource="status"),
    ),
    (
        "kubelet renew lease",
        _r(
            _NODE,
            "update",
            "leases",
            group="coordination.k8s.io",
            namespace="kube-node-lease",
            name="node-1",
        ),
    ),
    ("kubelet watch secret", _r(_NODE, "watch", "secrets")),
    (
        "kube-proxy watch endpointslices",
        _r(
            _PROXY,
            "watch",
            "endpointslices",
            group="discovery.k8s.io",
            namespace="",
            name="",
        ),
    ),
    ("controller get configmap", _r(_CONTROLLER, "get", "configmaps", namespace="kube-system")),
    ("controller create event", _r(_CONTROLLER, "create", "events", name="")),
    (
        "controller update lease",
        _r(
            _CONTROLLER,
            "update",
            "leases",
            group="coordination.k8s.io",
            namespace="kube-system",
            name="kube-controller-manager",
        ),
    ),
    (
        "create tokenreview",
        _r(
            _CONTROLLER,
            "create",
            "tokenreviews",
            group="authentication.k8s.io",
            namespace="",
            name="",
        ),
    ),
    (
        "create rolebinding",
        _r(_HUMAN, "create", "rolebindings", group="rbac.authorization.k8s.io", name=""),
    ),
    (
        "update clusterrole",
        _r(_HUMAN, "update", "clusterroles", group="rbac.authorization.k8s.io", namespace=""),
    ),
    (
        "update validating webhook",
        _r(
            _SA,
            "update",
            "validatingwebhookconfigurations",
            group="admissionregistration.k8s.io",
            namespace="",
        ),
    ),
    (
        "create CRD",
        _r(
            _SA,
            "create",
            "customresourcedefinitions",
            group="apiextensions.k8s.io",
            namespace="",
            name="",
        ),
    ),
    ("human get configmap", _r(_HUMAN, "get", "configmaps")),
    ("human list pods", _r(_HUMAN, "list", "pods", name="")),
    ("read pod logs", _r(_HUMAN, "get", "pods", subresource="log")),
    (
        "anonymous healthz",
        _nr(_ANONYMOUS, "/healthz"),
    ),
    ("metrics scrape", _nr(_SA, "/metrics")),
    ("discovery /apis", _nr(_HUMAN, "/apis")),
    (
        "failed login",
        RequestAttributes(
            user=None,
            verb="get",
            namespace="default",
            resource="pods",
            path="/api/v1/namespaces/default/pods",
        ),
    ),
)


def never_logged_probes(observed: RuleSet, candidate: RuleSet) -> tuple[str, ...]:
    """Probe labels the observed policy drops (level None) and the candidate logs."""
    return tuple(
        label
        for label, attrs in PROBES
        if evaluate_request(observed, attrs).level == "None"
        and evaluate_request(candidate, attrs).level != "None"
    )
