"""Emission half of the sample generator: what a kube-apiserver log backend writes for a request.

For each request of the stream the audit policy decides the level, the omitted stages and
whether managedFields go; this module then writes the stages the apiserver's audit filter
emits (``endpoints/filters/audit.go``), in the order a log file receives them (by stage
timestamp), each line byte for byte as Go's ``encoding/json`` encodes an ``audit.k8s.io/v1``
Event.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kaudit_analytics.policy import RequestAttributes
from kaudit_analytics.sample import bodies
from kaudit_analytics.sample.gojson import go_json, go_quote, micro_time, seconds_time
from kaudit_analytics.sample.model import Identity
from kaudit_analytics.sample.traffic import LONG, PANIC, UNAUTHENTICATED, Failure, Ref, Request

if TYPE_CHECKING:
    from kaudit_analytics.policy import AuditConfig, Policy

__all__ = ["MAX_EVENT_BYTES", "Emitter", "ordered_lines"]

#: ``--audit-log-truncate-max-event-size`` default: bigger events lose their bodies.
MAX_EVENT_BYTES = 102_400

_LEVEL_RANK = {"None": 0, "Metadata": 1, "Request": 2, "RequestResponse": 3}
_HEAD = '{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"'
_TRUNCATED = ("audit.k8s.io/truncated", "true")


def _ref_json(ref: Ref) -> str:
    parts = [f'"resource":"{ref.resource}"'] if ref.resource else []
    if ref.namespace:
        parts.append(f'"namespace":"{ref.namespace}"')
    if ref.name:
        parts.append(f'"name":{go_quote(ref.name)}')
    if ref.uid:
        parts.append(f'"uid":"{ref.uid}"')
    if ref.api_group:
        parts.append(f'"apiGroup":"{ref.api_group}"')
    if ref.api_version:
        parts.append(f'"apiVersion":"{ref.api_version}"')
    if ref.rv:
        parts.append(f'"resourceVersion":"{ref.rv}"')
    if ref.subresource:
        parts.append(f'"subresource":"{ref.subresource}"')
    return "{" + ",".join(parts) + "}"


def _status_fields(code: int, failure: Failure | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if failure is not None and (failure.message or failure.reason):
        fields["status"] = "Failure"
        if failure.message:
            fields["message"] = failure.message
        if failure.reason:
            fields["reason"] = failure.reason
        if failure.details:
            fields["details"] = dict(failure.details)
    fields["code"] = code
    return fields


def _status_json(code: int, failure: Failure | None) -> str:
    if failure is None:
        return '{"metadata":{},"code":' + str(code) + "}"
    return go_json({"metadata": {}, **_status_fields(code, failure)})


def _status_object(code: int, failure: Failure) -> str:
    return go_json(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, **_status_fields(code, failure)}
    )


def _time_values(epoch_us: int) -> dict[str, str]:
    seconds = seconds_time(epoch_us)
    return {
        "mf": seconds,
        "mf_old": seconds_time(epoch_us - 10_000_000),
        "renew": micro_time(epoch_us),
        "heartbeat": seconds,
        "ts": seconds,
        "created": seconds,
    }


_TAILS: dict[tuple[tuple[str, str], ...], str] = {}


def _annotation_tail(annotations: tuple[tuple[str, str], ...]) -> str:
    tail = _TAILS.get(annotations)
    if tail is None:
        body = ",".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in annotations)
        tail = ',"annotations":{' + body + "}}\n"
        if len(_TAILS) > 50_000:
            _TAILS.clear()
        _TAILS[annotations] = tail
    return tail


_PLAIN_URI = re.compile(r"[\x20-\x7e]*")
_PLAIN_URI_REJECTS = re.compile(r'["\\<>]')


def _quote_uri(uri: str) -> str:
    # Request URIs are printable ASCII; only the query's & needs Go's HTML escape. Anything
    # unusual takes the exact, slower path.
    if _PLAIN_URI.fullmatch(uri) and not _PLAIN_URI_REJECTS.search(uri):
        return '"' + uri.replace("&", "\\u0026") + '"'
    return go_quote(uri)


class Emitter:
    """Turns requests into audit lines under one policy (decisions cached per attributes)."""

    def __init__(self, policy: Policy, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.policy = policy
        self.max_event_bytes = max_event_bytes
        self._decisions: dict[tuple[Any, ...], AuditConfig] = {}
        self._refs: dict[tuple[str, ...], tuple[str, str, str, str]] = {}
        self._who: dict[str, str] = {}
        self._authz: dict[tuple[str, str], str] = {}

    def decide(self, req: Request) -> AuditConfig:
        """The policy's decision for a request (``EvaluatePolicyRule`` on its attributes)."""
        user = req.user
        ref = req.ref
        name = user.name if req.kind != UNAUTHENTICATED else None
        key = (name, user.groups, req.verb, ref[:6] if ref else req.path)
        cfg = self._decisions.get(key)
        if cfg is None:
            cfg = self.policy.evaluate_request(_attributes(req, name))
            if len(self._decisions) > 200_000:
                self._decisions.clear()
            self._decisions[key] = cfg
        return cfg

    def _where(self, user: Identity) -> str:
        # sourceIPs and userAgent, rendered once per identity.
        text = self._who.get(user.json + user.source_ip)
        if text is None:
            text = ',"sourceIPs":["' + user.source_ip + '"]'
            if user.user_agent:
                text += ',"userAgent":' + go_quote(user.user_agent)
            self._who[user.json + user.source_ip] = text
        return text

    def _ref_parts(self, ref: Ref) -> tuple[str, str, str, str]:
        base = ref[:6]
        parts = self._refs.get(base)
        if parts is None:
            head = Ref(ref.resource, ref.namespace, ref.name, "", "", "")
            group = Ref("", "", "", ref.api_group, ref.api_version, "")
            sub = Ref("", "", "", "", "", ref.subresource)
            whole = ',"objectRef":' + _ref_json(Ref(*base))
            parts = (_ref_json(head)[1:-1], _ref_json(group)[1:-1], _ref_json(sub)[1:-1], whole)
            if len(self._refs) > 100_000:
                self._refs.clear()
            self._refs[base] = parts
        return parts

    def _ref_json(self, ref: Ref, *, late: bool) -> str:
        head, group, sub, whole = self._ref_parts(ref)
        if not late or not (ref.uid or ref.rv or ref.late_name):
            return whole
        fields = [head]
        if late and ref.late_name:
            fields.append(f'"name":{go_quote(ref.late_name)}')
        if late and ref.uid:
            fields.append(f'"uid":"{ref.uid}"')
        fields.append(group)
        if late and ref.rv:
            fields.append(f'"resourceVersion":"{ref.rv}"')
        fields.append(sub)
        return ',"objectRef":{' + ",".join(f for f in fields if f) + "}"

    def _tail(self, req: Request) -> str:
        if req.annotations:
            return _annotation_tail(tuple(sorted(_pairs(req))))
        subject = req.impersonated or req.user
        key = (req.decision, "" if req.decision == "forbid" else subject.authz_reason)
        tail = self._authz.get(key)
        if tail is None:
            # Two keys, already in sorted order: decision < reason.
            tail = self._authz[key] = _annotation_tail(_pairs(req))
        return tail

    def events(self, req: Request) -> list[tuple[int, str]]:
        """The (stage timestamp in µs, line) pairs the apiserver writes for ``req``."""
        cfg = self.decide(req)
        level = cfg.level
        if level == "None":
            return []
        omit = cfg.omit_stages
        user = req.user
        kind = req.kind
        received = micro_time(req.received_us)
        head = f'{_HEAD}{level}","auditID":"{req.audit_id}","stage":"'
        who = f'","requestURI":{_quote_uri(req.uri)},"verb":"{req.verb}","user":{user.json}'
        where = self._where(user)
        ref = req.ref
        out: list[tuple[int, str]] = []
        if kind != UNAUTHENTICATED and "RequestReceived" not in omit:
            early = self._ref_json(ref, late=False) if ref is not None else ""
            out.append(
                (
                    req.received_us,
                    f'{head}RequestReceived{who}{where}{early},"requestReceivedTimestamp":"{received}"'
                    f',"stageTimestamp":"{received}"}}\n',
                )
            )
        imp = ',"impersonatedUser":' + req.impersonated.json if req.impersonated is not None else ""
        late = who + imp + where + (self._ref_json(ref, late=True) if ref is not None else "")
        if kind == UNAUTHENTICATED:
            if "ResponseStarted" not in omit:
                failure = req.failure
                resp = ""
                if level == "RequestResponse" and failure is not None:
                    resp = ',"responseObject":' + _status_object(req.code, failure)
                status = _status_json(req.code, failure)
                out.append(
                    (
                        req.complete_us,
                        _line(
                            head,
                            "ResponseStarted",
                            late,
                            status,
                            "",
                            resp,
                            received,
                            req.complete_us,
                            "}\n",
                        ),
                    )
                )
            return out
        tail = self._tail(req)
        if kind == LONG and "ResponseStarted" not in omit:
            started_tail = tail
            if req.annotations:
                started_tail = _annotation_tail(
                    tuple(a for a in _pairs(req) if not a[0].startswith("apiserver.latency"))
                )
            status = _status_json(req.code, None)
            out.append(
                (
                    req.started_us,
                    _line(
                        head,
                        "ResponseStarted",
                        late,
                        status,
                        "",
                        "",
                        received,
                        req.started_us,
                        started_tail,
                    ),
                )
            )
        final = "Panic" if kind == PANIC else "ResponseComplete"
        if final in omit:
            return out
        request_body, response_body = self._bodies(req, cfg, level)
        status = _status_json(req.code, req.failure)
        line = _line(
            head, final, late, status, request_body, response_body, received, req.complete_us, tail
        )
        if (request_body or response_body) and len(line) > self.max_event_bytes // 2:
            too_big = len(line.encode()) > self.max_event_bytes  # the limit is in bytes
        else:
            too_big = False
        if too_big:
            truncated = _annotation_tail(tuple(sorted((*_pairs(req), _TRUNCATED))))
            line = _line(head, final, late, status, "", "", received, req.complete_us, truncated)
        out.append((req.complete_us, line))
        return out

    def _bodies(self, req: Request, cfg: AuditConfig, level: str) -> tuple[str, str]:
        rank = _LEVEL_RANK[level]
        if rank < 2 or req.kind == LONG:
            return "", ""
        request_text = response_text = None
        if req.body is not None:
            builder, args, values = req.body
            request_text, response_text = bodies.render(
                builder,
                args,
                {**_time_values(req.received_us), **values},
                managed=not cfg.omit_managed_fields,
            )
        denied = req.code in (401, 403)
        request_part = ',"requestObject":' + request_text if request_text and not denied else ""
        if rank < 3 or req.kind == PANIC:
            return request_part, ""
        if req.failure is not None:
            if not (req.failure.message or req.failure.reason):
                return request_part, ""
            return request_part, ',"responseObject":' + _status_object(req.code, req.failure)
        return request_part, ',"responseObject":' + response_text if response_text else ""


