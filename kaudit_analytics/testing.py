"""Public helpers for tests, docs and notebooks: small events tables and the bundled sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from kaudit_analytics.schema import AUDIT_SCHEMA

__all__ = ["SAMPLE_DIR", "events_frame"]


def _sample_dir() -> Path:
    # A wheel carries the sample inside the package; a source checkout has its one copy in
    # data/sample (pyproject.toml maps that folder into the wheel).
    packaged = Path(__file__).with_name("sample_logs")
    return (
        packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "data" / "sample"
    )


#: The bundled sample: about two days of a small cluster's audit log as a rotated set
#: (``audit.log`` plus backups, one gzipped), written by ``kaudit_analytics.sample``.
SAMPLE_DIR: Final = _sample_dir()


def events_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """An events table in ``AUDIT_SCHEMA`` where every field a row does not give is null.

    Examples
    --------
    >>> from kaudit_analytics.testing import events_frame
    >>> events_frame([{"verb": "get", "request_uri": "/healthz"}]).shape
    (1, 43)
    """
    columns = {name: [row.get(name) for row in rows] for name in AUDIT_SCHEMA}
    return pl.DataFrame(columns, schema=AUDIT_SCHEMA)
