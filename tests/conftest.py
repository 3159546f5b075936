"""Shared fixtures: the real samples from other projects, and the bundled sample lake."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from tests.paths import SHARED_SAMPLES

#: Kinds of tests that are always left out of the fast loop (``pytest -m "not slow"``).
_ALWAYS_SLOW = ("notebook", "spark", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(kind) for kind in _ALWAYS_SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    """The folder of real audit logs published by other projects (see its PROVENANCE.md)."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"the shared samples folder {SHARED_SAMPLES} is absent on this machine")
    return SHARED_SAMPLES


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake loaded once per session from the bundled sample (``data/sample``)."""
    from kaudit_analytics.testing import SAMPLE_DIR

    lake = tmp_path_factory.mktemp("sample-lake")
    ka.ingest(SAMPLE_DIR, lake)
    return lake


@pytest.fixture(scope="session")
def sample_events(sample_lake: Path) -> pl.LazyFrame:
    """The bundled sample's events table."""
    return ka.scan(sample_lake)
