"""Request and response bodies of the sample generator, as Kubernetes would serialize them.

A builder returns ``(request_object, response_object)`` as dicts in Go struct-field order
(map-typed fields such as labels, annotations and data are key-sorted, as Go sorts map keys).
Values that change per request (resource versions, timestamps, tokens) are slots, written as
``slot("name")``; the dict is serialized once per (builder, static arguments, managedFields?) and
later requests only join the cached fragments with their slot values. This keeps bodies cheap
enough for multi-million-event corpora.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from kaudit_analytics.sample.gojson import go_json
from kaudit_analytics.sample.model import stable_bits, stable_uid

__all__ = ["Builder", "render", "slot"]

Json = dict[str, Any]
Builder = Callable[..., tuple[Json | None, Json | None]]

_SLOT = re.compile(r"\\u0000(\w+)\\u0000")
_CREATED = "2024-08-19T07:42:13Z"


def slot(name: str) -> str:
    """A placeholder for a per-request value inside a body string."""
    return f"\x00{name}\x00"


Template = tuple[tuple[str, ...], tuple[str, ...]]


def _split(body: Json | None) -> Template | None:
    if body is None:
        return None
    parts = _SLOT.split(go_json(body))
    return tuple(parts[0::2]), tuple(parts[1::2])


@lru_cache(maxsize=8192)
def _templates(
    builder: Builder, args: tuple[Any, ...], managed: bool
) -> tuple[Template | None, Template | None]:
    request, response = builder(*args, managed=managed)
    return _split(request), _split(response)


def _fill(template: Template | None, values: Mapping[str, str]) -> str | None:
    if template is None:
        return None
    texts, names = template
    if not names:
        return texts[0]
    out = [texts[0]]
    for name, text in zip(names, texts[1:], strict=True):
        out.append(values[name])
        out.append(text)
    return "".join(out)


def render(
    builder: Builder, args: tuple[Any, ...], values: Mapping[str, str], *, managed: bool
) -> tuple[str | None, str | None]:
    """Serialize a builder's bodies with the per-request ``values`` filled into its slots.

    Slot values must already be JSON-safe string content (no quotes or backslashes).

    Examples
    --------
    >>> req, resp = render(scale, ("web", "api", 3, 5), {"rv": "42", "ts": "x"}, managed=True)
    >>> req
    '{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"api","namespace":"web","creationTimestamp":null},"spec":{"replicas":5},"status":{}}'
    """
    request, response = _templates(builder, args, managed)
    return _fill(request, values), _fill(response, values)


# --------------------------------------------------------------------------- helpers


def _meta(
    name: str,
    namespace: str = "",
    *,
    uid: str = "",
    rv: str = "",
    generation: int = 0,
    created: str | None = _CREATED,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: Json | None = None,
    finalizers: list[str] | None = None,
    managed_fields: list[Json] | None = None,
    generate_name: str = "",
    deletion: str = "",
) -> Json:
    meta: Json = {"name": name}
    if generate_name:
        meta["generateName"] = generate_name
    if namespace:
        meta["namespace"] = namespace
    if uid:
        meta["uid"] = uid
    if rv:
        meta["resourceVersion"] = rv
    if generation:
        meta["generation"] = generation
    meta["creationTimestamp"] = created
    if deletion:
        meta["deletionTimestamp"] = deletion
        meta["deletionGracePeriodSeconds"] = 30
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    if owner:
        meta["ownerReferences"] = [owner]
    if finalizers:
        meta["finalizers"] = finalizers
    if managed_fields:
        meta["managedFields"] = managed_fields
    return meta


def _mf(
    manager: str, api_version: str, time: str, fields: Json, *, op: str = "Update", sub: str = ""
) -> Json:
    entry: Json = {
        "manager": manager,
        "operation": op,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if sub:
        entry["subresource"] = sub
    return entry


def _owner(kind: str, name: str, uid: str, api: str = "apps/v1", controller: bool = True) -> Json:
    ref: Json = {"apiVersion": api, "kind": kind, "name": name, "uid": uid}
    if controller:
        ref["controller"] = True
        ref["blockOwnerDeletion"] = True
    return ref


def _fields(*paths: str) -> Json:
    """Build a FieldsV1 set from dotted ``f:`` paths (``"f:spec.f:replicas"``)."""
    root: Json = {}
    for path in paths:
        node = root
        for part in path.split("|"):
            node = node.setdefault(part, {})
    return _sorted_fields(root)


def _sorted_fields(node: Json) -> Json:
    # structured-merge-diff writes "." first, then the children in sorted order.
    keys = sorted(node, key=lambda k: (k != ".", k))
    return {k: _sorted_fields(node[k]) for k in keys}


def _status(code: int, *, reason: str = "", message: str = "", details: Json | None = None) -> Json:
    body: Json = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    body["status"] = "Success" if code < 400 else "Failure"
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _digest_ref(image: str) -> str:
    digest = f"{stable_bits(image):032x}{stable_bits(image + 'x'):032x}"
    return f"{image.split(':', 1)[0]}@sha256:{digest}"


def _container_id(name: str) -> str:
    return f"containerd://{stable_bits(name):032x}{stable_bits(name + 'c'):032x}"


def _progressed(name: str) -> str:
    return f'ReplicaSet "{name}-{stable_bits(name, 20):05x}" has successfully progressed.'


# --------------------------------------------------------------------------- leases


def lease(
    name: str, namespace: str, holder: str, duration: int, owner_node: str, *, managed: bool
) -> tuple[Json, Json]:
    """A Lease renewal (kubelet node lease or leader election), request and response."""
    manager = "kubelet" if owner_node else holder.split("_", 1)[0]
    owner = (
        _owner("Node", owner_node, stable_uid("nodes/" + owner_node), "v1", False)
        if owner_node
        else None
    )
    fields = ["f:spec|f:holderIdentity", "f:spec|f:leaseDurationSeconds", "f:spec|f:renewTime"]
    if owner_node:
        fields.append(f'f:metadata|f:ownerReferences|.|k:{{"uid":"{owner["uid"]}"}}')  # type: ignore[index]
    else:
        fields += ["f:spec|f:acquireTime", "f:spec|f:leaseTransitions"]

    def body(rv: str, mf_time: str) -> Json:
        meta = _meta(
            name,
            namespace,
            uid=stable_uid(f"leases/{namespace}/{name}"),
            rv=slot(rv),
            owner=owner,
            managed_fields=[_mf(manager, "coordination.k8s.io/v1", slot(mf_time), _fields(*fields))]
            if managed
            else None,
        )
        spec: Json = {"holderIdentity": holder, "leaseDurationSeconds": duration}
        if not owner_node:
            spec["acquireTime"] = "2024-09-02T03:11:52.418211Z"
        spec["renewTime"] = slot("renew")
        if not owner_node:
            spec["leaseTransitions"] = 7
        return {
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": meta,
            "spec": spec,
        }

    return body("rv_old", "mf_old"), body("rv", "mf")


# --------------------------------------------------------------------------- nodes


_IMAGES = (
    ("registry.k8s.io/kube-proxy", 28_617_318),
    ("registry.example.com/web/frontend", 94_112_430),
    ("registry.example.com/web/api", 211_004_188),
    ("registry.example.com/payments/api", 143_885_261),
    ("quay.io/prometheus/node-exporter", 11_357_892),
    ("docker.io/library/redis", 41_263_712),
    ("registry.k8s.io/ingress-nginx/controller", 106_129_774),
    ("quay.io/jetstack/cert-manager-controller", 20_337_614),
    ("registry.k8s.io/coredns/coredns", 16_190_758),
    ("public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe", 9_321_004),
    ("602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni", 47_921_352),
    ("registry.k8s.io/pause", 321_520),
    *(
        (f"registry.example.com/{team}/{app}", 30_000_000 + 7_919_113 * i)
        for i, (team, app) in enumerate(
            (team, app)
            for team in ("web", "payments", "data", "ml", "platform")
            for app in ("api", "worker", "cron", "migrations", "sidecar")
        )
    ),
)


def _node_object(node: str, ip: str, *, managed: bool) -> Json:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "m6i.2xlarge",
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "eu-west-1",
        "failure-domain.beta.kubernetes.io/zone": "eu-west-1" + "abc"[stable_bits(node, 8) % 3],
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m6i.2xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": "eu-west-1" + "abc"[stable_bits(node, 8) % 3],
    }
    annotations = {
        "alpha.kubernetes.io/provided-node-ip": ip,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    mfs = [
        _mf(
            "kubelet",
            "v1",
            "2024-08-19T07:42:13Z",
            _fields(*(f"f:metadata|f:labels|f:{k}" for k in labels), "f:metadata|f:labels|."),
        ),
        _mf(
            "kubelet",
            "v1",
            slot("mf"),
            _fields(
                'f:status|f:conditions|k:{"type":"DiskPressure"}|f:lastHeartbeatTime',
                'f:status|f:conditions|k:{"type":"MemoryPressure"}|f:lastHeartbeatTime',
                'f:status|f:conditions|k:{"type":"PIDPressure"}|f:lastHeartbeatTime',
                'f:status|f:conditions|k:{"type":"Ready"}|f:lastHeartbeatTime',
                "f:status|f:images",
            ),
            sub="status",
        ),
    ]
    conditions = [
        {
            "type": kind,
            "status": "False",
            "lastHeartbeatTime": slot("heartbeat"),
            "lastTransitionTime": "2024-08-19T07:42:13Z",
            "reason": f"KubeletHas{reason}",
            "message": message,
        }
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "lastHeartbeatTime": slot("heartbeat"),
            "lastTransitionTime": "2024-08-19T07:42:44Z",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
    )
    images = [
        {
            "names": [
                f"{repo}@sha256:{stable_bits(repo):032x}{stable_bits(repo + '2'):032x}",
                f"{repo}:v{1 + i % 4}.{i * 7 % 30}.{i % 9}",
            ],
            "sizeBytes": size,
        }
        for i, (repo, size) in enumerate(_IMAGES)
    ]
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": _meta(
            node,
            uid=stable_uid("nodes/" + node),
            rv=slot("rv"),
            labels=labels,
            annotations=annotations,
            managed_fields=mfs if managed else None,
        ),
        "spec": {"providerID": f"aws:///eu-west-1a/i-0{stable_bits(node, 64):016x}"},
        "status": {
            "capacity": {
                "cpu": "8",
                "ephemeral-storage": "104845292Ki",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": "32386916Ki",
                "pods": "58",
            },
            "allocatable": {
                "cpu": "7910m",
                "ephemeral-storage": "95551679124",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": "31369060Ki",
                "pods": "58",
            },
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": node},
                {"type": "Hostname", "address": node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{stable_bits('m' + node):032x}",
                "systemUUID": f"ec2{stable_bits('s' + node):029x}"[:32],
                "bootID": stable_uid("boot/" + node),
                "kernelVersion": "5.10.223-211.872.amzn2.x86_64",
                "osImage": "Amazon Linux 2",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kubeletVersion": "v1.30.4-eks-a737599",
                "kubeProxyVersion": "v1.30.4-eks-a737599",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": images,
        },
    }


def node_status(node: str, ip: str, *, managed: bool) -> tuple[Json, Json]:
    """A kubelet ``patch nodes/status`` heartbeat: strategic-merge patch and the full Node."""
    patch = {
        "status": {
            "$setElementOrder/conditions": [
                {"type": "MemoryPressure"},
                {"type": "DiskPressure"},
                {"type": "PIDPressure"},
                {"type": "Ready"},
            ],
            "conditions": [
                {"lastHeartbeatTime": slot("heartbeat"), "type": kind}
                for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
        }
    }
    return patch, _node_object(node, ip, managed=managed)


def node_get(node: str, ip: str, *, managed: bool) -> tuple[None, Json]:
    """A ``get nodes``: no request body, the Node as response."""
    return None, _node_object(node, ip, managed=managed)


# --------------------------------------------------------------------------- pods


def _pod_object(
    namespace: str,
    name: str,
    workload: str,
    image: str,
    template_hash: str,
    node: str,
    pod_ip: str,
    *,
    managed: bool,
    phase: str = "Running",
    with_status: bool = True,
    deleting: bool = False,
) -> Json:
    rs = f"{workload}-{template_hash}"
    labels = {"app.kubernetes.io/name": workload, "pod-template-hash": template_hash}
    mfs = [
        _mf(
            "kube-controller-manager",
            "v1",
            "2024-09-02T11:20:31Z",
            _fields(
                "f:metadata|f:generateName",
                "f:metadata|f:labels|.",
                "f:metadata|f:labels|f:app.kubernetes.io/name",
                "f:metadata|f:labels|f:pod-template-hash",
                "f:metadata|f:ownerReferences|.",
                f'f:metadata|f:ownerReferences|k:{{"uid":"{stable_uid("rs/" + rs)}"}}',
                'f:spec|f:containers|k:{"name":"app"}|.',
                'f:spec|f:containers|k:{"name":"app"}|f:image',
                'f:spec|f:containers|k:{"name":"app"}|f:imagePullPolicy',
                'f:spec|f:containers|k:{"name":"app"}|f:name',
                'f:spec|f:containers|k:{"name":"app"}|f:ports|.',
                'f:spec|f:containers|k:{"name":"app"}|f:ports|k:{"containerPort":8080,"protocol":"TCP"}|.',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|.',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|f:limits|.',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|f:limits|f:memory',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|f:requests|.',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|f:requests|f:cpu',
                'f:spec|f:containers|k:{"name":"app"}|f:resources|f:requests|f:memory',
                'f:spec|f:containers|k:{"name":"app"}|f:securityContext|.',
                'f:spec|f:containers|k:{"name":"app"}|f:securityContext|f:allowPrivilegeEscalation',
                'f:spec|f:containers|k:{"name":"app"}|f:securityContext|f:readOnlyRootFilesystem',
                'f:spec|f:containers|k:{"name":"app"}|f:terminationMessagePath',
                'f:spec|f:containers|k:{"name":"app"}|f:terminationMessagePolicy',
                "f:spec|f:dnsPolicy",
                "f:spec|f:enableServiceLinks",
                "f:spec|f:restartPolicy",
                "f:spec|f:schedulerName",
                "f:spec|f:securityContext|.",
                "f:spec|f:securityContext|f:runAsNonRoot",
                "f:spec|f:serviceAccountName",
                "f:spec|f:terminationGracePeriodSeconds",
            ),
        ),
    ]
    if with_status:
        mfs.append(
            _mf(
                "kubelet",
                "v1",
                slot("mf"),
                _fields(
                    'f:status|f:conditions|k:{"type":"ContainersReady"}|.',
                    'f:status|f:conditions|k:{"type":"ContainersReady"}|f:lastProbeTime',
                    'f:status|f:conditions|k:{"type":"ContainersReady"}|f:lastTransitionTime',
                    'f:status|f:conditions|k:{"type":"ContainersReady"}|f:status',
                    'f:status|f:conditions|k:{"type":"Ready"}|.',
                    'f:status|f:conditions|k:{"type":"Ready"}|f:lastTransitionTime',
                    'f:status|f:conditions|k:{"type":"Ready"}|f:status',
                    "f:status|f:containerStatuses",
                    "f:status|f:hostIP",
                    "f:status|f:hostIPs",
                    "f:status|f:phase",
                    "f:status|f:podIP",
                    "f:status|f:podIPs|.",
                    f'f:status|f:podIPs|k:{{"ip":"{pod_ip}"}}|.',
                    f'f:status|f:podIPs|k:{{"ip":"{pod_ip}"}}|f:ip',
                    "f:status|f:startTime",
                ),
                sub="status",
            )
        )
    meta = _meta(
        name,
        namespace,
        uid=stable_uid(f"pods/{namespace}/{name}"),
        rv=slot("rv"),
        labels=labels,
        owner=_owner("ReplicaSet", rs, stable_uid("rs/" + rs)),
        managed_fields=mfs if managed else None,
        generate_name=rs + "-",
        deletion=slot("ts") if deleting else "",
    )
    token_volume = f"kube-api-access-{stable_bits(name, 20):05x}"
    spec: Json = {
        "volumes": [
            {
                "name": token_volume,
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {
                                            "apiVersion": "v1",
                                            "fieldPath": "metadata.namespace",
                                        },
                                    }
                                ]
                            }
                        },
                    ],
                    "defaultMode": 420,
                },
            }
        ],
        "containers": [
            {
                "name": "app",
                "image": image,
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "FEATURES", "value": "a<b && c>d"},
                ],
                "resources": {
                    "limits": {"memory": "512Mi"},
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                },
                "volumeMounts": [
                    {
                        "name": token_volume,
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                },
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
    }
    if node:
        spec["nodeName"] = node
    spec.update(
        {
            "securityContext": {"runAsNonRoot": True},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        }
    )
    status: Json = {"phase": "Pending", "qosClass": "Burstable"}
    if with_status:
        host_ip = f"10.0.16.{10 + stable_bits(node, 8) % 200}"
        status = {
            "phase": phase,
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2024-09-02T11:20:38Z",
                }
                for kind in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": "2024-09-02T11:20:31Z",
            "containerStatuses": [
                {
                    "name": "app",
                    "state": {"running": {"startedAt": "2024-09-02T11:20:37Z"}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": stable_bits(name, 8) % 3,
                    "image": image,
                    "imageID": _digest_ref(image),
                    "containerID": _container_id(name),
                    "started": True,
                }
            ],
            "qosClass": "Burstable",
        }
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}


def pod_create(
    namespace: str, name: str, workload: str, image: str, template_hash: str, *, managed: bool
) -> tuple[Json, Json]:
    """The replicaset controller creating a pod."""
    request = _pod_object(
        namespace, name, workload, image, template_hash, "", "", managed=managed, with_status=False
    )
    # The replicaset controller sends generateName only; the apiserver picks the name.
    request["metadata"].pop("name")
    request["metadata"].pop("uid")
    request["metadata"].pop("resourceVersion")
    request["metadata"]["creationTimestamp"] = None
    response = _pod_object(
        namespace, name, workload, image, template_hash, "", "", managed=managed, with_status=False
    )
    response["metadata"]["creationTimestamp"] = slot("created")
    return request, response


def pod_get(
    namespace: str,
    name: str,
    workload: str,
    image: str,
    template_hash: str,
    node: str,
    pod_ip: str,
    *,
    managed: bool,
) -> tuple[None, Json]:
    """A pod read: no request body, the Pod as response."""
    return None, _pod_object(
        namespace, name, workload, image, template_hash, node, pod_ip, managed=managed
    )


def pod_delete(
    namespace: str,
    name: str,
    workload: str,
    image: str,
    template_hash: str,
    node: str,
    pod_ip: str,
    *,
    managed: bool,
) -> tuple[Json, Json]:
    """A pod deletion: DeleteOptions in, the terminating Pod out."""
    options = {
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/v1",
        "propagationPolicy": "Background",
    }
    return options, _pod_object(
        namespace,
        name,
        workload,
        image,
        template_hash,
        node,
        pod_ip,
        managed=managed,
        deleting=True,
    )


def pod_status(
    namespace: str,
    name: str,
    workload: str,
    image: str,
    template_hash: str,
    node: str,
    pod_ip: str,
    *,
    managed: bool,
) -> tuple[Json, Json]:
    """A kubelet ``patch pods/status``: strategic-merge patch and the full Pod."""
    uid = stable_uid(f"pods/{namespace}/{name}")
    patch = {
        "metadata": {"uid": uid},
        "status": {
            "$setElementOrder/conditions": [
                {"type": k}
                for k in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "conditions": [{"lastTransitionTime": slot("ts"), "type": "Ready"}],
            "containerStatuses": [
                {
                    "containerID": _container_id(name),
                    "image": image,
                    "lastState": {},
                    "name": "app",
                    "ready": True,
                    "restartCount": stable_bits(name, 8) % 3,
                    "started": True,
                    "state": {"running": {"startedAt": "2024-09-02T11:20:37Z"}},
                }
            ],
        },
    }
    return patch, _pod_object(
        namespace, name, workload, image, template_hash, node, pod_ip, managed=managed
    )


def binding(namespace: str, name: str, node: str, *, managed: bool) -> tuple[Json, Json]:
    """The scheduler binding a pod to a node."""
    del managed  # a Binding has no managedFields
    request = {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": stable_uid(f"pods/{namespace}/{name}"),
            "creationTimestamp": None,
        },
        "target": {"kind": "Node", "name": node},
    }
    return request, _status(201)


# --------------------------------------------------------------------------- workloads


def _deployment(
    namespace: str, name: str, image: str, replicas: int, *, managed: bool, applied: bool
) -> Json:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace}
    last_applied = (
        go_json(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "annotations": {},
                    "labels": labels,
                    "name": name,
                    "namespace": namespace,
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": name}},
                        "spec": {
                            "containers": [
                                {"image": image, "name": "app", "ports": [{"containerPort": 8080}]}
                            ]
                        },
                    },
                },
            }
        )
        + "\n"
    )
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last_applied}
    if applied:
        annotations["deployment.kubernetes.io/revision"] = slot("revision")
    mfs = [
        _mf(
            "kubectl-client-side-apply",
            "apps/v1",
            slot("mf"),
            _fields(
                "f:metadata|f:annotations|.",
                "f:metadata|f:annotations|f:kubectl.kubernetes.io/last-applied-configuration",
                "f:metadata|f:labels|.",
                "f:metadata|f:labels|f:app.kubernetes.io/name",
                "f:metadata|f:labels|f:app.kubernetes.io/part-of",
                "f:spec|f:progressDeadlineSeconds",
                "f:spec|f:replicas",
                "f:spec|f:revisionHistoryLimit",
                "f:spec|f:selector",
                "f:spec|f:strategy|f:rollingUpdate|.",
                "f:spec|f:strategy|f:rollingUpdate|f:maxSurge",
                "f:spec|f:strategy|f:rollingUpdate|f:maxUnavailable",
                "f:spec|f:strategy|f:type",
                "f:spec|f:template|f:metadata|f:labels|.",
                "f:spec|f:template|f:metadata|f:labels|f:app.kubernetes.io/name",
                'f:spec|f:template|f:spec|f:containers|k:{"name":"app"}|.',
                'f:spec|f:template|f:spec|f:containers|k:{"name":"app"}|f:image',
                'f:spec|f:template|f:spec|f:containers|k:{"name":"app"}|f:name',
            ),
        ),
        _mf(
            "kube-controller-manager",
            "apps/v1",
            "2024-09-09T16:02:55Z",
            _fields(
                "f:metadata|f:annotations|f:deployment.kubernetes.io/revision",
                "f:status|f:availableReplicas",
                "f:status|f:conditions|.",
                'f:status|f:conditions|k:{"type":"Available"}|.',
                'f:status|f:conditions|k:{"type":"Progressing"}|.',
                "f:status|f:observedGeneration",
                "f:status|f:readyReplicas",
                "f:status|f:replicas",
                "f:status|f:updatedReplicas",
            ),
            sub="status",
        ),
    ]
    template = {
        "metadata": {"creationTimestamp": None, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }
    body: Json = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": _meta(
            name,
            namespace,
            uid=stable_uid(f"deployments/{namespace}/{name}") if applied else "",
            rv=slot("rv") if applied else "",
            generation=17 if applied else 0,
            created=_CREATED if applied else None,
            labels=labels,
            annotations=annotations,
            managed_fields=mfs if managed and applied else None,
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": template,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }
    if applied:
        body["status"] = {
            "observedGeneration": 17,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": "2024-09-02T11:20:41Z",
                    "lastTransitionTime": "2024-09-02T11:20:41Z",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": "2024-09-09T16:02:55Z",
                    "lastTransitionTime": "2024-08-19T07:50:02Z",
                    "reason": "NewReplicaSetAvailable",
                    "message": _progressed(name),
                },
            ],
        }
    return body


def deployment_apply(
    namespace: str, name: str, image: str, replicas: int, *, managed: bool
) -> tuple[Json, Json]:
    """``kubectl apply`` of a Deployment (client-side apply sends the whole object as a patch)."""
    request = _deployment(namespace, name, image, replicas, managed=False, applied=False)
    return request, _deployment(namespace, name, image, replicas, managed=managed, applied=True)


def deployment_get(
    namespace: str, name: str, image: str, replicas: int, *, managed: bool
) -> tuple[None, Json]:
    """A Deployment read."""
    return None, _deployment(namespace, name, image, replicas, managed=managed, applied=True)


def deployment_restart(
    namespace: str, name: str, image: str, replicas: int, *, managed: bool
) -> tuple[Json, Json]:
    """``kubectl rollout restart``: a strategic-merge patch of the template annotations."""
    patch = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": slot("restarted")}
                }
            }
        }
    }
    return patch, _deployment(namespace, name, image, replicas, managed=managed, applied=True)


def scale(namespace: str, name: str, old: int, new: int, *, managed: bool) -> tuple[Json, Json]:
    """``kubectl scale``: a Scale in, the updated Scale out."""
    del managed  # a Scale carries no managedFields
    request = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {"replicas": new},
        "status": {},
    }
    response = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": stable_uid(f"deployments/{namespace}/{name}"),
            "resourceVersion": slot("rv"),
            "creationTimestamp": _CREATED,
        },
        "spec": {"replicas": new},
        "status": {"replicas": old, "selector": f"app.kubernetes.io/name={name}"},
    }
    return request, response


# --------------------------------------------------------------------------- config


def configmap(namespace: str, name: str, keys: int, *, managed: bool) -> tuple[Json, Json]:
    """A ConfigMap update (request and response carry the data)."""
    data = {
        f"setting_{i:02d}.properties": f"# generated\nenabled=true\nthreshold={i * 17 % 100}\nurl=https://svc.{namespace}.svc.cluster.local:8443/v1?a=1&b={i}\n"
        for i in range(keys)
    }

    def body(rv: str, mf: str) -> Json:
        return {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": _meta(
                name,
                namespace,
                uid=stable_uid(f"configmaps/{namespace}/{name}"),
                rv=slot(rv),
                managed_fields=[
                    _mf(
                        "kubectl-edit",
                        "v1",
                        slot(mf),
                        _fields(*(f"f:data|f:{k}" for k in data), "f:data|."),
                    )
                ]
                if managed
                else None,
            ),
            "data": data,
        }

    return body("rv_old", "mf_old"), body("rv", "mf")


def secret(namespace: str, name: str, keys: int, *, managed: bool) -> tuple[Json, Json]:
    """A Secret create: base64 data in both bodies (the loader redacts it)."""
    data = {
        f"key-{i}": base64.b64encode(
            f"s3cr3t-{name}-{i}-{stable_bits(name + str(i), 48):x}".encode()
        ).decode()
        for i in range(keys)
    }
    request = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": _meta(name, namespace, created=None),
        "data": data,
        "type": "Opaque",
    }
    response = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": _meta(
            name,
            namespace,
            uid=stable_uid(f"secrets/{namespace}/{name}"),
            rv=slot("rv"),
            created=slot("created"),
            managed_fields=[
                _mf(
                    "helm",
                    "v1",
                    slot("mf"),
                    _fields("f:data|.", *(f"f:data|f:{k}" for k in data), "f:type"),
                )
            ]
            if managed
            else None,
        ),
        "data": data,
        "type": "Opaque",
    }
    return request, response


def event(
    namespace: str,
    involved: str,
    kind: str,
    reason: str,
    message: str,
    source: str,
    *,
    managed: bool,
) -> tuple[Json, Json]:
    """A core/v1 Event created by a kubelet or a controller."""
    del managed  # Events are created without managedFields by the event recorder's client

    def body(with_meta: bool) -> Json:
        return {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": _meta(
                f"{involved}.{slot('event')}",
                namespace,
                uid=slot("uid") if with_meta else "",
                rv=slot("rv") if with_meta else "",
                created=slot("created") if with_meta else None,
            ),
            "involvedObject": {
                "kind": kind,
                "namespace": namespace,
                "name": involved,
                "uid": stable_uid(f"{kind}/{namespace}/{involved}"),
                "apiVersion": "v1" if kind in ("Pod", "Node") else "apps/v1",
            },
            "reason": reason,
            "message": message,
            "source": {"component": source},
            "firstTimestamp": slot("created"),
            "lastTimestamp": slot("created"),
            "count": 1,
            "type": "Warning" if reason in ("BackOff", "Unhealthy", "FailedMount") else "Normal",
            "eventTime": None,
            "reportingComponent": source,
            "reportingInstance": "",
        }

    return body(False), body(True)


def endpointslice(
    namespace: str, name: str, pod_ips: tuple[str, ...], *, managed: bool
) -> tuple[Json, Json]:
    """The endpointslice controller updating a slice."""

    def body(rv: str) -> Json:
        return {
            "kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": _meta(
                f"{name}-{stable_bits(name, 20):05x}",
                namespace,
                uid=stable_uid(f"endpointslices/{namespace}/{name}"),
                rv=slot(rv),
                generation=311,
                labels={
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "kubernetes.io/service-name": name,
                },
                owner=_owner("Service", name, stable_uid(f"services/{namespace}/{name}"), "v1"),
                managed_fields=[
                    _mf(
                        "kube-controller-manager",
                        "discovery.k8s.io/v1",
                        slot("mf"),
                        _fields("f:addressType", "f:endpoints", "f:metadata|f:labels|.", "f:ports"),
                    )
                ]
                if managed
                else None,
            ),
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": [ip],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": f"{name}-{i}",
                        "uid": stable_uid(ip),
                    },
                }
                for i, ip in enumerate(pod_ips)
            ],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        }

    return body("rv_old"), body("rv")


# --------------------------------------------------------------------------- authn / authz


def token_review(audience: str, *, managed: bool) -> tuple[Json, Json]:
    """A TokenReview (the token is in the request: the loader redacts it)."""
    request = {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": slot("token"), "audiences": [audience]},
        "status": {"user": {}},
    }
    response = {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "creationTimestamp": None,
            "managedFields": [
                _mf(
                    "kube-rbac-proxy",
                    "authentication.k8s.io/v1",
                    slot("mf"),
                    _fields("f:spec|f:audiences", "f:spec|f:token"),
                )
            ],
        }
        if managed
        else {"creationTimestamp": None},
        "spec": {"token": slot("token"), "audiences": [audience]},
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:monitoring:prometheus-k8s",
                "uid": stable_uid(
                    "serviceaccounts/system:serviceaccount:monitoring:prometheus-k8s"
                ),
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:monitoring",
                    "system:authenticated",
                ],
            },
            "audiences": [audience],
        },
    }
    return request, response


def token_request(
    namespace: str, service_account: str, pod: str, *, managed: bool
) -> tuple[Json, Json]:
    """A kubelet ``create serviceaccounts/token`` for a projected volume (token in the response)."""
    del managed
    spec = {
        "audiences": ["https://kubernetes.default.svc.cluster.local"],
        "expirationSeconds": 3607,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": pod,
            "uid": stable_uid(f"pods/{namespace}/{pod}"),
        },
    }
    request = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"token": "", "expirationTimestamp": None},
    }
    response = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": service_account,
            "namespace": namespace,
            "creationTimestamp": slot("created"),
        },
        "spec": spec,
        "status": {"token": slot("token"), "expirationTimestamp": slot("expires")},
    }
    return request, response


def subject_access_review(
    user: str, verb: str, resource: str, namespace: str, *, managed: bool
) -> tuple[Json, Json]:
    """A SubjectAccessReview as sent by webhook authorizers (kubelet, kube-rbac-proxy)."""
    del managed
    spec = {
        "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
        "user": user,
        "groups": ["system:authenticated"],
        "uid": stable_uid("u/" + user),
    }
    request = {
        "kind": "SubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": False},
    }
    response = {
        "kind": "SubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {
            "allowed": True,
            "reason": (
                'RBAC: allowed by ClusterRoleBinding "prometheus-k8s" of ClusterRole'
                f' "prometheus-k8s" to User "{user}"'
            ),
        },
    }
    return request, response


def self_subject_access_review(
    verb: str, resource: str, namespace: str, allowed: bool, *, managed: bool
) -> tuple[Json, Json]:
    """``kubectl auth can-i``."""
    del managed
    spec = {"resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}}
    request = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": False},
    }
    status: Json = {"allowed": allowed}
    if not allowed:
        status["reason"] = "no RBAC policy matched"
    response = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
    return request, response


def role_binding(
    namespace: str, name: str, role: str, subject: str, *, managed: bool
) -> tuple[Json, Json]:
    """An RBAC RoleBinding create (a ClusterRoleBinding when ``namespace`` is empty)."""
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    subject_json = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": subject}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
    request = {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": _meta(name, namespace, created=None),
        "subjects": [subject_json],
        "roleRef": role_ref,
    }
    response = {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": _meta(
            name,
            namespace,
            uid=slot("uid"),
            rv=slot("rv"),
            created=slot("created"),
            managed_fields=[
                _mf(
                    "kubectl-create",
                    "rbac.authorization.k8s.io/v1",
                    slot("mf"),
                    _fields("f:roleRef", "f:subjects"),
                )
            ]
            if managed
            else None,
        ),
        "subjects": [subject_json],
        "roleRef": role_ref,
    }
    return request, response


def csr(node: str, *, managed: bool) -> tuple[Json, Json]:
    """A kubelet serving-certificate CertificateSigningRequest."""
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + "\n".join(
            base64.b64encode(f"{node}-{i}-{stable_bits(node + str(i)):032x}".encode()).decode()[:64]
            for i in range(6)
        )
        + "\n-----END CERTIFICATE REQUEST-----\n"
    )
    spec = {
        "request": base64.b64encode(pem.encode()).decode(),
        "signerName": "kubernetes.io/kubelet-serving",
        "usages": ["digital signature", "server auth"],
        "username": f"system:node:{node}",
        "groups": ["system:nodes", "system:authenticated"],
    }
    request = {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"generateName": "csr-", "creationTimestamp": None},
        "spec": {k: spec[k] for k in ("request", "signerName", "usages")},
        "status": {},
    }
    response = {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": _meta(
            "csr-" + slot("suffix"),
            uid=slot("uid"),
            rv=slot("rv"),
            created=slot("created"),
            managed_fields=[
                _mf(
                    "kubelet",
                    "certificates.k8s.io/v1",
                    slot("mf"),
                    _fields(
                        "f:metadata|f:generateName",
                        "f:spec|f:request",
                        "f:spec|f:signerName",
                        "f:spec|f:usages",
                    ),
                )
            ]
            if managed
            else None,
            generate_name="csr-",
        ),
        "spec": spec,
        "status": {},
    }
    return request, response


def crd(group: str, kind: str, properties: int, *, managed: bool) -> tuple[Json, Json]:
    """A CustomResourceDefinition apply with a large openAPIV3Schema (the big bodies)."""
    plural = kind.lower() + "s"
    props = {
        f"field{i:04d}": {
            "description": (
                f"field{i:04d} configures part {i} of the {kind}. Values <0 & >100 are"
                f" rejected; see https://docs.example.com/{plural}#field{i}."
            ),
            "type": "integer" if i % 3 else "string",
        }
        for i in range(properties)
    }
    spec = {
        "group": group,
        "names": {
            "plural": plural,
            "singular": kind.lower(),
            "kind": kind,
            "listKind": kind + "List",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": props},
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
                "subresources": {"status": {}},
            }
        ],
        "conversion": {"strategy": "None"},
    }
    request = {
        "kind": "CustomResourceDefinition",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": _meta(f"{plural}.{group}", created=None),
        "spec": spec,
        "status": {},
    }
    response = {
        "kind": "CustomResourceDefinition",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": _meta(
            f"{plural}.{group}",
            uid=stable_uid(f"crd/{plural}.{group}"),
            rv=slot("rv"),
            generation=4,
            managed_fields=[
                _mf(
                    "kubectl",
                    "apiextensions.k8s.io/v1",
                    slot("mf"),
                    _fields(
                        "f:spec|f:group", "f:spec|f:names", "f:spec|f:scope", "f:spec|f:versions"
                    ),
                    op="Apply",
                )
            ]
            if managed
            else None,
        ),
        "spec": spec,
        "status": {"acceptedNames": spec["names"], "storedVersions": ["v1"]},
    }
    return request, response


# --------------------------------------------------------------------------- reads


# The column definitions kube-apiserver sends with a pod Table (descriptions from the API).
_POD_COLUMNS = (
    (
        "Name",
        "string",
        "name",
        (
            "Name must be unique within a namespace. Is required when creating "
            "resources, although some resources may allow a client to request the "
            "generation of an appropriate name automatically. Name is primarily intended "
            "for creation idempotence and configuration definition. Cannot be updated. "
            "More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#name"
            "s"
        ),
        0,
    ),
    (
        "Ready",
        "string",
        "",
        ("The aggregate readiness state of this pod for accepting traffic."),
        0,
    ),
    (
        "Status",
        "string",
        "",
        ("The aggregate status of the containers in this pod."),
        0,
    ),
    (
        "Restarts",
        "string",
        "",
        (
            "The number of times the containers in this pod have been restarted and when "
            "the last container in this pod has restarted."
        ),
        0,
    ),
    (
        "Age",
        "string",
        "",
        (
            "CreationTimestamp is a timestamp representing the server time when this "
            "object was created. It is not guaranteed to be set in happens-before order "
            "across separate operations. Clients may not set this value. It is "
            "represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
            "Read-only. Null for lists. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-convent"
            "ions.md#metadata"
        ),
        0,
    ),
    (
        "IP",
        "string",
        "",
        (
            "podIP address allocated to the pod. Routable at least within the cluster. "
            "Empty if not yet allocated."
        ),
        1,
    ),
    (
        "Node",
        "string",
        "",
        (
            "NodeName indicates in which node this pod is scheduled. If empty, this pod "
            "is a candidate for scheduling by the scheduler defined in schedulerName."
        ),
        1,
    ),
)


def pod_table(
    namespace: str, pods: tuple[tuple[str, str, str, str], ...], *, managed: bool
) -> tuple[None, Json]:
    """``kubectl get pods``: a meta.k8s.io/v1 Table whose rows carry PartialObjectMetadata."""
    rows = []
    for name, workload, template_hash, node in pods:
        rs = f"{workload}-{template_hash}"
        meta = _meta(
            name,
            namespace,
            uid=stable_uid(f"pods/{namespace}/{name}"),
            rv=str(1_000_000 + stable_bits(name, 20)),
            labels={"app.kubernetes.io/name": workload, "pod-template-hash": template_hash},
            owner=_owner("ReplicaSet", rs, stable_uid("rs/" + rs)),
            managed_fields=[
                _mf(
                    "kube-controller-manager",
                    "v1",
                    "2024-09-02T11:20:31Z",
                    _fields(
                        "f:metadata|f:generateName", "f:metadata|f:labels|.", "f:spec|f:containers"
                    ),
                ),
                _mf(
                    "kubelet",
                    "v1",
                    "2024-09-02T11:20:38Z",
                    _fields("f:status|f:conditions", "f:status|f:podIP", "f:status|f:phase"),
                    sub="status",
                ),
            ]
            if managed
            else None,
            generate_name=rs + "-",
        )
        rows.append(
            {
                "cells": [
                    name,
                    "1/1",
                    "Running",
                    stable_bits(name, 8) % 3,
                    "8d",
                    f"10.244.{stable_bits(name, 8)}.{stable_bits(name + 'i', 8)}",
                    node,
                ],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
        )
    table = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": slot("rv")},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": d, "priority": p}
            for n, t, f, d, p in _POD_COLUMNS
        ],
        "rows": rows,
    }
    return None, table


def status_body(
    code: int, reason: str, message: str, details: tuple[tuple[str, str], ...], *, managed: bool
) -> tuple[None, Json]:
    """The Status a failed request returns (the response object at RequestResponse)."""
    del managed
    return None, _status(code, reason=reason, message=message, details=dict(details) or None)
