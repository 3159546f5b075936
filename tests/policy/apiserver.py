"""A small kube-apiserver log backend for tests: the same requests written under any policy.

Real-shaped requests (bodies modelled on kube-apiserver v1.36 output: a kubectl ``get`` that
answers with a ``meta.k8s.io/v1`` Table whose rows carry managedFields, a list whose items
do, a patch whose body names ``metadata.managedFields``, long-running requests that fail with
a ``Status`` before their stream starts, a failed login, discovery) and ``emit``, which
writes them as the apiserver's log backend would under a policy, following
``reference/policy-semantics.md`` §6 and ``apiserver/pkg/audit/request.go``:

* the level and stages come from the policy (evaluated once per request);
* ``requestObject`` at Request and above, ``responseObject`` at RequestResponse;
* ``omitManagedFields`` drops ``metadata.managedFields`` from the object, from every item of a
  list and from every row object of a Table (``copyWithoutManagedFields``), never from a
  patch (``LogRequestPatch`` logs the patch as sent);
* a ``ResponseStarted`` carries what was set before the first write (an error ``Status``);
  ``RequestReceived`` has no status, bodies, annotations nor back-filled objectRef fields.

The JSON is written as Go's encoding/json writes it (compact, ``<``, ``>``, ``&`` escaped).
"""

from __future__ import annotations

import copy
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from kaudit_analytics.policy import Policy, request_info

__all__ = ["REQUESTS", "Request", "emit", "go_json", "strip_managed_fields"]

Json = dict[str, Any]


