"""kaudit-analytics: Kubernetes audit logs into a Parquet lake, and answers out of it."""

from __future__ import annotations

from kaudit_analytics.lake import scan
from kaudit_analytics.loader import IngestStats, ingest
from kaudit_analytics.schema import AUDIT_SCHEMA

__all__ = ["AUDIT_SCHEMA", "IngestStats", "ingest", "scan"]
