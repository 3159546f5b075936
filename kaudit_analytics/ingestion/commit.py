"""Make a flush of the loader visible in the lake: events, quarantine, then source offsets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from kaudit_analytics import lake as _lake

__all__ = ["commit"]


def commit(
    lake: Path,
    cluster: str,
    parts: dict[dt.date, pa.Table],
    quarantine: list[tuple[str, pl.DataFrame]],
    sources: dict[str, dict[str, Any]] | None,
) -> None:
    """Write one flush: events, quarantine records, then how far each source got."""
    for day, part in parts.items():
        _lake.write_partition(lake, cluster, day, part)
    for name, rows in quarantine:
        _lake.write_quarantine(lake, rows, name)
    if sources is not None:
        _lake.save_sources(lake, sources)