def go_json(value: Any) -> str:
    """Compact JSON as Go writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _mf(manager: str, fields: Json, *, operation: str = "Update", sub: str = "") -> Json:
    entry: Json = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": "2026-11-27T05:10:31Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if sub:
        entry["subresource"] = sub
    return entry


def _meta(
    name: str, namespace: str = "", *, managed: list[Json] | None = None, rv: str = "301"
) -> Json:
    meta: Json = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta |= {
        "uid": f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}",
        "resourceVersion": rv,
        "creationTimestamp": "2026-11-27T05:10:31Z",
        "labels": {"app": name},
    }
    if managed:
        meta["managedFields"] = managed
    return meta


_KUBECTL_MF = [
    _mf(
        "kubectl-create",
        {"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    )
]
_NODE_MF = [
    _mf("kubelet", {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/hostname": {}}}}),
    _mf(
        "kubelet",
        {"f:status": {"f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}}}},
        sub="status",
    ),
]


def _configmap(
    name: str, namespace: str, *, managed: bool = True, value: str = "a<b & c>d"
) -> Json:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": _meta(name, namespace, managed=_KUBECTL_MF if managed else None),
        "data": {"k": value},
    }


def _table(rows: list[Json]) -> Json:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "402"},
        "columnDefinitions": [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name must be unique.",
                "priority": 0,
            },
            {
                "name": "Age",
                "type": "string",
                "format": "",
                "description": "Created at.",
                "priority": 0,
            },
        ],
        "rows": [
            {
                "cells": [row["metadata"]["name"], "5s"],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": row["metadata"],
                },
            }
            for row in rows
        ],
    }


def _status(code: int, reason: str, message: str) -> Json:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


_ADMIN = ("admin", ("system:masters", "system:authenticated"))
_ALICE = ("alice", ("developers", "system:authenticated"))
_NODE = ("system:node:node-1", ("system:nodes", "system:authenticated"))
_KCM = ("system:kube-controller-manager", ("system:authenticated",))
_ANONYMOUS = ("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Request:
    """One request as the apiserver served it (what every policy's log is written from)."""

    audit_id: str
    verb: str
    uri: str
    who: tuple[str, tuple[str, ...]] | None
    code: int
    received: str
    completed: str
    request_body: Json | None = None
    response_body: Json | None = None
    #: objectRef fields the apiserver back-fills from the body after RequestReceived.
    late_ref: dict[str, str] = field(default_factory=dict)
    long_running: bool = False
    latency_ms: int = 0
    impersonated: tuple[str, tuple[str, ...]] | None = None

    @property
    def status(self) -> Json:
        if self.response_body is not None and self.response_body.get("kind") == "Status":
            body = self.response_body
            return {"metadata": {}, "status": body["status"], "message": body["message"],
                    "reason": body["reason"], "code": self.code}  # fmt: skip
        return {"metadata": {}, "code": self.code}


_T = "2026-11-27T05:10:{:02d}.{:06d}Z"


def _at(second: int, micro: int = 0) -> str:
    return _T.format(second, micro)


REQUESTS: tuple[Request, ...] = (
    Request(
        "a0000000-0000-4000-8000-000000000001",
        "get",
        "/api/v1/namespaces/team-a",
        _ADMIN,
        200,
        _at(31, 1000),
        _at(31, 2000),
        response_body=_table(
            [
                {
                    "metadata": _meta(
                        "team-a",
                        managed=[_mf("kubectl-create", {"f:metadata": {"f:labels": {".": {}}}})],
                    )
                }
            ]
        ),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000002",
        "list",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles?limit=500",
        _ADMIN,
        200,
        _at(32),
        _at(32, 9000),
        latency_ms=612,
        response_body={
            "kind": "ClusterRoleList",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"resourceVersion": "402"},
            "items": [
                {
                    "metadata": _meta(n, managed=[_mf("kube-apiserver", {"f:rules": {}})]),
                    "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
                }
                for n in ("admin", "edit", "view")
            ],
        },
    ),
    Request(
        "a0000000-0000-4000-8000-000000000003",
        "create",
        "/api/v1/namespaces/team-a/configmaps?fieldManager=kubectl-create",
        _ADMIN,
        201,
        _at(33),
        _at(33, 4000),
        request_body=_configmap("settings", "team-a", managed=False),
        response_body=_configmap("settings", "team-a"),
        late_ref={
            "name": "settings",
            "uid": "00000000-0000-4000-8000-000000000033",
            "resourceVersion": "311",
        },
    ),
    Request(
        "a0000000-0000-4000-8000-000000000004",
        "update",
        "/api/v1/namespaces/team-a/configmaps/settings",
        _ALICE,
        200,
        _at(34),
        _at(34, 5000),
        request_body=_configmap("settings", "team-a", value="v2"),
        response_body=_configmap("settings", "team-a", value="v2"),
        late_ref={"uid": "00000000-0000-4000-8000-000000000033", "resourceVersion": "312"},
    ),
    # A merge patch that resets managedFields: the patch is logged as sent, managedFields and all.
    Request(
        "a0000000-0000-4000-8000-000000000005",
        "patch",
        "/api/v1/namespaces/team-a/configmaps/settings",
        _ADMIN,
        200,
        _at(35),
        _at(35, 3000),
        request_body={"metadata": {"managedFields": [{}], "labels": {"tier": "web"}}},
        response_body=_configmap("settings", "team-a"),
        late_ref={"uid": "00000000-0000-4000-8000-000000000033", "resourceVersion": "313"},
    ),
    Request(
        "a0000000-0000-4000-8000-000000000006",
        "get",
        "/api/v1/nodes/node-1",
        _NODE,
        200,
        _at(36),
        _at(36, 800),
        response_body={
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": _meta("node-1", managed=_NODE_MF),
            "spec": {"podCIDR": "10.244.0.0/24"},
        },
    ),
    # Long-running requests that fail before their stream starts: the Status is in both events.
    Request(
        "a0000000-0000-4000-8000-000000000007",
        "get",
        "/api/v1/namespaces/team-a/pods/web-0/log?container=app",
        _ALICE,
        500,
        _at(37),
        _at(37, 9000),
        long_running=True,
        response_body=_status(
            500,
            "InternalError",
            'Get "https://127.0.0.1:10250/containerLogs/team-a/web-0/app": '
            "dial tcp 127.0.0.1:10250: connect: connection refused",
        ),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000008",
        "create",
        "/api/v1/namespaces/team-a/pods/web-0/exec?command=true&container=app&stdout=true",
        _ADMIN,
        400,
        _at(38),
        _at(38, 2000),
        long_running=True,
        response_body=_status(400, "BadRequest", "pod web-0 does not have a host assigned"),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000009",
        "watch",
        "/api/v1/namespaces/team-a/pods?watch=true&timeoutSeconds=2",
        _KCM,
        200,
        _at(39),
        _at(41, 10),
        long_running=True,
    ),
    Request(
        "a0000000-0000-4000-8000-000000000010",
        "get",
        "/healthz",
        _ANONYMOUS,
        200,
        _at(42),
        _at(42, 300),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000011",
        "get",
        "/metrics",
        _ANONYMOUS,
        403,
        _at(43),
        _at(43, 200),
        response_body=_status(
            403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "/metrics"'
        ),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000012",
        "get",
        "/api",
        _ALICE,
        200,
        _at(44),
        _at(44, 500),
        response_body={
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
            ],
        },
    ),
    Request(
        "a0000000-0000-4000-8000-000000000013",
        "deletecollection",
        "/api/v1/namespaces/team-a/configmaps?labelSelector=app%3Dsettings",
        _ADMIN,
        200,
        _at(45),
        _at(45, 7000),
        response_body={
            "kind": "ConfigMapList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "320"},
            "items": [_configmap("settings", "team-a")],
        },
    ),
    Request(
        "a0000000-0000-4000-8000-000000000014",
        "delete",
        "/api/v1/namespaces/team-a/configmaps/old",
        _ADMIN,
        200,
        _at(46),
        _at(46, 4000),
        request_body={
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        },
        response_body=_configmap("old", "team-a"),
        late_ref={"uid": "00000000-0000-4000-8000-000000000046", "resourceVersion": "321"},
    ),
    Request(
        "a0000000-0000-4000-8000-000000000015",
        "list",
        "/api/v1/namespaces/team-a/secrets",
        _ALICE,
        403,
        _at(47),
        _at(47, 100),
        response_body=_status(
            403, "Forbidden", 'secrets is forbidden: User "alice" cannot list resource "secrets"'
        ),
        impersonated=None,
    ),
    Request(
        "a0000000-0000-4000-8000-000000000016",
        "get",
        "/api/v1/namespaces/team-a/pods",
        None,
        401,
        _at(48),
        _at(48, 50),
        response_body=_status(401, "Unauthorized", "Unauthorized"),
    ),
    Request(
        "a0000000-0000-4000-8000-000000000017",
        "get",
        "/api/v1/namespaces/team-a/configmaps/settings",
        _ADMIN,
        200,
        _at(49),
        _at(49, 900),
        impersonated=_ALICE,
        response_body=_configmap("settings", "team-a"),
    ),
)


