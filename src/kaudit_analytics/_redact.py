"""Remove secret values from logged request and response bodies at load time.

Bodies have a different shape for every resource, kind and patch type, so redaction walks the
parsed JSON: a regular expression over the text would miss a value (and leak it) the first time a
shape differs. Only the few rows that can hold a secret are walked; the rest never leave polars.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import polars as pl

from kaudit_analytics import schema as s

_LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_FIELDS: Final = ("data", "stringData")

#: Rows whose bodies may carry a secret value: Secrets themselves, token reviews and token
#: requests, and any body that embeds a Secret (a List, a watch event, an admission review).
MAY_HOLD_SECRETS: Final = (
    (pl.col(s.RESOURCE) == "secrets")
    | (pl.col(s.RESOURCE) == "tokenreviews")
    | ((pl.col(s.RESOURCE) == "serviceaccounts") & (pl.col(s.SUBRESOURCE) == "token"))
    | pl.col(s.REQUEST_OBJECT).str.contains('"kind":"Secret"', literal=True)
    | pl.col(s.RESPONSE_OBJECT).str.contains('"kind":"Secret"', literal=True)
) & (pl.col(s.REQUEST_OBJECT).is_not_null() | pl.col(s.RESPONSE_OBJECT).is_not_null())


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


def redact(events: pl.DataFrame) -> pl.DataFrame:
    """Redact the secret values in a batch of events; other rows are not touched."""
    indexed = events.with_row_index("_row")
    risky = indexed.filter(MAY_HOLD_SECRETS).select(
        "_row", s.RESOURCE, s.SUBRESOURCE, s.REQUEST_OBJECT, s.RESPONSE_OBJECT
    )
    if risky.is_empty():
        return events
    # A per-row walk is the point here: only rows that may hold a secret get this far.
    rows = risky.rows(named=True)
    redacted = pl.DataFrame(
        {
            "_row": risky["_row"],
            "_req": [
                redact_body(
                    r[s.REQUEST_OBJECT], resource=r[s.RESOURCE], subresource=r[s.SUBRESOURCE]
                )
                for r in rows
            ],
            "_resp": [
                redact_body(
                    r[s.RESPONSE_OBJECT], resource=r[s.RESOURCE], subresource=r[s.SUBRESOURCE]
                )
                for r in rows
            ],
        },
        schema={"_row": pl.UInt32, "_req": pl.String, "_resp": pl.String},
    )
    # A risky row's redacted body is null only where the logged one was, so coalesce is exact.
    return (
        indexed.join(redacted, on="_row", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("_req", s.REQUEST_OBJECT).alias(s.REQUEST_OBJECT),
            pl.coalesce("_resp", s.RESPONSE_OBJECT).alias(s.RESPONSE_OBJECT),
        )
        .drop("_row", "_req", "_resp")
    )
