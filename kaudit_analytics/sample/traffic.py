"""The request stream of the sample generator: who asks what, when, and what they get back.

This half is independent of any audit policy: the same seed always yields the same requests
(ids, URIs, codes, timings, body contents), whatever policy later decides to log of them. The
policy replay tests rely on that. Every random draw happens here, unconditionally; bodies only
use values derived from the request, so rendering them or not never shifts the stream.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from kaudit_analytics.sample import bodies
from kaudit_analytics.sample.gojson import go_duration, micro_time, seconds_time, uuid4_from
from kaudit_analytics.sample.model import (
    Cluster,
    Identity,
    Pod,
    Workload,
    build_cluster,
    stable_uid,
)

__all__ = ["LONG", "NORMAL", "PANIC", "UNAUTHENTICATED", "Mix", "Ref", "Request", "requests"]

NORMAL, LONG, UNAUTHENTICATED, PANIC = 0, 1, 2, 3


class Ref(NamedTuple):
    """The ``objectRef`` of a resource request.

    The first six fields are what the URI tells (``RequestInfo``); ``uid``, ``rv`` and
    ``late_name`` come from the request body and so only show after ``RequestReceived``.
    """

    resource: str
    namespace: str
    name: str
    api_group: str
    api_version: str
    subresource: str
    uid: str = ""
    rv: str = ""
    late_name: str = ""  # a create's name, known from its body only after RequestReceived


class Failure(NamedTuple):
    """The Status of a failed request (``responseStatus`` minus its code)."""

    message: str
    reason: str
    details: tuple[tuple[str, Any], ...]


class Request(NamedTuple):
    """One API request as the apiserver saw it, before any audit policy."""

    seq: int
    audit_id: str
    received_us: int
    started_us: int
    complete_us: int
    kind: int
    verb: str
    uri: str
    user: Identity
    impersonated: Identity | None
    ref: Ref | None
    code: int
    failure: Failure | None
    decision: str
    annotations: tuple[tuple[str, str], ...]
    body: tuple[bodies.Builder, tuple[Any, ...], dict[str, str]] | None

    @property
    def path(self) -> str:
        """The URI without its query string."""
        return self.uri.split("?", 1)[0]


class Mix(NamedTuple):
    """A traffic mix: cluster size, relative rates of machine and peak human traffic.

    ``nodes`` sizes the kubelet traffic, ``machine_scale`` the controllers' reads and watches,
    ``human_peak`` the kubectl requests/s at office hours, ``write_boost`` the controllers'
    writes, and ``rate`` thins everything (1.0 is a real cluster's pace).
    """

    nodes: int
    machine_scale: float
    human_peak: float
    write_boost: float = 1.0
    rate: float = 1.0


_WEEKDAY = (
    0.03, 0.03, 0.03, 0.03, 0.04, 0.06, 0.15, 0.45, 0.85, 1.0, 1.0, 0.95,
    0.7, 0.9, 1.0, 1.0, 0.9, 0.7, 0.45, 0.25, 0.15, 0.1, 0.06, 0.04,
)  # fmt: skip
_WEEKEND = (0.04,) * 9 + (0.1, 0.12, 0.12, 0.1, 0.1, 0.12, 0.1, 0.08) + (0.05,) * 7


def human_activity(epoch_us: int) -> float:
    """Relative human activity (0..1) at an instant: office hours on weekdays, UTC.

    Examples
    --------
    >>> human_activity(1_725_962_400_000_000)  # Tuesday 2024-09-10 10:00 UTC
    1.0
    """
    hours = epoch_us // 3_600_000_000
    weekday = (hours // 24 + 3) % 7  # 1970-01-01 was a Thursday (3 with Monday = 0)
    table = _WEEKEND if weekday >= 5 else _WEEKDAY
    return table[hours % 24]


def _watch_query(rng: random.Random, rev: int, selector: str = "") -> tuple[str, int]:
    seconds = 300 + int(rng.random() * 300)
    minutes, rest = divmod(seconds, 60)
    query = "?allowWatchBookmarks=true"
    if selector:
        query += "&fieldSelector=" + selector
    version = rev - int(rng.random() * 5000)
    query += f"&resourceVersion={version}&timeout={minutes}m{rest}s"
    query += f"&timeoutSeconds={seconds}&watch=true"
    return query, seconds


_CORE = ""


def _configmap_ref(w: Workload, rv: str) -> Ref:
    """The objectRef of a workload's ConfigMap at resourceVersion ``rv``."""
    uid = stable_uid(f"configmaps/{w.namespace}/{w.configmap}")
    return Ref("configmaps", w.namespace, w.configmap, _CORE, "v1", "", uid, rv)


#: Log-normal(0, 0.6) quantiles: a table lookup is much cheaper than ``lognormvariate``.
_SPREAD = tuple(
    math.exp(0.6 * statistics.NormalDist().inv_cdf((i + 0.5) / 1024)) for i in range(1024)
)
_NOT_FOUND = "NotFound"


class _Traffic:
    """Draws requests one at a time from the mix; all randomness lives here."""

    def __init__(self, seed: int, mix: Mix, start_us: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not security
        self.cluster: Cluster = build_cluster(mix.nodes)
        self.mix = mix
        self.now = start_us
        self.seq = 0
        self.rev = 48_000_000 + seed % 1_000_000
        self.machine: list[tuple[float, Callable[[], Request]]] = []
        self.human: list[tuple[float, Callable[[], Request]]] = []
        self._build_tables()
        self._machine_cum, self._machine_fns = _cumulative(self.machine)
        self._human_cum, self._human_fns = _cumulative(self.human)
        self.machine_rate = self._machine_cum[-1]

    # ------------------------------------------------------------------ tables

    def _build_tables(self) -> None:
        n = self.mix.nodes
        s = self.mix.machine_scale
        w = self.mix.write_boost
        self.machine = [
            (n / 10, self.kubelet_lease_update),
            (n / 1000, self.kubelet_lease_get),
            (n / 10, self.kubelet_node_get),
            (n / 400 * w, self.kubelet_node_status),
            (n / 25 * s, self.kubelet_watch),
            (n / 1000 * w, self.kubelet_pod_status),
            (n / 120 * s, self.kubelet_get_config),
            (n / 250, self.kubelet_token_request),
            (n / 120 * w, self.kubelet_event),
            (n / 20000, self.kubelet_csr),
            (1.0, self.leader_get),
            (1.0, self.leader_update),
            (0.3, self.apiserver_lease),
            (0.2 * s, self.apiserver_namespace_get),
            (0.5 * s, self.controller_watch),
            (0.4 * w, self.endpointslice_update),
            (0.06 * w, self.replicaset_pod_create),
            (0.05 * w, self.controller_pod_delete),
            (0.05 * w, self.scheduler_binding),
            (0.1 * s, self.scheduler_watch),
            (0.3 * s, self.hpa_metrics),
            (n / 130 * s, self.kube_proxy_watch),
            (0.05 * s, self.coredns),
            (0.5 * s, self.prometheus_metrics),
            (0.3 * s, self.monitoring_watch),
            (1.5, self.kubelet_probe),
            (0.5, self.lb_probe),
            (0.3 * s, self.discovery),
            (0.3, self.token_review),
            (0.2, self.subject_access_review),
            (0.5 * s, self.operator_lease),
            (0.4 * s, self.operator_reads),
            (0.1 * w, self.ci_deploy),
            (0.05, self.unauthenticated),
            (0.002, self.panic),
        ]
        self.human = [
            (25, self.human_list_pods),
            (8, self.human_get_pod),
            (8, self.human_describe),
            (6, self.human_list_deployments),
            (4, self.human_get_deployment),
            (1.5, self.human_apply),
            (0.5, self.human_restart),
            (1, self.human_scale),
            (4, self.human_logs),
            (2, self.human_exec),
            (0.5, self.human_port_forward),
            (1, self.human_delete_pod),
            (2, self.human_secret),
            (3, self.human_configmap),
            (1, self.human_can_i),
            (2, self.human_impersonate),
            (2, self.human_forbidden),
            (3, self.human_not_found),
            (1, self.human_conflict_or_invalid),
            (0.3, self.human_crd),
            (0.5, self.human_rbac),
            (10, self.human_discovery),
            (2, self.human_top),
            (3, self.human_nodes),
        ]

    # ------------------------------------------------------------------ plumbing

    def next(self) -> Request:
        rng = self.rng
        human_rate = self.mix.human_peak * human_activity(self.now)
        total = self.machine_rate + human_rate
        # ``rate`` thins the whole stream evenly (a small sample spanning days).
        self.now += int(rng.expovariate(total * self.mix.rate) * 1_000_000) + 1
        pick = rng.random() * total
        if pick < human_rate:
            fn = self._human_fns[bisect.bisect(self._human_cum, rng.random() * self._human_cum[-1])]
        else:
            fn = self._machine_fns[
                bisect.bisect(self._machine_cum, rng.random() * self.machine_rate)
            ]
        return fn()

    def make(
        self,
        verb: str,
        uri: str,
        user: Identity,
        ref: Ref | None,
        *,
        code: int = 200,
        latency_ms: float = 3.0,
        kind: int = NORMAL,
        duration_s: float = 0.0,
        failure: Failure | None = None,
        impersonated: Identity | None = None,
        annotations: tuple[tuple[str, str], ...] = (),
        body: tuple[bodies.Builder, tuple[Any, ...], dict[str, str]] | None = None,
    ) -> Request:
        rng = self.rng
        self.seq += 1
        received = self.now
        latency = int(_SPREAD[int(rng.random() * 1024)] * latency_ms * 1000) + 40
        started = 0
        if kind == LONG:
            started = received + latency
            complete = started + int(duration_s * 1_000_000) + int(rng.random() * 2000)
        else:
            complete = received + latency
        if complete - received >= 500_000 and kind != UNAUTHENTICATED and verb != "watch":
            annotations = (
                *annotations,
                *_latency_annotations(complete - received, verb, kind == LONG),
            )
        decision = "forbid" if code == 403 else "allow"
        return Request(
            self.seq,
            uuid4_from(rng.getrandbits(128)),
            received,
            started,
            complete,
            kind,
            verb,
            uri,
            user,
            impersonated,
            ref,
            code,
            failure,
            decision,
            annotations,
            body,
        )

    def write_rev(self) -> tuple[str, str]:
        """Bump the etcd revision for a write: (resourceVersion before, after)."""
        old = self.rev - (1 + int(self.rng.random() * (20_000 - 1)))
        self.rev += 1 + int(self.rng.random() * 6)
        return str(old), str(self.rev)

    def times(self) -> dict[str, str]:
        now = self.now
        return {
            "mf": seconds_time(now),
            "mf_old": seconds_time(now - 10_000_000),
            "renew": micro_time(now),
            "heartbeat": seconds_time(now),
            "ts": seconds_time(now),
            "created": seconds_time(now),
        }

    def pod(self) -> Pod:
        pods = self.cluster.pods
        return pods[int(self.rng.random() * len(pods))]

    def node(self) -> Any:
        nodes = self.cluster.nodes
        return nodes[int(self.rng.random() * len(nodes))]

    # ------------------------------------------------------------------ kubelets

    def kubelet_lease_update(self) -> Request:
        node = self.node()
        old, new = self.write_rev()
        conflict = self.rng.random() < 0.002
        ref = Ref(
            "leases",
            "kube-node-lease",
            node.name,
            "coordination.k8s.io",
            "v1",
            "",
            stable_uid(f"leases/kube-node-lease/{node.name}"),
            old,
        )
        values = {"rv_old": old, "rv": new}
        return self.make(
            "update",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}?timeout=10s",
            node.kubelet,
            ref,
            code=409 if conflict else 200,
            failure=_conflict("leases", "coordination.k8s.io", node.name) if conflict else None,
            latency_ms=4,
            body=(bodies.lease, (node.name, "kube-node-lease", node.name, 40, node.name), values),
        )

    def kubelet_lease_get(self) -> Request:
        node = self.node()
        ref = Ref("leases", "kube-node-lease", node.name, "coordination.k8s.io", "v1", "")
        return self.make(
            "get",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}?timeout=10s",
            node.kubelet,
            ref,
            latency_ms=2,
            body=(
                bodies.lease,
                (node.name, "kube-node-lease", node.name, 40, node.name),
                {"rv_old": str(self.rev), "rv": str(self.rev)},
            ),
        )

    def kubelet_node_get(self) -> Request:
        node = self.node()
        return self.make(
            "get",
            f"/api/v1/nodes/{node.name}?resourceVersion=0&timeout=10s",
            node.kubelet,
            Ref("nodes", "", node.name, _CORE, "v1", ""),
            latency_ms=1.2,
            body=(bodies.node_get, (node.name, node.ip), {"rv": str(self.rev)}),
        )

    def kubelet_node_status(self) -> Request:
        node = self.node()
        _, new = self.write_rev()
        return self.make(
            "patch",
            f"/api/v1/nodes/{node.name}/status?timeout=10s",
            node.kubelet,
            Ref("nodes", "", node.name, _CORE, "v1", "status"),
            latency_ms=7,
            body=(bodies.node_status, (node.name, node.ip), {"rv": new}),
        )

    def kubelet_watch(self) -> Request:
        node = self.node()
        rng = self.rng
        choice = int(rng.random() * 7)
        if choice == 0:
            pod = self.pod()
            query, seconds = _watch_query(rng, self.rev, "metadata.name%3D" + pod.workload.secret)
            uri, ref = (
                f"/api/v1/namespaces/{pod.namespace}/secrets{query}",
                Ref("secrets", pod.namespace, pod.workload.secret, _CORE, "v1", ""),
            )
        elif choice == 1:
            pod = self.pod()
            query, seconds = _watch_query(
                rng, self.rev, "metadata.name%3D" + pod.workload.configmap
            )
            uri, ref = (
                f"/api/v1/namespaces/{pod.namespace}/configmaps{query}",
                Ref("configmaps", pod.namespace, pod.workload.configmap, _CORE, "v1", ""),
            )
        elif choice == 2:
            query, seconds = _watch_query(rng, self.rev, "spec.nodeName%3D" + node.name)
            uri, ref = f"/api/v1/pods{query}", Ref("pods", "", "", _CORE, "v1", "")
        elif choice == 3:
            query, seconds = _watch_query(rng, self.rev, "metadata.name%3D" + node.name)
            uri, ref = f"/api/v1/nodes{query}", Ref("nodes", "", node.name, _CORE, "v1", "")
        elif choice == 4:
            query, seconds = _watch_query(rng, self.rev)
            uri, ref = f"/api/v1/services{query}", Ref("services", "", "", _CORE, "v1", "")
        elif choice == 5:
            query, seconds = _watch_query(rng, self.rev)
            uri, ref = (
                f"/apis/storage.k8s.io/v1/csidrivers{query}",
                Ref("csidrivers", "", "", "storage.k8s.io", "v1", ""),
            )
        else:
            query, seconds = _watch_query(rng, self.rev)
            uri, ref = (
                f"/apis/node.k8s.io/v1/runtimeclasses{query}",
                Ref("runtimeclasses", "", "", "node.k8s.io", "v1", ""),
            )
        return self.make(
            "watch", uri, node.kubelet, ref, kind=LONG, latency_ms=1.5, duration_s=seconds
        )

    def kubelet_pod_status(self) -> Request:
        pod = self.pod()
        _, new = self.write_rev()
        w = pod.workload
        return self.make(
            "patch",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
            pod.node.kubelet,
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", "status"),
            latency_ms=6,
            body=(
                bodies.pod_status,
                (pod.namespace, pod.name, w.name, w.image, w.template_hash, pod.node.name, pod.ip),
                {"rv": new},
            ),
        )

    def kubelet_get_config(self) -> Request:
        pod = self.pod()
        if self.rng.random() < 0.5:
            resource, name = "configmaps", pod.workload.configmap
        else:
            resource, name = "secrets", pod.workload.secret
        missing = self.rng.random() < 0.02
        return self.make(
            "get",
            f"/api/v1/namespaces/{pod.namespace}/{resource}/{name}",
            pod.node.kubelet,
            Ref(resource, pod.namespace, name, _CORE, "v1", ""),
            code=404 if missing else 200,
            failure=_not_found(resource, "", name) if missing else None,
            latency_ms=1.5,
        )

    def kubelet_token_request(self) -> Request:
        pod = self.pod()
        sa = (
            "default"
            if pod.workload.service_account.name.endswith(":default")
            else pod.workload.name
        )
        values = {
            "token": _jwt(self.seq, pod.name),
            "expires": seconds_time(self.now + 3_607_000_000),
        }
        return self.make(
            "create",
            f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{sa}/token",
            pod.node.kubelet,
            Ref("serviceaccounts", pod.namespace, sa, _CORE, "v1", "token"),
            code=201,
            latency_ms=5,
            body=(bodies.token_request, (pod.namespace, sa, pod.name), values),
        )

    def kubelet_event(self) -> Request:
        pod = self.pod()
        reason, message = _KUBELET_EVENTS[int(self.rng.random() * len(_KUBELET_EVENTS))]
        _, new = self.write_rev()
        values = {
            "rv": new,
            "event": f"{self.rev:x}{self.seq % 4096:03x}"[-16:],
            "uid": stable_uid(f"ev{self.seq}"),
        }
        return self.make(
            "create",
            f"/api/v1/namespaces/{pod.namespace}/events",
            pod.node.kubelet,
            Ref("events", pod.namespace, "", _CORE, "v1", ""),
            code=201,
            latency_ms=4,
            body=(
                bodies.event,
                (
                    pod.namespace,
                    pod.name,
                    "Pod",
                    reason,
                    message.replace("IMAGE", pod.workload.image),
                    "kubelet",
                ),
                values,
            ),
        )

    def kubelet_csr(self) -> Request:
        node = self.node()
        _, new = self.write_rev()
        values = {"rv": new, "uid": stable_uid(f"csr{self.seq}"), "suffix": f"{self.seq:05d}"[-5:]}
        return self.make(
            "create",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            node.kubelet,
            Ref("certificatesigningrequests", "", "", "certificates.k8s.io", "v1", ""),
            code=201,
            latency_ms=8,
            body=(bodies.csr, (node.name,), values),
        )

    # ------------------------------------------------------------------ control plane

    def _leader(self) -> tuple[Identity, str]:
        rng = self.rng
        who = "kcm" if rng.random() < 0.5 else "scheduler"
        instance = int(rng.random() * 3)
        ident = self.cluster.system[f"{who}-{instance}"]
        return ident, "kube-controller-manager" if who == "kcm" else "kube-scheduler"

    def leader_get(self) -> Request:
        ident, lease = self._leader()
        return self.make(
            "get",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}?timeout=5s",
            ident,
            Ref("leases", "kube-system", lease, "coordination.k8s.io", "v1", ""),
            latency_ms=1.5,
        )

    def leader_update(self) -> Request:
        rng = self.rng
        lease = "kube-controller-manager" if rng.random() < 0.5 else "kube-scheduler"
        ident = self.cluster.system[
            ("kcm" if lease == "kube-controller-manager" else "scheduler") + "-0"
        ]
        old, new = self.write_rev()
        holder = f"ip-10-0-0-11_{stable_uid(lease + '-holder')}"
        return self.make(
            "update",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}?timeout=5s",
            ident,
            Ref(
                "leases",
                "kube-system",
                lease,
                "coordination.k8s.io",
                "v1",
                "",
                stable_uid(f"leases/kube-system/{lease}"),
                old,
            ),
            latency_ms=4,
            body=(bodies.lease, (lease, "kube-system", holder, 15, ""), {"rv_old": old, "rv": new}),
        )

    def apiserver_lease(self) -> Request:
        index = int(self.rng.random() * 3)
        name = f"apiserver-{stable_uid(f'apiserver-{index}')[:26].replace('-', '')}"
        old, new = self.write_rev()
        return self.make(
            "update",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}",
            self.cluster.system[f"apiserver-{index}"],
            Ref(
                "leases",
                "kube-system",
                name,
                "coordination.k8s.io",
                "v1",
                "",
                stable_uid(f"leases/kube-system/{name}"),
                old,
            ),
            latency_ms=4,
            body=(
                bodies.lease,
                (name, "kube-system", name + "_" + stable_uid(name), 3600, ""),
                {"rv_old": old, "rv": new},
            ),
        )

    def apiserver_namespace_get(self) -> Request:
        namespaces = self.cluster.namespaces
        ns = namespaces[int(self.rng.random() * len(namespaces))]
        return self.make(
            "get",
            f"/api/v1/namespaces/{ns}",
            self.cluster.system[f"apiserver-{int(self.rng.random() * 3)}"],
            Ref("namespaces", ns, ns, _CORE, "v1", ""),
            latency_ms=0.8,
        )

    def _watch(
        self,
        ident: Identity,
        resource: str,
        group: str,
        query: str,
        seconds: float,
        *,
        version: str = "v1",
        latency_ms: float = 3.0,
    ) -> Request:
        """A cluster-wide watch of one resource: an informer's long-running request."""
        prefix = f"/apis/{group}/{version}" if group else "/api/v1"
        return self.make(
            "watch",
            f"{prefix}/{resource}{query}",
            ident,
            Ref(resource, "", "", group, version, ""),
            kind=LONG,
            latency_ms=latency_ms,
            duration_s=seconds,
        )

    def _list_or_watch(
        self, ident: Identity, resource: str, group: str, *, list_share: float, list_ms: float
    ) -> Request:
        """An informer's initial list (``list_share`` of the time) or else its watch."""
        if self.rng.random() < list_share:
            prefix = f"/apis/{group}/v1" if group else "/api/v1"
            return self.make(
                "list",
                f"{prefix}/{resource}?limit=500&resourceVersion=0",
                ident,
                Ref(resource, "", "", group, "v1", ""),
                latency_ms=list_ms,
            )
        query, seconds = _watch_query(self.rng, self.rev)
        return self._watch(ident, resource, group, query, seconds)

    def controller_watch(self) -> Request:
        rng = self.rng
        resource, group, version, controller = _CONTROLLER_WATCHES[
            int(rng.random() * len(_CONTROLLER_WATCHES))
        ]
        query, seconds = _watch_query(rng, self.rev)
        ident = self.cluster.controllers[controller] if controller else self.cluster.system["kcm-0"]
        return self._watch(ident, resource, group, query, seconds, version=version, latency_ms=1.5)

    def endpointslice_update(self) -> Request:
        w = self.cluster.workloads[int(self.rng.random() * len(self.cluster.workloads))]
        old, new = self.write_rev()
        name = f"{w.name}-{_short(w.name)}"
        ips = tuple(p.ip for p in self.cluster.pods if p.workload is w)
        conflict = self.rng.random() < 0.01
        return self.make(
            "update",
            f"/apis/discovery.k8s.io/v1/namespaces/{w.namespace}/endpointslices/{name}",
            self.cluster.controllers["endpointslice-controller"],
            Ref(
                "endpointslices",
                w.namespace,
                name,
                "discovery.k8s.io",
                "v1",
                "",
                stable_uid(f"endpointslices/{w.namespace}/{w.name}"),
                old,
            ),
            code=409 if conflict else 200,
            failure=_conflict("endpointslices", "discovery.k8s.io", name) if conflict else None,
            latency_ms=5,
            body=(bodies.endpointslice, (w.namespace, w.name, ips), {"rv_old": old, "rv": new}),
        )

    def replicaset_pod_create(self) -> Request:
        pod = self.pod()
        w = pod.workload
        _, new = self.write_rev()
        name = f"{w.name}-{w.template_hash}-{_short(str(self.seq))}"
        return self.make(
            "create",
            f"/api/v1/namespaces/{w.namespace}/pods",
            self.cluster.controllers["replicaset-controller"],
            Ref("pods", w.namespace, "", _CORE, "v1", ""),
            code=201,
            latency_ms=12,
            annotations=(("pod-security.kubernetes.io/enforce-policy", "privileged:latest"),),
            body=(
                bodies.pod_create,
                (w.namespace, name, w.name, w.image, w.template_hash),
                {"rv": new},
            ),
        )

    def controller_pod_delete(self) -> Request:
        pod = self.pod()
        w = pod.workload
        _, new = self.write_rev()
        return self.make(
            "delete",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
            self.cluster.controllers["replicaset-controller"],
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", ""),
            latency_ms=9,
            body=(
                bodies.pod_delete,
                (pod.namespace, pod.name, w.name, w.image, w.template_hash, pod.node.name, pod.ip),
                {"rv": new},
            ),
        )

    def scheduler_binding(self) -> Request:
        pod = self.pod()
        self.write_rev()
        return self.make(
            "create",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/binding",
            self.cluster.system["scheduler"],
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", "binding"),
            code=201,
            latency_ms=6,
            body=(bodies.binding, (pod.namespace, pod.name, pod.node.name), {}),
        )

    def scheduler_watch(self) -> Request:
        rng = self.rng
        resource, group = (
            ("pods", ""),
            ("nodes", ""),
            ("persistentvolumeclaims", ""),
            ("csinodes", "storage.k8s.io"),
            ("poddisruptionbudgets", "policy"),
        )[int(rng.random() * 5)]
        query, seconds = _watch_query(
            rng,
            self.rev,
            "status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed" if resource == "pods" else "",
        )
        ident = self.cluster.system["scheduler"]
        return self._watch(ident, resource, group, query, seconds, latency_ms=1.5)

    def hpa_metrics(self) -> Request:
        w = self.cluster.workloads[int(self.rng.random() * len(self.cluster.workloads))]
        return self.make(
            "list",
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{w.namespace}/pods?labelSelector=app.kubernetes.io%2Fname%3D{w.name}",
            self.cluster.controllers["horizontal-pod-autoscaler"],
            Ref("pods", w.namespace, "", "metrics.k8s.io", "v1beta1", ""),
            latency_ms=9,
        )

    def kube_proxy_watch(self) -> Request:
        node = self.node()
        rng = self.rng
        if rng.random() < 0.5:
            query, seconds = _watch_query(rng, self.rev, "")
            query = query.replace(
                "?",
                "?labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name&",
                1,
            )
            return self.make(
                "watch",
                f"/apis/discovery.k8s.io/v1/endpointslices{query}",
                node.kube_proxy,
                Ref("endpointslices", "", "", "discovery.k8s.io", "v1", ""),
                kind=LONG,
                duration_s=seconds,
            )
        query, seconds = _watch_query(rng, self.rev)
        return self._watch(node.kube_proxy, "services", _CORE, query, seconds)

    def coredns(self) -> Request:
        rng = self.rng
        resource, group = (
            ("endpointslices", "discovery.k8s.io"),
            ("services", ""),
            ("namespaces", ""),
        )[int(rng.random() * 3)]
        ident = self.cluster.system["coredns"]
        return self._list_or_watch(ident, resource, group, list_share=0.3, list_ms=6)

    def prometheus_metrics(self) -> Request:
        return self.make("get", "/metrics", self.cluster.system["prometheus"], None, latency_ms=40)

    def monitoring_watch(self) -> Request:
        rng = self.rng
        ident = self.cluster.system["ksm" if rng.random() < 0.5 else "prometheus"]
        resource, group = (
            ("pods", ""),
            ("endpoints", ""),
            ("services", ""),
            ("nodes", ""),
            ("deployments", "apps"),
            ("endpointslices", "discovery.k8s.io"),
        )[int(rng.random() * 6)]
        return self._list_or_watch(ident, resource, group, list_share=0.25, list_ms=25)

    def kubelet_probe(self) -> Request:
        path = ("/livez", "/readyz", "/readyz", "/healthz")[int(self.rng.random() * 4)]
        failing = self.rng.random() < 0.001
        return self.make(
            "get",
            path,
            self.cluster.system["anonymous"],
            None,
            code=500 if failing else 200,
            failure=Failure("", "", ()) if failing else None,
            latency_ms=1.0,
        )

    def lb_probe(self) -> Request:
        return self.make("get", "/readyz", self.cluster.system["lb-probe"], None, latency_ms=0.8)

    def discovery(self) -> Request:
        rng = self.rng
        path = (
            "/api",
            "/apis",
            "/apis/apps/v1",
            "/api/v1",
            "/apis/metrics.k8s.io/v1beta1",
            "/version",
        )[int(rng.random() * 6)]
        ident = self.cluster.system[
            ("argocd", "ksm", "cert-manager", "prometheus", "metrics-server")[int(rng.random() * 5)]
        ]
        if path in {"/api", "/apis"}:
            path += "?timeout=32s"
        return self.make("get", path, ident, None, latency_ms=1.5)

    def token_review(self) -> Request:
        values = {"token": _jwt(self.seq, "prometheus")}
        return self.make(
            "create",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            self.cluster.system["metrics-server"],
            Ref("tokenreviews", "", "", "authentication.k8s.io", "v1", ""),
            code=201,
            latency_ms=2,
            body=(bodies.token_review, ("https://kubernetes.default.svc.cluster.local",), values),
        )

    def subject_access_review(self) -> Request:
        node = self.node()
        return self.make(
            "create",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            node.kubelet,
            Ref("subjectaccessreviews", "", "", "authorization.k8s.io", "v1", ""),
            code=201,
            latency_ms=1.5,
            body=(
                bodies.subject_access_review,
                ("system:serviceaccount:monitoring:prometheus-k8s", "get", "nodes/metrics", ""),
                {},
            ),
        )

    def operator_lease(self) -> Request:
        rng = self.rng
        who, ns, lease = (
            ("cert-manager", "kube-system", "cert-manager-controller"),
            ("ingress", "ingress-nginx", "ingress-nginx-leader"),
            ("argocd", "argocd", "argocd-application-controller"),
        )[int(rng.random() * 3)]
        ident = self.cluster.system[who]
        if rng.random() < 0.5:
            return self.make(
                "get",
                f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease}",
                ident,
                Ref("leases", ns, lease, "coordination.k8s.io", "v1", ""),
                latency_ms=1.5,
            )
        old, new = self.write_rev()
        return self.make(
            "update",
            f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease}",
            ident,
            Ref(
                "leases",
                ns,
                lease,
                "coordination.k8s.io",
                "v1",
                "",
                stable_uid(f"leases/{ns}/{lease}"),
                old,
            ),
            latency_ms=4,
            body=(
                bodies.lease,
                (lease, ns, f"{lease}-{_short(lease)}_{stable_uid(lease)}", 15, ""),
                {"rv_old": old, "rv": new},
            ),
        )

    def operator_reads(self) -> Request:
        rng = self.rng
        choice = int(rng.random() * 4)
        if choice == 0:
            ident = self.cluster.system["cert-manager"]
            query, seconds = _watch_query(rng, self.rev)
            return self.make(
                "watch",
                f"/apis/cert-manager.io/v1/certificates{query}",
                ident,
                Ref("certificates", "", "", "cert-manager.io", "v1", ""),
                kind=LONG,
                duration_s=seconds,
            )
        if choice == 1:
            ident = self.cluster.system["ingress"]
            return self.make(
                "get",
                "/api/v1/namespaces/ingress-nginx/configmaps/ingress-nginx-controller",
                ident,
                Ref("configmaps", "ingress-nginx", "ingress-nginx-controller", _CORE, "v1", ""),
                latency_ms=1.5,
            )
        ident = self.cluster.system["argocd"]
        if choice == 2:
            name = ("web", "payments", "data", "monitoring")[int(rng.random() * 4)]
            self.write_rev()
            return self.make(
                "patch",
                f"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{name}",
                ident,
                Ref("applications", "argocd", name, "argoproj.io", "v1alpha1", ""),
                latency_ms=8,
            )
        query, seconds = _watch_query(rng, self.rev)
        return self.make(
            "watch",
            f"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications{query}",
            ident,
            Ref("applications", "argocd", "", "argoproj.io", "v1alpha1", ""),
            kind=LONG,
            duration_s=seconds,
        )

    def ci_deploy(self) -> Request:
        rng = self.rng
        w = self.cluster.workloads[int(rng.random() * len(self.cluster.workloads))]
        choice = int(rng.random() * 4)
        if choice == 0:
            return self._apply(self.cluster.system["ci"], w, "kubectl-client-side-apply")
        if choice == 1:
            ident = self.cluster.system["helm"]
            name = f"sh.helm.release.v1.{w.name}.v{1 + int(rng.random() * 40)}"
            exists = rng.random() < 0.05
            _, new = self.write_rev()
            return self.make(
                "create",
                f"/api/v1/namespaces/{w.namespace}/secrets",
                ident,
                Ref("secrets", w.namespace, "", _CORE, "v1", "", late_name=name),
                code=409 if exists else 201,
                failure=Failure(
                    f'secrets "{name}" already exists',
                    "AlreadyExists",
                    (("name", name), ("kind", "secrets")),
                )
                if exists
                else None,
                latency_ms=6,
                body=(bodies.secret, (w.namespace, name, 2), {"rv": new}),
            )
        if choice == 2:
            old, new = self.write_rev()
            return self.make(
                "update",
                f"/api/v1/namespaces/{w.namespace}/configmaps/{w.configmap}?fieldManager=kubectl-edit",
                self.cluster.system["ci"],
                _configmap_ref(w, old),
                latency_ms=6,
                body=(bodies.configmap, (w.namespace, w.configmap, 4), {"rv_old": old, "rv": new}),
            )
        return self.make(
            "get",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}",
            self.cluster.system["ci"],
            Ref("deployments", w.namespace, w.name, "apps", "v1", ""),
            latency_ms=2,
            body=(
                bodies.deployment_get,
                (w.namespace, w.name, w.image, w.replicas),
                {"rv": str(self.rev), "revision": "17"},
            ),
        )

    def unauthenticated(self) -> Request:
        rng = self.rng
        if rng.random() < 0.5:
            ident = self.cluster.system["nobody"]
            path = (
                "/",
                "/api",
                "/version",
                "/api/v1/namespaces/kube-system/secrets",
                "/.env",
                "/apis/apps/v1/deployments",
            )[int(rng.random() * 6)]
            ref = None
            if path.startswith("/api/v1/"):
                ref = Ref("secrets", "kube-system", "", _CORE, "v1", "")
                verb = "list"
            elif path.startswith("/apis/apps"):
                ref = Ref("deployments", "", "", "apps", "v1", "")
                verb = "list"
            else:
                verb = "get"
        else:
            ident = self.cluster.system["expired"]
            path, verb, ref = (
                "/api/v1/namespaces/web/pods?limit=500",
                "list",
                Ref("pods", "web", "", _CORE, "v1", ""),
            )
        return self.make(
            verb,
            path,
            ident,
            ref,
            code=401,
            kind=UNAUTHENTICATED,
            failure=Failure("Unauthorized", "Unauthorized", ()),
            latency_ms=0.3,
        )

    def panic(self) -> Request:
        w = self.cluster.workloads[int(self.rng.random() * len(self.cluster.workloads))]
        return self.make(
            "get",
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{w.namespace}/pods",
            self.cluster.controllers["horizontal-pod-autoscaler"],
            Ref("pods", w.namespace, "", "metrics.k8s.io", "v1beta1", ""),
            code=500,
            kind=PANIC,
            failure=Failure(
                "APIServer panic'd: runtime error: invalid memory address or nil pointer"
                " dereference",
                "InternalError",
                (),
            ),
            latency_ms=30,
        )

    # ------------------------------------------------------------------ humans

    def _human(self) -> Identity:
        humans = self.cluster.humans
        return humans[int(self.rng.random() * len(humans))]

    def _app_ns(self) -> str:
        return ("web", "web", "web", "payments", "data", "default")[int(self.rng.random() * 6)]

    def human_list_pods(self) -> Request:
        ns = self._app_ns()
        rows = tuple(
            (p.name, p.workload.name, p.workload.template_hash, p.node.name)
            for p in self.cluster.pods
            if p.namespace == ns
        )
        return self.make(
            "list",
            f"/api/v1/namespaces/{ns}/pods?limit=500",
            self._human(),
            Ref("pods", ns, "", _CORE, "v1", ""),
            latency_ms=8,
            body=(bodies.pod_table, (ns, rows), {"rv": str(self.rev)}),
        )

    def _pod_body(
        self, pod: Pod, builder: bodies.Builder = bodies.pod_get
    ) -> tuple[bodies.Builder, tuple[Any, ...], dict[str, str]]:
        w = pod.workload
        return (
            builder,
            (pod.namespace, pod.name, w.name, w.image, w.template_hash, pod.node.name, pod.ip),
            {"rv": str(self.rev)},
        )

    def human_get_pod(self) -> Request:
        pod = self.pod()
        return self.make(
            "get",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
            self._human(),
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", ""),
            latency_ms=2,
            body=self._pod_body(pod),
        )

    def human_describe(self) -> Request:
        pod = self.pod()
        if self.rng.random() < 0.5:
            return self.human_get_pod()
        return self.make(
            "list",
            f"/api/v1/namespaces/{pod.namespace}/events?fieldSelector=involvedObject.name%3D{pod.name}%2CinvolvedObject.namespace%3D{pod.namespace}%2CinvolvedObject.uid%3D{pod.uid}&limit=500",
            self._human(),
            Ref("events", pod.namespace, "", _CORE, "v1", ""),
            latency_ms=5,
        )

    def human_list_deployments(self) -> Request:
        ns = self._app_ns()
        return self.make(
            "list",
            f"/apis/apps/v1/namespaces/{ns}/deployments?limit=500",
            self._human(),
            Ref("deployments", ns, "", "apps", "v1", ""),
            latency_ms=5,
        )

    def _workload(self) -> Any:
        ws = self.cluster.workloads
        return ws[int(self.rng.random() * len(ws))]

    def human_get_deployment(self) -> Request:
        w = self._workload()
        return self.make(
            "get",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}",
            self._human(),
            Ref("deployments", w.namespace, w.name, "apps", "v1", ""),
            latency_ms=2,
            body=(
                bodies.deployment_get,
                (w.namespace, w.name, w.image, w.replicas),
                {"rv": str(self.rev), "revision": "17"},
            ),
        )

    def _apply(self, ident: Identity, w: Any, manager: str) -> Request:
        _, new = self.write_rev()
        return self.make(
            "patch",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}?fieldManager={manager}&fieldValidation=Strict",
            ident,
            Ref("deployments", w.namespace, w.name, "apps", "v1", ""),
            latency_ms=15,
            body=(
                bodies.deployment_apply,
                (w.namespace, w.name, w.image, w.replicas),
                {"rv": new, "revision": str(17 + int(self.rng.random() * 3))},
            ),
        )

    def human_apply(self) -> Request:
        return self._apply(self._human(), self._workload(), "kubectl-client-side-apply")

    def human_restart(self) -> Request:
        w = self._workload()
        _, new = self.write_rev()
        return self.make(
            "patch",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}?fieldManager=kubectl-rollout",
            self._human(),
            Ref("deployments", w.namespace, w.name, "apps", "v1", ""),
            latency_ms=12,
            body=(
                bodies.deployment_restart,
                (w.namespace, w.name, w.image, w.replicas),
                {"rv": new, "revision": "18", "restarted": seconds_time(self.now)[:-1] + "+02:00"},
            ),
        )

    def human_scale(self) -> Request:
        w = self._workload()
        _, new = self.write_rev()
        target = max(0, w.replicas + self.rng.choice((-1, 1, 2)))
        return self.make(
            "patch",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}/scale",
            self._human(),
            Ref("deployments", w.namespace, w.name, "apps", "v1", "scale"),
            latency_ms=9,
            body=(bodies.scale, (w.namespace, w.name, w.replicas, target), {"rv": new}),
        )

    def human_logs(self) -> Request:
        pod = self.pod()
        follow = self.rng.random() < 0.4
        query = (
            "?container=app&follow=true&tailLines=100" if follow else "?container=app&tailLines=200"
        )
        return self.make(
            "get",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/log{query}",
            self._human(),
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", "log"),
            kind=LONG,
            latency_ms=20,
            duration_s=self.rng.expovariate(1 / 120) if follow else self.rng.random() * 0.4,
        )

    def human_exec(self) -> Request:
        pod = self.pod()
        command = ("%2Fbin%2Fsh", "sh&command=-c&command=cat+%2Fetc%2Fresolv.conf", "bash", "env")[
            int(self.rng.random() * 4)
        ]
        tty = (
            "&stdin=true&stdout=true&tty=true"
            if command in ("%2Fbin%2Fsh", "bash")
            else "&stderr=true&stdout=true"
        )
        websocket = self.rng.random() < 0.3
        return self.make(
            "get" if websocket else "create",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/exec?command={command}&container=app{tty}",
            self._human(),
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", "exec"),
            code=101,
            kind=LONG,
            latency_ms=25,
            duration_s=self.rng.expovariate(1 / 240),
        )

    def human_port_forward(self) -> Request:
        pod = self.pod()
        return self.make(
            "create",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/portforward",
            self._human(),
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", "portforward"),
            code=101,
            kind=LONG,
            latency_ms=20,
            duration_s=self.rng.expovariate(1 / 900),
        )

    def human_delete_pod(self) -> Request:
        pod = self.pod()
        self.write_rev()
        return self.make(
            "delete",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
            self._human(),
            Ref("pods", pod.namespace, pod.name, _CORE, "v1", ""),
            latency_ms=10,
            body=self._pod_body(pod, bodies.pod_delete),
        )

    def human_secret(self) -> Request:
        w = self._workload()
        if self.rng.random() < 0.3:
            return self.make(
                "list",
                f"/api/v1/namespaces/{w.namespace}/secrets?limit=500",
                self._human(),
                Ref("secrets", w.namespace, "", _CORE, "v1", ""),
                latency_ms=4,
            )
        return self.make(
            "get",
            f"/api/v1/namespaces/{w.namespace}/secrets/{w.secret}",
            self._human(),
            Ref("secrets", w.namespace, w.secret, _CORE, "v1", ""),
            latency_ms=2,
        )

    def human_configmap(self) -> Request:
        w = self._workload()
        if self.rng.random() < 0.7:
            return self.make(
                "get",
                f"/api/v1/namespaces/{w.namespace}/configmaps/{w.configmap}",
                self._human(),
                Ref("configmaps", w.namespace, w.configmap, _CORE, "v1", ""),
                latency_ms=2,
            )
        old, new = self.write_rev()
        return self.make(
            "update",
            f"/api/v1/namespaces/{w.namespace}/configmaps/{w.configmap}?fieldManager=kubectl-edit&fieldValidation=Strict",
            self._human(),
            _configmap_ref(w, old),
            latency_ms=7,
            body=(bodies.configmap, (w.namespace, w.configmap, 6), {"rv_old": old, "rv": new}),
        )

    def human_can_i(self) -> Request:
        rng = self.rng
        verb, resource, ns = (
            ("create", "deployments", "web"),
            ("get", "secrets", "payments"),
            ("delete", "pods", "data"),
        )[int(rng.random() * 3)]
        allowed = rng.random() < 0.6
        return self.make(
            "create",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            self._human(),
            Ref("selfsubjectaccessreviews", "", "", "authorization.k8s.io", "v1", ""),
            code=201,
            latency_ms=2,
            body=(bodies.self_subject_access_review, (verb, resource, ns, allowed), {}),
        )

    def human_impersonate(self) -> Request:
        admin = self.cluster.admins[0]
        target = self._human()
        ns = self._app_ns()
        denied = self.rng.random() < 0.3
        if denied:
            ns = "kube-system"
        rows = tuple(
            (p.name, p.workload.name, p.workload.template_hash, p.node.name)
            for p in self.cluster.pods
            if p.namespace == ns
        )
        return self.make(
            "list",
            f"/api/v1/namespaces/{ns}/pods?limit=500",
            admin,
            Ref("pods", ns, "", _CORE, "v1", ""),
            code=403 if denied else 200,
            failure=_forbidden(target.name, "list", "pods", "", ns) if denied else None,
            impersonated=target,
            latency_ms=7,
            body=(bodies.pod_table, (ns, rows), {"rv": str(self.rev)}),
        )

    def human_forbidden(self) -> Request:
        rng = self.rng
        user = self._human()
        choice = int(rng.random() * 4)
        if choice == 0:
            name = "aws-load-balancer-webhook-tls"
            return self.make(
                "get",
                f"/api/v1/namespaces/kube-system/secrets/{name}",
                user,
                Ref("secrets", "kube-system", name, _CORE, "v1", ""),
                code=403,
                failure=_forbidden(user.name, "get", "secrets", "", "kube-system", name),
                latency_ms=1,
            )
        if choice == 1:
            return self.make(
                "list",
                "/api/v1/nodes?limit=500",
                user,
                Ref("nodes", "", "", _CORE, "v1", ""),
                code=403,
                failure=_forbidden(user.name, "list", "nodes", "", ""),
                latency_ms=1,
            )
        if choice == 2:
            pod = self.pod()
            return self.make(
                "create",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/exec?command=sh&container=app&stdin=true&stdout=true&tty=true",
                user,
                Ref("pods", pod.namespace, pod.name, _CORE, "v1", "exec"),
                code=403,
                failure=_forbidden(user.name, "create", "pods/exec", "", pod.namespace, pod.name),
                latency_ms=1,
            )
        return self.make(
            "list",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?limit=500",
            user,
            Ref("clusterrolebindings", "", "", "rbac.authorization.k8s.io", "v1", ""),
            code=403,
            failure=_forbidden(
                user.name, "list", "clusterrolebindings", "rbac.authorization.k8s.io", ""
            ),
            latency_ms=1,
        )

    def human_not_found(self) -> Request:
        pod = self.pod()
        name = pod.name[:-2] + "x" + pod.name[-1]
        return self.make(
            "get",
            f"/api/v1/namespaces/{pod.namespace}/pods/{name}",
            self._human(),
            Ref("pods", pod.namespace, name, _CORE, "v1", ""),
            code=404,
            failure=_not_found("pods", "", name),
            latency_ms=1.5,
        )

    def human_conflict_or_invalid(self) -> Request:
        w = self._workload()
        user = self._human()
        if self.rng.random() < 0.5:
            return self.make(
                "create",
                f"/apis/apps/v1/namespaces/{w.namespace}/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
                user,
                Ref("deployments", w.namespace, "", "apps", "v1", "", late_name=w.name),
                code=409,
                failure=Failure(
                    f'deployments.apps "{w.name}" already exists',
                    "AlreadyExists",
                    (("name", w.name), ("group", "apps"), ("kind", "deployments")),
                ),
                latency_ms=4,
                body=(
                    bodies.deployment_apply,
                    (w.namespace, w.name, w.image, w.replicas),
                    {"rv": str(self.rev), "revision": "17"},
                ),
            )
        field = "spec.template.spec.containers[0].image"
        return self.make(
            "patch",
            f"/apis/apps/v1/namespaces/{w.namespace}/deployments/{w.name}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
            user,
            Ref("deployments", w.namespace, w.name, "apps", "v1", ""),
            code=422,
            failure=Failure(
                f'Deployment.apps "{w.name}" is invalid: {field}: Required value',
                "Invalid",
                (
                    ("name", w.name),
                    ("group", "apps"),
                    ("kind", "Deployment"),
                    (
                        "causes",
                        [
                            {
                                "reason": "FieldValueRequired",
                                "message": "Required value",
                                "field": field,
                            }
                        ],
                    ),
                ),
            ),
            latency_ms=5,
            body=(
                bodies.deployment_apply,
                (w.namespace, w.name, "", w.replicas),
                {"rv": str(self.rev), "revision": "17"},
            ),
        )

    def human_crd(self) -> Request:
        rng = self.rng
        admin = self.cluster.humans[0]
        group, kind = (
            ("platform.example.com", "Tenant"),
            ("data.example.com", "Pipeline"),
            ("monitoring.coreos.com", "Prometheus"),
        )[int(rng.random() * 3)]
        properties = (40, 200, 1400)[int(rng.random() * 3)]
        _, new = self.write_rev()
        plural = kind.lower() + "s"
        return self.make(
            "patch",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}?fieldManager=kubectl&fieldValidation=Strict&force=false",
            admin,
            Ref(
                "customresourcedefinitions",
                "",
                f"{plural}.{group}",
                "apiextensions.k8s.io",
                "v1",
                "",
            ),
            latency_ms=60,
            body=(bodies.crd, (group, kind, properties), {"rv": new}),
        )

    def human_rbac(self) -> Request:
        rng = self.rng
        admin = self.cluster.humans[6]
        ns = self._app_ns()
        group = ("dev-web", "dev-payments", "oncall", "auditors")[int(rng.random() * 4)]
        cluster_wide = rng.random() < 0.3
        _, new = self.write_rev()
        name = f"{group}-{'view' if cluster_wide else 'edit'}"
        values = {"rv": new, "uid": stable_uid(f"rb{self.seq}")}
        if cluster_wide:
            return self.make(
                "create",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict",
                admin,
                Ref(
                    "clusterrolebindings",
                    "",
                    "",
                    "rbac.authorization.k8s.io",
                    "v1",
                    "",
                    late_name=name,
                ),
                code=201,
                latency_ms=6,
                body=(bodies.role_binding, ("", name, "view", group), values),
            )
        return self.make(
            "create",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings?fieldManager=kubectl-create&fieldValidation=Strict",
            admin,
            Ref("rolebindings", ns, "", "rbac.authorization.k8s.io", "v1", "", late_name=name),
            code=201,
            latency_ms=6,
            body=(bodies.role_binding, (ns, name, "edit", group), values),
        )

    def human_discovery(self) -> Request:
        path = (
            "/api?timeout=32s",
            "/apis?timeout=32s",
            "/openapi/v3?timeout=32s",
            "/openapi/v3/apis/apps/v1?hash=6A5C6D8E2D42A2D8E1C1B0C4D6F1A2B3E5F7A9C1D3E5F7A9B1C3D5E7F9A1B3C5&timeout=32s",
        )[int(self.rng.random() * 4)]
        return self.make("get", path, self._human(), None, latency_ms=2)

    def human_top(self) -> Request:
        ns = self._app_ns()
        return self.make(
            "list",
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            self._human(),
            Ref("pods", ns, "", "metrics.k8s.io", "v1beta1", ""),
            latency_ms=12,
        )

    def human_nodes(self) -> Request:
        return self.make(
            "list",
            "/api/v1/nodes?limit=500",
            self.cluster.admins[0] if self.rng.random() < 0.3 else self.cluster.humans[0],
            Ref("nodes", "", "", _CORE, "v1", ""),
            latency_ms=9,
        )


