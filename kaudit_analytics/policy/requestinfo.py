"""RequestInfo from a request URI: the reference parser and its polars twin.

Both follow ``apiserver/pkg/endpoints/request/requestinfo.go`` (see
``reference/policy-semantics.md`` §5) and are kept side by side so that a change to one
is made to the other; a property test holds them to agreeing on every row.

Offline, an audit event already records the Kubernetes verb, so the verb is taken from
the event; the URI gives everything else. Two deliberate limits, identical in both
parsers:

* Percent-escapes are decoded for ASCII only (``%00``-``%7F``); other escapes stay as
  they are. Object names are ASCII (DNS-1123), so this can only matter for a
  ``nonResourceURLs`` rule spelled with non-ASCII characters.
* A ``labelSelector`` that does not parse makes the apiserver drop the name it reads
  from ``fieldSelector=metadata.name=X``; its syntax is not checked here (field
  selectors, ``limit`` and ``timeoutSeconds`` are).
"""

from __future__ import annotations

import re

import polars as pl

from kaudit_analytics.policy.rules import RequestInfo

__all__ = [
    "PARSE_ERROR",
    "list_query_key",
    "parse_request_info",
    "with_path_attributes",
    "with_selector_name",
]

_API_PREFIXES = ("api", "apis")
_GROUPLESS = "api"
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_ASCII_ESCAPE = re.compile(r"[0-7][0-9A-Fa-f]")
_INT64 = re.compile(r"[+-]?[0-9]+")
_QUERY_VALUE = r"((?:[^&;%]|%[0-9A-Fa-f]{2})*)"
_SELECTOR_TERM = re.compile(r"(?s)([^=]*?)(!=|==|=)(.*)")

#: What ``request_info`` raises for a URI the apiserver refuses before auditing it.
PARSE_ERROR = "unable to determine kind and namespace from url"


def _percent_decode(text: str, *, plus_as_space: bool = False) -> str:
    if plus_as_space:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    head, *pieces = text.split("%")
    out = [head]
    for piece in pieces:
        if _ASCII_ESCAPE.match(piece):
            out.append(chr(int(piece[:2], 16)) + piece[2:])
        else:
            out.append("%" + piece)
    return "".join(out)


def _query_values(query: str, key: str) -> list[str]:
    """Values of ``key`` as Go's ``url.Query()`` keeps them (bad pairs are dropped)."""
    pair = re.compile(rf"{re.escape(key)}={_QUERY_VALUE}")
    values = []
    for item in query.split("&"):
        match = pair.fullmatch(item)
        if match:
            values.append(_percent_decode(match.group(1), plus_as_space=True))
    return values


def _split_terms(selector: str) -> list[str]:
    """``fields.splitTerms``: split on commas not escaped by a backslash."""
    terms, start, in_slash = [], 0, False
    for i, char in enumerate(selector):
        if in_slash:
            in_slash = False
        elif char == "\\":
            in_slash = True
        elif char == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _unescape_value(value: str) -> str | None:
    """``fields.UnescapeValue``; ``None`` where the apiserver reports an error."""
    out, in_slash = [], False
    for char in value:
        if in_slash:
            if char not in "\\,=":
                return None
            out.append(char)
            in_slash = False
        elif char == "\\":
            in_slash = True
        elif char in ",=":
            return None
        else:
            out.append(char)
    return None if in_slash else "".join(out)


def _selector_name(selector: str) -> str:
    """The ``metadata.name`` a field selector pins, or ``""`` (also when it does not parse)."""
    if selector == "":
        return ""
    found = None
    for term in sorted(_split_terms(selector)):
        if term == "":
            continue
        match = _SELECTOR_TERM.fullmatch(term)
        if match is None:
            return ""
        lhs, op, rhs = match.groups()
        value = _unescape_value(rhs)
        if value is None:
            return ""
        if found is None and lhs == "metadata.name" and op != "!=":
            found = value
    if found is None or found in (".", "..") or "/" in found or "%" in found:
        return ""
    return found


