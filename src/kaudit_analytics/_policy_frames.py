"""Small events tables from a few fields per row (doctests, tests, probes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from kaudit_analytics.schema import AUDIT_SCHEMA

__all__ = ["events_frame"]


def events_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """An events table in ``AUDIT_SCHEMA`` where every field a row does not give is null.

    Examples
    --------
    >>> from kaudit_analytics._policy_frames import events_frame
    >>> events_frame([{"verb": "get", "request_uri": "/healthz"}]).shape
    (1, 43)
    """
    columns = {name: [row.get(name) for row in rows] for name in AUDIT_SCHEMA}
    return pl.DataFrame(columns, schema=AUDIT_SCHEMA)