def _cumulative(
    table: list[tuple[float, Callable[[], Request]]],
) -> tuple[list[float], list[Callable[[], Request]]]:
    cum: list[float] = []
    total = 0.0
    for weight, _ in table:
        total += weight
        cum.append(total)
    return cum, [fn for _, fn in table]


def _short(text: str) -> str:
    from kaudit_analytics.sample.model import stable_bits

    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    bits = stable_bits(text, 30)
    return "".join(alphabet[(bits >> (5 * i)) % len(alphabet)] for i in range(5))


def _jwt(seq: int, subject: str) -> str:
    from kaudit_analytics.sample.model import stable_bits

    head = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjNfZ1p4UDBnVmRmN2JXSk1uVHhHUkN6cTVqS0l4d0Y4In0"
    body = f"{stable_bits(f'{seq}/{subject}'):032x}{stable_bits(subject):032x}"
    return f"{head}.{body}.{stable_bits(str(seq)):032x}"


def _latency_annotations(total_us: int, verb: str, streaming: bool) -> tuple[tuple[str, str], ...]:
    nanos = total_us * 1000
    # A streaming session (exec, logs) spends its time in the stream, not in etcd.
    etcd = (nanos % 1_700_000 + 213_000) if streaming else nanos // 7 + 123_457
    out = [("apiserver.latency.k8s.io/etcd", go_duration(etcd))]
    if verb in ("get", "list") and not streaming:
        out.append(("apiserver.latency.k8s.io/response-write", go_duration(nanos // 50 + 2_381)))
        out.append(
            ("apiserver.latency.k8s.io/serialize-response-object", go_duration(nanos // 9 + 17_003))
        )
    out.append(("apiserver.latency.k8s.io/total", go_duration(nanos)))
    return tuple(out)


def _not_found(resource: str, group: str, name: str) -> Failure:
    qualified = f"{resource}.{group}" if group else resource
    details: list[tuple[str, Any]] = [("name", name)]
    if group:
        details.append(("group", group))
    details.append(("kind", resource))
    return Failure(f'{qualified} "{name}" not found', _NOT_FOUND, tuple(details))


def _conflict(resource: str, group: str, name: str) -> Failure:
    qualified = f"{resource}.{group}" if group else resource
    details: list[tuple[str, Any]] = [("name", name)]
    if group:
        details.append(("group", group))
    details.append(("kind", resource))
    message = (
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again"
    )
    return Failure(message, "Conflict", tuple(details))


def _forbidden(
    user: str, verb: str, resource: str, group: str, namespace: str, name: str = ""
) -> Failure:
    base = resource.split("/", 1)[0]
    qualified = f"{base}.{group}" if group else base
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    named = f' "{name}"' if name else ""
    message = (
        f'{qualified}{named} is forbidden: User "{user}" cannot {verb} resource "{resource}"'
        f' in API group "{group}" {where}'
    )
    details: list[tuple[str, Any]] = []
    if name:
        details.append(("name", name))
    if group:
        details.append(("group", group))
    details.append(("kind", base))
    return Failure(message, "Forbidden", tuple(details))


_KUBELET_EVENTS = (
    ("Pulled", 'Container image "IMAGE" already present on machine'),
    ("Created", "Created container app"),
    ("Started", "Started container app"),
    ("Killing", "Stopping container app"),
    (
        "Unhealthy",
        'Readiness probe failed: Get "http://10.244.3.7:8080/ready": context deadline exceeded'
        " (Client.Timeout exceeded while awaiting headers)",
    ),
    ("BackOff", "Back-off restarting failed container app in pod"),
)

_CONTROLLER_WATCHES = (
    ("replicasets", "apps", "v1", "replicaset-controller"),
    ("deployments", "apps", "v1", "deployment-controller"),
    ("pods", "", "v1", "replicaset-controller"),
    ("services", "", "v1", "endpointslice-controller"),
    ("endpointslices", "discovery.k8s.io", "v1", "endpointslice-controller"),
    ("jobs", "batch", "v1", "job-controller"),
    ("cronjobs", "batch", "v1", "cronjob-controller"),
    ("namespaces", "", "v1", "namespace-controller"),
    ("resourcequotas", "", "v1", "resourcequota-controller"),
    ("serviceaccounts", "", "v1", "service-account-controller"),
    ("persistentvolumeclaims", "", "v1", "pvc-protection-controller"),
    ("certificatesigningrequests", "certificates.k8s.io", "v1", "certificate-controller"),
    ("customresourcedefinitions", "apiextensions.k8s.io", "v1", ""),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
    ("nodes", "", "v1", "node-controller"),
)


def requests(seed: int, mix: Mix, start_us: int) -> Iterator[Request]:
    """Yield the endless request stream of a seeded cluster, in order of arrival.

    Examples
    --------
    >>> stream = requests(1, Mix(nodes=3, machine_scale=1.0, human_peak=2.0), 1_725_926_400_000_000)
    >>> first = next(stream)
    >>> first.seq, first.received_us > 1_725_926_400_000_000
    (1, True)
    """
    traffic = _Traffic(seed, mix, start_us)
    while True:
        yield traffic.next()
