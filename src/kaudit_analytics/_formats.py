"""Log formats other than one native event per line, rewritten as native event lines.

The loader parses every line as a native ``audit.k8s.io`` event first: that is what nearly every
line is, and it costs one parse. Only lines that fail that parse come here, where each known
wrapper (a webhook ``EventList`` for now) is unpacked, in SQL, into native event lines that go
through the same parse again. Adding a format is one more ``SELECT`` in ``_NORMALIZE_SQL`` and one
row in the mapping table of ``docs/formats.md``.

Every normalised row carries ``fmt`` (the ``source_format`` column) and ``lossy`` (the
``lossy_fields`` column: what the wrapper could not supply or what was inferred).
"""

from __future__ import annotations

from typing import Final

import orjson

from kaudit_analytics import _lines

#: What ``--format`` accepts: every line is then read as that format (no detection).
FORMATS: Final = ("native", "eventlist")

# Input: table `failed` (line BIGINT, text VARCHAR). Output: one row per event found, with the
# event as native JSON text. Lines no SELECT recognises produce no row and stay quarantined.
NORMALIZE_SQL: Final = """
WITH typed AS (
    SELECT line, text, go_escaped(text) AS escaped,
           coalesce(json_type(try(text::JSON), '$.items') = 'ARRAY', false) AS is_list
    FROM failed
)
-- Webhook EventList: items inherit nothing they need from the list (the native parse reads
-- events by their fields, whatever apiVersion says), so each item is one native line.
SELECT line, strlen(item)::BIGINT AS nbytes, true AS keep, item AS text,
       'eventlist' AS fmt, []::VARCHAR[] AS lossy
FROM (
    SELECT line, as_logged(unnest(json_extract(text, '$.items[*]')), escaped) AS item
    FROM typed WHERE is_list
)
"""


def detect(head: bytes, size: int, max_document_bytes: int) -> str:
    """How to read a file, from its first bytes: ``lines``, ``document`` or ``unknown``.

    ``document`` is one JSON value spread over many lines (a pretty-printed event or
    ``EventList``, a JSON array); ``lines`` is one JSON value per line, whatever its kind.
    """
    body = head.removeprefix(_lines.BOM_UTF8).lstrip()
    if body.startswith(b"["):
        return "document"
    if not body.startswith(b"{"):
        return "unknown"
    first = body.split(b"\n", 1)[0]
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return "document" if size <= max_document_bytes else "lines"
    return "lines"
