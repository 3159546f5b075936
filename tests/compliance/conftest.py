"""Fixtures of the compliance tests: the controls' own audit events, ingested once."""

from __future__ import annotations

import polars as pl
import pytest

import kaudit_analytics as ka
from tests.paths import FIXTURES

CASES = FIXTURES / "controls"


@pytest.fixture(scope="session")
def fixture_events(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Every fixture file, ingested once into one lake, as one events table."""
    lake = tmp_path_factory.mktemp("control-fixtures")
    stats = ka.ingest(sorted(CASES.glob("*/*.jsonl")), lake)
    assert stats.quarantined == 0
    return ka.scan(lake).collect()