def _list_name(query: str) -> str:
    """The name the apiserver reads from a list/watch query (``ListOptions`` decode)."""
    for key in ("limit", "timeoutSeconds"):
        values = _query_values(query, key)
        if values and not (_INT64.fullmatch(values[0]) and -(2**63) <= int(values[0]) < 2**63):
            return ""
    selectors = _query_values(query, "fieldSelector")
    return _selector_name(selectors[0]) if selectors else ""


def _watch_param(query: str) -> bool:
    values = _query_values(query, "watch")
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def parse_request_info(verb: str, request_uri: str, method: str | None = None) -> RequestInfo:
    """The reference parser behind ``policy.request_info`` (see its docstring)."""
    raw_path, _, query = request_uri.partition("?")
    path = _percent_decode(raw_path)
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    non_resource = RequestInfo(
        is_resource_request=False,
        path=path,
        verb=method.lower() if method is not None else verb,
        api_prefix=parts[0] if len(parts) >= 3 and parts[0] in _API_PREFIXES else "",
    )
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix != _GROUPLESS:
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    via_prefix = parts[0] in _SPECIAL_VERBS
    if via_prefix:
        if len(parts) < 2:
            raise ValueError(PARSE_ERROR)
        derived, parts = parts[0], parts[1:]
    else:
        derived = _METHOD_VERBS.get((method or "").upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    subresource = parts[2] if len(parts) >= 3 and not (via_prefix and derived == "proxy") else ""
    name = parts[1] if len(parts) >= 2 else ""
    if method is None:
        # The event's verb already went through the steps below in the apiserver.
        if name == "" and not via_prefix and verb in ("list", "watch"):
            name = _list_name(query)
    elif name == "" and derived == "get":
        derived = "watch" if _watch_param(query) else "list"
        name = _list_name(query)
    if method is not None and name == "" and derived == "delete":
        derived = "deletecollection"
    return RequestInfo(
        is_resource_request=True,
        path=path,
        verb=verb if method is None else derived,
        api_prefix=prefix,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=parts[0],
        subresource=subresource,
        name=name,
    )


# ---------------------------------------------------------------------------------------
# The same parse as polars expressions.


_ESCAPES = [f"%{high}{low}" for high in "01234567" for low in "0123456789abcdefABCDEF"]
_ESCAPED = [chr(int(escape[1:], 16)) for escape in _ESCAPES]


def _decode_expr(text: pl.Expr, *, plus_as_space: bool = False) -> pl.Expr:
    """ASCII percent-decoding, as ``_percent_decode``: one Aho-Corasick pass (every
    pattern is ``%`` plus two characters, so leftmost matching decodes left to right)."""
    if plus_as_space:
        text = text.str.replace_all("+", " ", literal=True)
    return text.str.replace_many(_ESCAPES, _ESCAPED)


def _query_value_expr(query: pl.Expr, key: str) -> pl.Expr:
    raw = query.str.extract(rf"(?:^|&){re.escape(key)}={_QUERY_VALUE}(?:&|$)", 1)
    return _decode_expr(raw, plus_as_space=True)


def _general_selector_name_expr(selector: pl.Expr) -> pl.Expr:
    """``_selector_name`` over a column: split unescaped commas, sort, parse every term."""
    # Mark escape pairs left to right with \x00 so an escaped comma is not a separator,
    # then put the backslashes back for sorting (Go sorts the raw terms).
    marked = selector.str.replace_all(r"\\(.)", "\x00$1").str.replace_all("\x00,", "\x00\x01")
    terms = (
        marked.str.split(",")
        .list.eval(
            pl.element().str.replace_all("\x01", ",", literal=True).str.replace_all("\x00", "\\")
        )
        .list.sort()
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    element = pl.element()
    parsed = element.str.extract_groups(r"(?s)^([^=]*?)(!=|==|=)(.*)$")
    rhs = parsed.struct.field("3")
    # UnescapeValue: every backslash must escape one of \ , = and no bare , or = may remain.
    rhs_bad = rhs.str.replace_all(r"\\[\\,=]", "").str.contains(r"[\\,=]")
    term_ok = terms.list.eval(parsed.struct.field("2").is_not_null() & ~rhs_bad).list.all()
    name_terms = terms.list.eval(
        element.filter(
            (parsed.struct.field("1") == "metadata.name") & (parsed.struct.field("2") != "!=")
        ).str.extract(r"(?s)^[^=]*?==?(.*)$", 1)
    )
    value = name_terms.list.first().str.replace_all(r"\\([\\,=])", "$1")
    valid = term_ok & value.is_not_null() & ~value.is_in([".", ".."]) & ~value.str.contains(r"[/%]")
    return pl.when(valid).then(value).otherwise(pl.lit(""))


_TERM = r"(?s)^([^=]*?)(!=|==|=)(.*)$"


def _simple_selector_name(parsed: pl.Expr) -> pl.Expr:
    """The name from a one-term selector without escapes, given its ``_TERM`` groups."""
    lhs, op, rhs = (parsed.struct.field(name) for name in ("1", "2", "3"))
    value = pl.when(
        (lhs == "metadata.name") & (op != "!=") & ~rhs.str.contains("=", literal=True)
    ).then(rhs)
    valid = value.is_not_null() & ~value.is_in([".", ".."]) & ~value.str.contains(r"[/%]")
    return pl.when(valid).then(value).otherwise(pl.lit(""))


def _ints_ok(query: pl.Expr) -> pl.Expr:
    """``limit`` and ``timeoutSeconds`` decode as int64 (else ListOptions fails to decode)."""
    ok = pl.lit(value=True)
    for key in ("limit", "timeoutSeconds"):
        value = _query_value_expr(query, key)
        number = value.str.strip_prefix("+").cast(pl.Int64, strict=False)
        ok = ok & (value.is_null() | (value.str.contains(r"^[+-]?[0-9]+$") & number.is_not_null()))
    return ok


def with_path_attributes(
    frame: pl.LazyFrame, raw_path: pl.Expr, names: dict[str, str], selectable: str
) -> pl.LazyFrame:
    """Add the request attributes of a URI's path (the part before ``?``) as columns named
    by ``names`` (keys as in ``RequestAttributes`` plus ``parse_error``).

    ``name`` is the name in the path; ``selectable`` is true where a list or watch would
    read its name from the query's field selector instead (``with_selector_name``).
    A chain of ``with_columns`` so that every intermediate (the path parts, the parts
    after the version, ...) is computed once. ``parse_error`` is true where
    ``parse_request_info`` raises (the apiserver refuses such a request before auditing
    it, so real logs never have one).
    """
    tmp = {key: f"__uri_{key}" for key in ("parts", "rest", "via", "groupless")}
    col = {key: pl.col(name) for key, name in {**names, **tmp}.items()}
    parts, rest, via = col["parts"], col["rest"], col["via"]
    first = parts.list.get(0, null_on_oob=True)
    count = parts.list.len()
    head = rest.list.get(0, null_on_oob=True)
    in_namespace = (head == "namespaces") & (rest.list.len() > 1)
    third = rest.list.get(2, null_on_oob=True)
    after_namespace = in_namespace & (rest.list.len() > 2) & ~third.is_in(_NAMESPACE_SUBRESOURCES)
    ok = col["resource_request"] & ~col["parse_error"]
    return (
        frame.with_columns(_decode_expr(raw_path).alias(names["path"]))
        .with_columns(col["path"].str.strip_chars("/").str.split("/").alias(tmp["parts"]))
        .with_columns(
            ((count >= 3) & first.is_in(_API_PREFIXES) & ((first == _GROUPLESS) | (count >= 4)))
            .fill_null(value=False)
            .alias(names["resource_request"]),
            (first == _GROUPLESS).fill_null(value=False).alias(tmp["groupless"]),
        )
        .with_columns(
            parts.list.slice(pl.when(col["groupless"]).then(2).otherwise(3)).alias(tmp["rest"]),
            pl.when(col["groupless"])
            .then(pl.lit(""))
            .otherwise(parts.list.get(1, null_on_oob=True))
            .alias(names["api_group"]),
        )
        .with_columns(head.is_in(_SPECIAL_VERBS).fill_null(value=False).alias(tmp["via"]))
        .with_columns(
            (col["resource_request"] & via & (rest.list.len() < 2)).alias(names["parse_error"]),
            (via & (head == "proxy")).alias(tmp["groupless"]),  # reused: "via /proxy/"
            pl.when(via).then(rest.list.slice(1)).otherwise(rest).alias(tmp["rest"]),
        )
        .with_columns(
            pl.when(in_namespace)
            .then(rest.list.get(1, null_on_oob=True))
            .alias(names["namespace"]),
            pl.when(after_namespace).then(rest.list.slice(2)).otherwise(rest).alias(tmp["rest"]),
        )
        .with_columns(
            rest.list.get(0, null_on_oob=True).alias(names["resource"]),
            pl.when(~col["groupless"])
            .then(rest.list.get(2, null_on_oob=True))
            .alias(names["subresource"]),
            rest.list.get(1, null_on_oob=True).fill_null("").alias(names["name"]),
        )
        .with_columns((ok & (col["name"] == "") & ~via).alias(selectable))
        .with_columns(
            pl.when(ok).then(col[key].fill_null("")).otherwise(pl.lit("")).alias(names[key])
            for key in ("api_group", "namespace", "resource", "subresource", "name")
        )
        .drop(tmp.values())
    )


def list_query_key(query: pl.Expr) -> pl.Expr:
    """A shorter query with the same ``_list_name``, so that watches which differ only in
    resourceVersion or timeout share one parse: the pairs named ``resourceVersion`` or
    ``timeout`` are dropped, and a ``limit`` or ``timeoutSeconds`` of at most 18 digits
    (a valid int64 whatever the digits) becomes ``0``. The pairs the name depends on
    keep their order and validity (a leading ``&`` left behind is an empty pair, which
    ``_query_values`` drops).
    """
    out = query.str.replace_all(r"(^|&)(?:resourceVersion|timeout)=[^&]*", "")
    for key in ("timeoutSeconds", "limit"):
        out = out.str.replace_all(rf"(^|&){key}=[0-9]{{1,18}}(&|$)", rf"${{1}}{key}=0${{2}}")
    return out


def with_selector_name(frame: pl.LazyFrame, query: pl.Expr, name: str) -> pl.LazyFrame:
    """Add ``name``: the name a list/watch query pins (``_list_name``), ``""`` if none.

    Only rows whose ``query`` is not null and has a ``fieldSelector=`` pay for parsing
    one: the query of every other row is nulled out first, and polars skips nulls cheaply.
    """
    tmp = {key: f"__uri_{key}" for key in ("query", "selector", "term")}
    col = {key: pl.col(value) for key, value in tmp.items()}
    selector = col["selector"]
    return (
        frame.with_columns(
            pl.when(query.str.contains("fieldSelector=", literal=True))
            .then(query)
            .alias(tmp["query"])
        )
        .with_columns(
            pl.when(_ints_ok(col["query"]))
            .then(_query_value_expr(col["query"], "fieldSelector"))
            .alias(tmp["selector"])
        )
        .with_columns(
            # A one-term selector without escapes is what clients send: parse it directly.
            pl.when(~selector.str.contains(r"[,\\]"))
            .then(selector)
            .str.extract_groups(_TERM)
            .alias(tmp["term"])
        )
        .with_columns(
            pl.when(selector.is_null())
            .then(pl.lit(""))
            .when(col["term"].is_not_null())
            .then(_simple_selector_name(col["term"]))
            .otherwise(_general_selector_name_expr(pl.when(col["term"].is_null()).then(selector)))
            .alias(name)
        )
        .drop(tmp.values())
    )
