"""The synthetic cluster the sample generator talks about: identities, nodes, workloads.

Everything here is a fixed, seed-independent description (names, uids, who is bound to what),
so that two runs with different seeds still describe the same cluster and only the traffic
differs. Uids are derived from names with a stable hash (never Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import NamedTuple

from kaudit_analytics.sample.gojson import go_json, uuid4_from

__all__ = [
    "KUBE_VERSION",
    "Cluster",
    "Identity",
    "Node",
    "Pod",
    "Workload",
    "build_cluster",
    "stable_bits",
    "stable_uid",
]

KUBE_VERSION = "v1.30.4"
_KUBE_COMMIT = "a51b3b711150f57ffc1f526a640ec058514ed596"[:7]
_PLATFORM = "(linux/amd64) kubernetes/" + _KUBE_COMMIT


@lru_cache(maxsize=1 << 16)
def stable_bits(text: str, bits: int = 128) -> int:
    """A deterministic pseudo-random integer derived from ``text``.

    Examples
    --------
    >>> stable_bits("node-1") == stable_bits("node-1")
    True
    """
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") >> (128 - bits)


@lru_cache(maxsize=1 << 16)
def stable_uid(text: str) -> str:
    """A deterministic version-4 UUID for the object called ``text``.

    Examples
    --------
    >>> stable_uid("pods/default/nginx") == stable_uid("pods/default/nginx")
    True
    """
    return uuid4_from(stable_bits(text))


class Identity(NamedTuple):
    """Who sends a request: the authenticated ``user`` block of the event."""

    name: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]
    user_agent: str
    source_ip: str
    authz_reason: str
    json: str


def identity(
    name: str,
    groups: tuple[str, ...],
    *,
    uid: str = "",
    extra: dict[str, list[str]] | None = None,
    user_agent: str = "",
    source_ip: str = "",
    authz_reason: str = "",
) -> Identity:
    """Build an identity with its pre-rendered ``user`` JSON (Go field order, sorted extra)."""
    block: dict[str, object] = {}
    if name:
        block["username"] = name
    if uid:
        block["uid"] = uid
    if groups:
        block["groups"] = list(groups)
    if extra:
        block["extra"] = {key: extra[key] for key in sorted(extra)}
    frozen_extra = tuple((key, tuple(values)) for key, values in sorted((extra or {}).items()))
    return Identity(
        name, uid, groups, frozen_extra, user_agent, source_ip, authz_reason, go_json(block)
    )


class Node(NamedTuple):
    """A worker or control-plane node and the kubelet identity that speaks for it."""

    name: str
    uid: str
    ip: str
    kubelet: Identity
    kube_proxy: Identity


class Workload(NamedTuple):
    """A Deployment with its pods, service account and config."""

    namespace: str
    name: str
    image: str
    replicas: int
    template_hash: str
    service_account: Identity
    configmap: str
    secret: str


class Pod(NamedTuple):
    """One running pod of a workload, placed on a node."""

    namespace: str
    name: str
    uid: str
    ip: str
    workload: Workload
    node: Node


class Cluster(NamedTuple):
    """The whole synthetic cluster."""

    nodes: tuple[Node, ...]
    control_plane_ips: tuple[str, ...]
    workloads: tuple[Workload, ...]
    pods: tuple[Pod, ...]
    namespaces: tuple[str, ...]
    humans: tuple[Identity, ...]
    admins: tuple[Identity, ...]
    controllers: dict[str, Identity]
    system: dict[str, Identity]


def _rbac(binding: str, role: str, subject: str, *, namespaced: str = "") -> str:
    kind = (
        f'RoleBinding "{binding}/{namespaced}" of Role'
        if namespaced
        else (f'ClusterRoleBinding "{binding}" of ClusterRole')
    )
    return f'RBAC: allowed by {kind} "{role}" to {subject}'


def _service_account(
    namespace: str, name: str, *, user_agent: str, source_ip: str, node: str = "", pod: str = ""
) -> Identity:
    full = f"system:serviceaccount:{namespace}:{name}"
    extra: dict[str, list[str]] = {
        "authentication.kubernetes.io/credential-id": [f"JTI={stable_uid('jti/' + full)}"]
    }
    if node:
        extra["authentication.kubernetes.io/node-name"] = [node]
        extra["authentication.kubernetes.io/node-uid"] = [stable_uid("nodes/" + node)]
    if pod:
        extra["authentication.kubernetes.io/pod-name"] = [pod]
        extra["authentication.kubernetes.io/pod-uid"] = [stable_uid(f"pods/{namespace}/{pod}")]
    return identity(
        full,
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid=stable_uid("serviceaccounts/" + full),
        extra=extra,
        user_agent=user_agent,
        source_ip=source_ip,
        authz_reason=_rbac(
            f"{namespace}:{name}", f"{namespace}:{name}", f'ServiceAccount "{name}/{namespace}"'
        ),
    )


def _agent(binary: str, suffix: str = "") -> str:
    return f"{binary}/{KUBE_VERSION} {_PLATFORM}{suffix}"


_APPS: tuple[tuple[str, str, str, int], ...] = (
    ("web", "frontend", "registry.example.com/web/frontend:2.14.1", 4),
    ("web", "api", "registry.example.com/web/api:5.2.0", 6),
    ("web", "worker", "registry.example.com/web/worker:5.2.0", 3),
    ("payments", "payments-api", "registry.example.com/payments/api:1.9.3", 3),
    ("payments", "ledger", "registry.example.com/payments/ledger:0.31.0", 2),
    ("data", "ingest", "registry.example.com/data/ingest:3.0.7", 3),
    ("data", "redis", "docker.io/library/redis:7.2.5", 1),
    (
        "monitoring",
        "prometheus-operator",
        "quay.io/prometheus-operator/prometheus-operator:v0.75.1",
        1,
    ),
    (
        "monitoring",
        "kube-state-metrics",
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0",
        1,
    ),
    (
        "ingress-nginx",
        "ingress-nginx-controller",
        "registry.k8s.io/ingress-nginx/controller:v1.11.1",
        2,
    ),
    ("cert-manager", "cert-manager", "quay.io/jetstack/cert-manager-controller:v1.15.1", 1),
    ("argocd", "argocd-repo-server", "quay.io/argoproj/argocd:v2.11.7", 2),
    ("kube-system", "coredns", "registry.k8s.io/coredns/coredns:v1.11.1", 2),
    ("kube-system", "metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.7.1", 1),
)

_HUMANS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alice@example.com", ("platform-admins",)),
    ("bob@example.com", ("dev-web",)),
    ("carol@example.com", ("dev-web", "oncall")),
    ("dave@example.com", ("dev-payments",)),
    ("erin@example.com", ("dev-data",)),
    ("frank@example.com", ("dev-payments", "oncall")),
    ("grace@example.com", ("sre", "platform-admins")),
    ("heidi@example.com", ("dev-data",)),
    ("ivan@example.com", ("auditors",)),
    ("judy@example.com", ("dev-web",)),
)


_PLATFORMS = ("linux/amd64", "darwin/arm64", "darwin/arm64")


def _node_ip(index: int) -> str:
    return f"10.0.{16 + index // 200}.{10 + index % 200}"


def build_cluster(nodes: int) -> Cluster:
    """Describe a cluster with ``nodes`` worker nodes and three control-plane nodes.

    Examples
    --------
    >>> cluster = build_cluster(4)
    >>> len(cluster.nodes), cluster.nodes[0].kubelet.name
    (4, 'system:node:ip-10-0-16-10.eu-west-1.compute.internal')
    """
    node_list = []
    for index in range(nodes):
        ip = _node_ip(index)
        name = f"ip-{ip.replace('.', '-')}.eu-west-1.compute.internal"
        kubelet = identity(
            f"system:node:{name}",
            ("system:nodes", "system:authenticated"),
            user_agent=_agent("kubelet"),
            source_ip=ip,
        )
        proxy = identity(
            "system:kube-proxy",
            ("system:authenticated",),
            user_agent=_agent("kube-proxy"),
            source_ip=ip,
            authz_reason=_rbac(
                "system:node-proxier", "system:node-proxier", 'User "system:kube-proxy"'
            ),
        )
        node_list.append(Node(name, stable_uid("nodes/" + name), ip, kubelet, proxy))
    control_plane_ips = ("10.0.0.11", "10.0.0.12", "10.0.0.13")

    workloads = []
    pods = []
    for index, (namespace, name, image, replicas) in enumerate(_APPS):
        sa_name = name if namespace not in ("web", "data") else "default"
        home = node_list[index % len(node_list)]
        pod_hash = f"{stable_bits('rs/' + name, 40):010x}"[:10]
        template_hash = "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in pod_hash)
        first_pod = f"{name}-{template_hash}-{_suffix(name, 0)}"
        sa = _service_account(
            namespace,
            sa_name,
            user_agent=f"{name}/{image.rsplit(':', 1)[-1]} {_PLATFORM}",
            source_ip=_pod_ip(index, 0),
            node=home.name,
            pod=first_pod,
        )
        workload = Workload(
            namespace, name, image, replicas, template_hash, sa, f"{name}-config", f"{name}-secrets"
        )
        workloads.append(workload)
        for replica in range(replicas):
            pod_name = f"{name}-{template_hash}-{_suffix(name, replica)}"
            node = node_list[(index * 7 + replica * 3) % len(node_list)]
            pods.append(
                Pod(
                    namespace,
                    pod_name,
                    stable_uid(f"pods/{namespace}/{pod_name}"),
                    _pod_ip(index, replica),
                    workload,
                    node,
                )
            )

    humans = tuple(
        identity(
            name,
            (*groups, "system:authenticated"),
            user_agent=f"kubectl/v1.30.2 ({_PLATFORMS[i % 3]}) kubernetes/3968350",
            source_ip=f"192.168.{40 + i % 3}.{20 + i * 7}",
            authz_reason=_rbac(f"{groups[0]}-binding", groups[0], f'Group "{groups[0]}"'),
        )
        for i, (name, groups) in enumerate(_HUMANS)
    )
    admins = (
        identity(
            "kubernetes-admin",
            ("kubeadm:cluster-admins", "system:authenticated"),
            user_agent="kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
            source_ip="10.0.0.11",
            authz_reason=_rbac(
                "kubeadm:cluster-admins", "cluster-admin", 'Group "kubeadm:cluster-admins"'
            ),
        ),
    )
    return Cluster(
        tuple(node_list),
        control_plane_ips,
        tuple(workloads),
        tuple(pods),
        tuple(sorted({w.namespace for w in workloads} | {"default", "ci", "kube-node-lease"})),
        humans,
        admins,
        _controllers(control_plane_ips),
        _system(control_plane_ips),
    )


def _suffix(name: str, replica: int) -> str:
    bits = stable_bits(f"pod/{name}/{replica}", 30)
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[(bits >> (6 * i)) % len(alphabet)] for i in range(5))


def _pod_ip(index: int, replica: int) -> str:
    return f"10.244.{index % 250}.{2 + replica}"


_CONTROLLERS = (
    "replicaset-controller",
    "deployment-controller",
    "endpointslice-controller",
    "endpointslicemirroring-controller",
    "namespace-controller",
    "generic-garbage-collector",
    "horizontal-pod-autoscaler",
    "resourcequota-controller",
    "job-controller",
    "cronjob-controller",
    "node-controller",
    "certificate-controller",
    "service-account-controller",
    "pvc-protection-controller",
)


def _controllers(control_plane_ips: tuple[str, ...]) -> dict[str, Identity]:
    out = {}
    for name in _CONTROLLERS:
        full = f"system:serviceaccount:kube-system:{name}"
        out[name] = identity(
            full,
            (
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ),
            uid=stable_uid("serviceaccounts/" + full),
            user_agent=_agent("kube-controller-manager", f"/{full}"),
            source_ip=control_plane_ips[0],
            authz_reason=_rbac(
                f"system:controller:{name}",
                f"system:controller:{name}",
                f'ServiceAccount "{name}/kube-system"',
            ),
        )
    return out


def _system(ips: tuple[str, ...]) -> dict[str, Identity]:
    kcm_reason = _rbac(
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        'User "system:kube-controller-manager"',
    )
    sched_reason = _rbac(
        "system:kube-scheduler", "system:kube-scheduler", 'User "system:kube-scheduler"'
    )
    out = {}
    for i, ip in enumerate(ips):
        out[f"kcm-{i}"] = identity(
            "system:kube-controller-manager",
            ("system:authenticated",),
            user_agent=_agent("kube-controller-manager", "/leader-election"),
            source_ip=ip,
            authz_reason=kcm_reason,
        )
        out[f"scheduler-{i}"] = identity(
            "system:kube-scheduler",
            ("system:authenticated",),
            user_agent=_agent("kube-scheduler", "/leader-election"),
            source_ip=ip,
            authz_reason=sched_reason,
        )
        out[f"apiserver-{i}"] = identity(
            "system:apiserver",
            ("system:authenticated", "system:masters"),
            uid=stable_uid(f"apiserver-{i}"),
            user_agent=_agent("kube-apiserver"),
            source_ip="::1",
        )
    out["scheduler"] = identity(
        "system:kube-scheduler",
        ("system:authenticated",),
        user_agent=_agent("kube-scheduler", "/scheduler"),
        source_ip=ips[0],
        authz_reason=sched_reason,
    )
    out["anonymous"] = identity(
        "system:anonymous",
        ("system:unauthenticated",),
        user_agent="kube-probe/1.30",
        source_ip=ips[0],
        authz_reason=_rbac(
            "system:public-info-viewer",
            "system:public-info-viewer",
            'Group "system:unauthenticated"',
        ),
    )
    out["lb-probe"] = identity(
        "system:anonymous",
        ("system:unauthenticated",),
        source_ip="10.0.3.77",
        authz_reason=_rbac(
            "system:public-info-viewer",
            "system:public-info-viewer",
            'Group "system:unauthenticated"',
        ),
    )
    out["nobody"] = identity("", (), user_agent="python-requests/2.31.0", source_ip="203.0.113.45")
    out["expired"] = identity(
        "",
        (),
        user_agent="kubectl/v1.28.4 (windows/amd64) kubernetes/bae2c62",
        source_ip="192.168.41.99",
    )
    out["ci"] = _service_account(
        "ci",
        "deployer",
        user_agent="kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        source_ip="10.0.40.17",
    )
    out["helm"] = _service_account(
        "ci", "helm-release", user_agent="Helm/3.15.2", source_ip="10.0.40.18"
    )
    out["argocd"] = _service_account(
        "argocd",
        "argocd-application-controller",
        user_agent="argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
        source_ip="10.244.11.4",
    )
    out["prometheus"] = _service_account(
        "monitoring", "prometheus-k8s", user_agent="Prometheus/2.53.0", source_ip="10.244.7.9"
    )
    out["ksm"] = _service_account(
        "monitoring",
        "kube-state-metrics",
        user_agent="v2.13.0 (linux/amd64) kubernetes/$Format",
        source_ip="10.244.8.2",
    )
    out["cert-manager"] = _service_account(
        "cert-manager",
        "cert-manager",
        user_agent="cert-manager-controller/v1.15.1 (linux/amd64) cert-manager/46a3b1a",
        source_ip="10.244.10.2",
    )
    out["ingress"] = _service_account(
        "ingress-nginx",
        "ingress-nginx",
        user_agent="nginx-ingress-controller/v1.11.1 (linux/amd64) ingress-nginx/7c44f992012",
        source_ip="10.244.9.2",
    )
    out["coredns"] = _service_account(
        "kube-system",
        "coredns",
        user_agent="coredns/v1.11.1 (linux/amd64) kubernetes/ae2bbc2",
        source_ip="10.244.12.2",
    )
    out["metrics-server"] = _service_account(
        "kube-system",
        "metrics-server",
        user_agent="metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format",
        source_ip="10.244.13.2",
    )
    return out
