"""Remove secret values from logged request and response bodies at load time.

Bodies have a different shape for every resource, kind and patch type, so redaction walks the
parsed JSON: a regular expression over the text would miss a value (and leak it) the first time a
shape differs. Only the few rows that can hold a secret are walked; the rest are not copied.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from kaudit_analytics import schema as s

_LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_FIELDS: Final = ("data", "stringData")


def _blank_values(mapping: Any) -> Any:
    if isinstance(mapping, dict):
        return dict.fromkeys(mapping, s.REDACTED)
    return s.REDACTED if mapping is not None else None


def _redact_metadata(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and _LAST_APPLIED in annotations:
            annotations[_LAST_APPLIED] = s.REDACTED


def _redact_secret(obj: dict[str, Any]) -> None:
    for key in _SECRET_FIELDS:
        if key in obj:
            obj[key] = _blank_values(obj[key])
    _redact_metadata(obj)


def _walk(node: Any, *, secret_body: bool) -> None:
    """Redact in place every Secret found anywhere in ``node``."""
    if isinstance(node, dict):
        if node.get("kind") == "Secret" or secret_body:
            _redact_secret(node)
        for value in node.values():
            _walk(value, secret_body=False)
    elif isinstance(node, list):
        for item in node:
            if secret_body and isinstance(item, dict) and "op" in item:
                _redact_json_patch_op(item)
            _walk(item, secret_body=False)


def _redact_json_patch_op(op: dict[str, Any]) -> None:
    path = op.get("path")
    if isinstance(path, str) and (
        path.startswith(("/data", "/stringData")) or _LAST_APPLIED.replace("/", "~1") in path
    ):
        op["value"] = _blank_values(op.get("value"))


def _redact_tokens(obj: Any) -> None:
    # TokenReview carries the bearer token in spec.token (echoed in the response);
    # TokenRequest returns the minted token in status.token.
    if isinstance(obj, dict):
        for part in ("spec", "status"):
            inner = obj.get(part)
            if isinstance(inner, dict) and "token" in inner:
                inner["token"] = s.REDACTED


def redact_body(text: str | None, *, resource: str | None, subresource: str | None) -> str | None:
    """One body with its secret values replaced by ``REDACTED`` (keys are kept).

    Examples
    --------
    >>> redact_body('{"kind":"Secret","data":{"pw":"aHVudGVyMg=="}}', resource="secrets",
    ...             subresource=None)
    '{"kind":"Secret","data":{"pw":"<redacted by kaudit>"}}'
    """
    if text is None:
        return None
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        # Not JSON (cannot happen for a parsed event); never keep what we cannot inspect.
        return s.REDACTED
    if resource in ("tokenreviews",) or (resource == "serviceaccounts" and subresource == "token"):
        _redact_tokens(body)
    _walk(body, secret_body=resource == "secrets" and not subresource)
    return orjson.dumps(body).decode()


def redact(events: pa.Table, risky: pa.ChunkedArray) -> pa.Table:
    """Redact the secret values in a batch of events; only the ``risky`` rows are looked at.

    ``risky`` marks the rows whose bodies may hold a secret (Secrets, token reviews and token
    requests, any body embedding a Secret); the parser computes it with the rest of the row.
    """
    mask = risky.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return events
    # Only the four columns the walk reads are copied, once.
    picked = (
        events.select([s.RESOURCE, s.SUBRESOURCE, s.REQUEST_OBJECT, s.RESPONSE_OBJECT])
        .take(rows)
        .to_pylist()
    )
    for name in (s.REQUEST_OBJECT, s.RESPONSE_OBJECT):
        # A per-row walk is the point here: only rows that may hold a secret get this far.
        bodies = [
            redact_body(r[name], resource=r[s.RESOURCE], subresource=r[s.SUBRESOURCE])
            for r in picked
        ]
        column = events[name].combine_chunks()
        replaced = pc.replace_with_mask(column, pa.array(mask), pa.array(bodies, column.type))
        events = events.set_column(events.schema.get_field_index(name), name, replaced)
    return events
