"""The coverage of the anchors' detections: generated, complete, and every gap explained."""

from __future__ import annotations

import polars as pl

from kaudit_analytics import compliance as c
from kaudit_analytics.compliance.anchors import coverage_counts, coverage_markdown, coverage_table
from tests.paths import REPO


def test_docs_coverage_is_generated_from_the_catalogue() -> None:
    committed = (REPO / "docs" / "coverage.md").read_text(encoding="utf-8")
    assert committed == coverage_markdown(), (
        "docs/coverage.md is stale: python -m kaudit_analytics.compliance.anchors > "
        "docs/coverage.md"
    )


def test_coverage_counts() -> None:
    counts = coverage_counts()
    assert {anchor: row["rules"] for anchor, row in counts.items()} == {
        "Falco": 47,
        "Elastic": 45,
        "Sigma": 16,
        "Panther": 35,
        "all": 143,
    }
    assert counts["all"]["covered"] >= 0.95 * 143


def test_every_gap_is_explained_and_every_citation_is_a_rule() -> None:
    table = coverage_table()
    gaps = table.filter((pl.col("verdict") == "gap") & (pl.col("status") == "counted"))
    assert gaps["gap"].null_count() == 0
    cited = {rule for ctrl in c.CONTROLS for rule in ctrl.covers}
    assert cited <= set(table["id"])


def test_removing_a_control_opens_gaps() -> None:
    without = [ctrl for ctrl in c.CONTROLS if ctrl.id != "pod-exec"]
    assert coverage_counts(without)["all"]["covered"] < coverage_counts()["all"]["covered"]