def strip_managed_fields(obj: Json) -> Json:
    """``copyWithoutManagedFields``: the object's, every list item's and every Table row's."""
    out = copy.deepcopy(obj)
    candidates = [out]
    if isinstance(out.get("items"), list):
        candidates += out["items"]
    if out.get("kind") == "Table":
        candidates += [row.get("object") or {} for row in out.get("rows") or []]
    for item in candidates:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
    return out


_RANK = {"None": 0, "Metadata": 1, "Request": 2, "RequestResponse": 3}


def _object_ref(req: Request, *, late: bool) -> Json | None:
    info = request_info(req.verb, req.uri)
    if not info.is_resource_request:
        return None
    ref: Json = {"resource": info.resource}
    if info.namespace:
        ref["namespace"] = info.namespace
    name = info.name or (req.late_ref.get("name", "") if late else "")
    if name:
        ref["name"] = name
    if late and "uid" in req.late_ref:
        ref["uid"] = req.late_ref["uid"]
    if info.api_group:
        ref["apiGroup"] = info.api_group
    ref["apiVersion"] = info.api_version
    if late and "resourceVersion" in req.late_ref:
        ref["resourceVersion"] = req.late_ref["resourceVersion"]
    if info.subresource:
        ref["subresource"] = info.subresource
    return ref


def _event(
    req: Request, policy_level: str, stage: str, *, omit_managed: bool, started_at: str
) -> str:
    received = stage == "RequestReceived"
    event: Json = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": policy_level,
        "auditID": req.audit_id,
        "stage": stage,
        "requestURI": req.uri,
        "verb": req.verb,
    }
    if req.who is None:
        event["user"] = {}
    else:
        event["user"] = {
            "username": req.who[0],
            "uid": f"uid-{req.who[0]}",
            "groups": list(req.who[1]),
        }
    if req.impersonated is not None and not received:
        event["impersonatedUser"] = {
            "username": req.impersonated[0],
            "groups": list(req.impersonated[1]),
        }
    event["sourceIPs"] = ["127.0.0.1"]
    event["userAgent"] = "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0"
    ref = _object_ref(req, late=not received)
    if ref is not None:
        event["objectRef"] = ref
    if not received:
        event["responseStatus"] = req.status
        rank = _RANK[policy_level]
        if req.request_body is not None and rank >= _RANK["Request"] and req.code < 400:
            body = req.request_body
            if omit_managed and req.verb != "patch":
                body = strip_managed_fields(body)
            event["requestObject"] = body
        if req.response_body is not None and rank >= _RANK["RequestResponse"]:
            body = strip_managed_fields(req.response_body) if omit_managed else req.response_body
            event["responseObject"] = body
    event["requestReceivedTimestamp"] = req.received
    event["stageTimestamp"] = {"RequestReceived": req.received, "ResponseStarted": started_at}.get(
        stage, req.completed
    )
    if not received:
        denied = req.code == 403
        annotations = {
            "authorization.k8s.io/decision": "forbid" if denied else "allow",
            "authorization.k8s.io/reason": "" if denied else "RBAC: allowed",
        }
        if req.latency_ms and stage != "ResponseStarted":
            annotations["apiserver.latency.k8s.io/total"] = f"{req.latency_ms}ms"
        if req.code != 401:
            event["annotations"] = annotations
    return go_json(event)


def emit(requests: tuple[Request, ...], policy: Policy) -> list[tuple[str, str, str]]:
    """``(audit_id, stage, line)`` for every event the apiserver writes under ``policy``."""
    out = []
    for req in requests:
        info = request_info(req.verb, req.uri)
        user = None if req.who is None else req.who[0]
        cfg = policy.evaluate_request(
            info.attributes(user=user, groups=req.who[1] if req.who else ())
        )
        if cfg.level == "None":
            continue
        if req.code == 401:  # a failed login: one ResponseStarted event (authn_audit.go)
            stages = ["ResponseStarted"]
        elif req.long_running:
            stages = ["RequestReceived", "ResponseStarted", "ResponseComplete"]
        else:
            stages = ["RequestReceived", "ResponseComplete"]
        for stage in stages:
            if stage in cfg.omit_stages:
                continue
            line = _event(
                req,
                cfg.level,
                stage,
                omit_managed=cfg.omit_managed_fields,
                started_at=req.received[:-4] + "900Z",
            )
            out.append((req.audit_id, stage, line))
    return out