def _pairs(req: Request) -> tuple[tuple[str, str], ...]:
    """The annotation pairs of a request's completion (authorization first, then the rest)."""
    subject = req.impersonated or req.user
    reason = "" if req.decision == "forbid" else subject.authz_reason
    return (
        ("authorization.k8s.io/decision", req.decision),
        ("authorization.k8s.io/reason", reason),
        *req.annotations,
    )


def _attributes(req: Request, user: str | None) -> RequestAttributes:
    ref = req.ref
    if ref is None:
        return RequestAttributes(
            user=user, groups=req.user.groups, verb=req.verb, resource_request=False, path=req.path
        )
    return RequestAttributes(
        user=user,
        groups=req.user.groups,
        verb=req.verb,
        namespace=ref.namespace,
        api_group=ref.api_group,
        resource=ref.resource,
        subresource=ref.subresource,
        name=ref.name,
        path=req.path,
    )


def _line(
    head: str,
    stage: str,
    middle: str,
    status: str,
    request_body: str,
    response_body: str,
    received: str,
    stage_us: int,
    tail: str,
) -> str:
    return (
        f'{head}{stage}{middle},"responseStatus":{status}{request_body}{response_body}'
        f',"requestReceivedTimestamp":"{received}","stageTimestamp":"{micro_time(stage_us)}"{tail}'
    )


def ordered_lines(stream: Iterator[Request], emitter: Emitter) -> Iterator[tuple[int, str]]:
    """Yield (stage µs, line) in the order a log file receives them: by stage timestamp.

    Long-running requests (watches, exec sessions) complete minutes after they started, so
    their later stages wait in a heap until the clock of the request stream passes them.
    """
    pending: list[tuple[int, int, str]] = []
    tiebreak = 0
    for req in stream:
        now = req.received_us
        while pending and pending[0][0] <= now:
            stage_us, _, line = heapq.heappop(pending)
            yield stage_us, line
        for stage_us, line in emitter.events(req):
            if stage_us <= now:
                yield stage_us, line
            else:
                tiebreak += 1
                heapq.heappush(pending, (stage_us, tiebreak, line))
