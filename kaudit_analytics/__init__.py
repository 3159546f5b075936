"""kaudit-analytics: Kubernetes audit logs into a Parquet lake, and answers out of it.

``ingest`` and ``scan`` are the two calls everything starts from. Every name here, the
functions as much as the namespaces (``ka.activity``, ``ka.charts``, ``ka.policy`` …), is
imported on first use: ``import kaudit_analytics`` alone loads neither polars nor pyarrow,
so that ``kaudit --help`` answers at once and ``kaudit ingest`` never pays for altair.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and readers
    from kaudit_analytics.ingestion import IngestError, IngestStats, ingest
    from kaudit_analytics.lake import LakeError, LakeLockedError, describe, scan
    from kaudit_analytics.schema import AUDIT_SCHEMA, SchemaError
    from kaudit_analytics.window import WindowError

#: Public name -> the module that defines it.
_NAMES = {
    "AUDIT_SCHEMA": "kaudit_analytics.schema",
    "IngestError": "kaudit_analytics.ingestion",
    "IngestStats": "kaudit_analytics.ingestion",
    "LakeError": "kaudit_analytics.lake",
    "LakeLockedError": "kaudit_analytics.lake",
    "SchemaError": "kaudit_analytics.schema",
    "WindowError": "kaudit_analytics.window",
    "describe": "kaudit_analytics.lake",
    "ingest": "kaudit_analytics.ingestion",
    "scan": "kaudit_analytics.lake",
}

_NAMESPACES = (
    "activity",
    "charts",
    "compliance",
    "exprs",
    "lake",
    "policy",
    "report",
    "sample",
    "schema",
    "spark",
    "testing",
    "window",
)


def __getattr__(name: str) -> Any:
    if name in _NAMESPACES:
        return importlib.import_module(f"kaudit_analytics.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    msg = f"module 'kaudit_analytics' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AUDIT_SCHEMA",
    "IngestError",
    "IngestStats",
    "LakeError",
    "LakeLockedError",
    "SchemaError",
    "WindowError",
    "activity",
    "charts",
    "compliance",
    "describe",
    "exprs",
    "ingest",
    "lake",
    "policy",
    "report",
    "sample",
    "scan",
    "schema",
    "spark",
    "testing",
    "window",
]
