"""kaudit-analytics: Kubernetes audit logs into a Parquet lake, and answers out of it.

``ingest`` and ``scan`` are the two calls everything starts from; the namespaces below
(``ka.activity``, ``ka.charts``, ``ka.policy`` …) are imported on first use, so the ``kaudit``
command does not pay for altair or jinja when it only loads logs.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kaudit_analytics.ingestion import IngestError, IngestStats, ingest
from kaudit_analytics.lake import LakeError, LakeLockedError, describe, scan
from kaudit_analytics.schema import AUDIT_SCHEMA, SchemaError
from kaudit_analytics.window import WindowError

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


def __getattr__(name: str) -> ModuleType:
    if name in _NAMESPACES:
        return importlib.import_module(f"kaudit_analytics.{name}")
    msg = f"module 'kaudit_analytics' has no attribute {name!r}"
    raise AttributeError(msg)


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
