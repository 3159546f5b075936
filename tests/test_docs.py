"""Every docstring example in the package runs and prints what it shows (as polars' do)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import polars as pl
import pytest

import kaudit_analytics

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kaudit_analytics.__path__, "kaudit_analytics.")
    if info.name != "kaudit_analytics.sample_logs"
)


#: Modules whose examples write lakes or render reports (a second or more each): run by
#: ``make test``, left out of the fast loop.
SLOW = {
    "kaudit_analytics.charts",
    "kaudit_analytics.compliance.assess",
    "kaudit_analytics.ingestion.loader",
    "kaudit_analytics.lake",
    "kaudit_analytics.report.model",
    "kaudit_analytics.report.render",
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=[pytest.mark.slow] * (name in SLOW)) for name in MODULES]
)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    # The examples show frames as polars prints them by default, whatever the terminal.
    with pl.Config() as config:
        config.restore_defaults()
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True
        )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    """A finder that came up empty would pass every test above."""
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
    )
    assert examples > 300
