"""Raw audit logs into the lake: the only code that reads them.

``ingest`` finds the sources (``discover``: files, folders, globs, archives, buckets), cuts
them into numbered lines (``lines``), recognises each record's format (``formats``), parses
it into the events table (``parse``), redacts secrets (``redact``), drops events the lake
already holds (``dedupe``), stages Parquet files and makes them visible in one transaction
(``commit``); ``loader`` runs it all.
"""

from __future__ import annotations

from kaudit_analytics.ingestion.loader import (
    FORMATS,
    IngestError,
    IngestStats,
    Problem,
    Progress,
    ingest,
    retry,
    stage,
)

__all__ = [
    "FORMATS",
    "IngestError",
    "IngestStats",
    "Problem",
    "Progress",
    "ingest",
    "retry",
    "stage",
]
