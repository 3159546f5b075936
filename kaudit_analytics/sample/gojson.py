"""Go ``encoding/json`` look-alikes for the sample generator.

The kube-apiserver serializes audit events with Go's ``encoding/json``: struct fields in
declaration order, map keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as
``\\u003c``-style sequences (HTML-safe output), no spaces, ``MicroTime`` timestamps with six
fractional digits. orjson matches Go for everything except the HTML escaping, which is applied
here on top.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

__all__ = [
    "go_duration",
    "go_json",
    "go_quote",
    "micro_time",
    "seconds_time",
    "uuid4_from",
]

_HTML_STR = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_HTML_BYTES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_quote(text: str) -> str:
    """Quote ``text`` as a JSON string exactly as Go's ``encoding/json`` does.

    Examples
    --------
    >>> go_quote('a<b & "c"')
    '"a\\\\u003cb \\\\u0026 \\\\"c\\\\""'
    """
    return orjson.dumps(text).decode().translate(_HTML_STR)


def go_json(value: Any) -> str:
    """Serialize ``value`` compactly with Go's HTML escaping (dict order is kept).

    Examples
    --------
    >>> go_json({"b": "<x>", "a": [1, None]})
    '{"b":"\\\\u003cx\\\\u003e","a":[1,null]}'
    """
    raw = orjson.dumps(value)
    # Inside JSON text these characters can only occur in strings, so a byte replace is exact.
    for needle, escaped in _HTML_BYTES:
        if needle in raw:
            raw = raw.replace(needle, escaped)
    return raw.decode()


_SECOND_CACHE: dict[int, str] = {}


def _second_prefix(second: int) -> str:
    prefix = _SECOND_CACHE.get(second)
    if prefix is None:
        if len(_SECOND_CACHE) > 4096:
            _SECOND_CACHE.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND_CACHE[second] = prefix
    return prefix


def micro_time(epoch_us: int) -> str:
    """Format microseconds since the epoch as a Kubernetes ``MicroTime`` (6 digits, ``Z``).

    Examples
    --------
    >>> micro_time(1_726_000_000_000_001)
    '2024-09-10T20:26:40.000001Z'
    """
    second, micros = divmod(epoch_us, 1_000_000)
    return f"{_second_prefix(second)}.{micros:06d}Z"


def seconds_time(epoch_us: int) -> str:
    """Format microseconds since the epoch as a Kubernetes ``Time`` (whole seconds, ``Z``).

    Examples
    --------
    >>> seconds_time(1_726_000_000_999_999)
    '2024-09-10T20:26:40Z'
    """
    return _second_prefix(epoch_us // 1_000_000) + "Z"


def uuid4_from(bits: int) -> str:
    """Render 128 random bits as a version-4 UUID string.

    Examples
    --------
    >>> uuid4_from(0)
    '00000000-0000-4000-8000-000000000000'
    """
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


_UNITS = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"))


def go_duration(nanos: int) -> str:
    """Format a duration like Go's ``time.Duration.String`` (for durations under a minute).

    Examples
    --------
    >>> [go_duration(n) for n in (561_927, 7_855_949_070, 1_500_000, 999)]
    ['561.927µs', '7.85594907s', '1.5ms', '999ns']
    """
    for scale, unit in _UNITS:
        if nanos >= scale:
            whole, frac = divmod(nanos, scale)
            digits = len(str(scale)) - 1
            text = f"{frac:0{digits}d}".rstrip("0")
            return f"{whole}.{text}{unit}" if text else f"{whole}{unit}"
    return f"{nanos}ns"
