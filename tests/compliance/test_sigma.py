"""Sigma rules over the events table: the same audit-event fixtures as the built-in controls.

Each rule in ``tests/fixtures/sigma/`` is named after a control folder of
``tests/fixtures/controls/``: it must find every event of that folder's ``hit.jsonl`` and
none of ``miss.jsonl``, exactly as the built-in control does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import kaudit_analytics as ka
from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.cli import main
from kaudit_analytics.compliance.sigma import load_rules
from tests.compliance.test_controls import CASES, _events
from tests.paths import FIXTURES

pytest.importorskip("sigma")

RULES = FIXTURES / "sigma"
NAMED = sorted(p.stem for p in RULES.glob("*.yml") if (CASES / p.stem).is_dir())


def _rule(name: str) -> c.Control:
    loaded = load_rules([RULES / f"{name}.yml"])
    assert not loaded.problems
    (ctrl,) = loaded.controls
    return ctrl


def _found(events: pl.DataFrame, ctrl: c.Control) -> pl.DataFrame:
    first, last = events[s.REQUEST_TS].min(), events[s.REQUEST_TS].max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    window = c.Window(first, last + dt.timedelta(seconds=1))
    return c.control_evidence(events.lazy(), ctrl, c.Context(window)).collect()


@pytest.mark.parametrize("name", NAMED)
def test_sigma_rule_finds_the_controls_hits(fixture_events: pl.DataFrame, name: str) -> None:
    hits = _events(fixture_events, name, "hit")
    found = _found(hits, _rule(name))
    assert found.height == hits.height
    assert set(found["audit_id"]) == set(hits[s.AUDIT_ID])
    assert found.schema == c.EVIDENCE_SCHEMA


@pytest.mark.parametrize("name", NAMED)
def test_sigma_rule_leaves_the_controls_misses(fixture_events: pl.DataFrame, name: str) -> None:
    misses = _events(fixture_events, name, "miss")
    assert _found(misses, _rule(name)).height == 0


def test_rules_become_controls_with_severity_and_techniques() -> None:
    ctrl = _rule("nodeport-service")
    assert ctrl.id == "sigma:6d3f1c2e-9a41-4b8e-8f0a-1c2d3e4f5a64"
    assert (ctrl.severity, ctrl.attack, ctrl.tactics) == (
        "medium",
        ("T1133",),
        ("initial-access", "persistence"),
    )
    assert ctrl.level == "Request"  # it reads the request body
    assert "request_object" in ctrl.reads


def test_rules_that_cannot_run_are_named_with_the_reason() -> None:
    loaded = load_rules([RULES])
    assert len(loaded.controls) == len(NAMED)
    ((source, reason),) = loaded.problems
    assert Path(source).name == "not-kubernetes.yml"
    assert "kubernetes" in reason


def test_unmapped_field_is_a_problem_not_a_crash() -> None:
    rule = (
        "title: t\nlogsource: {product: kubernetes, service: audit}\n"
        "detection:\n  sel: {objectRef.resorce: pods}\n  condition: sel\n"
    )
    loaded = load_rules([rule])
    assert not loaded.controls
    assert "did you mean 'objectRef.resource'" in loaded.problems[0][1]


@pytest.mark.slow
def test_report_runs_sigma_rules_end_to_end(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ka.ingest(
        [CASES / "nodeport-service" / "hit.jsonl", CASES / "event-deletion" / "hit.jsonl"], lake
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["report", "--lake", str(lake), "--since", "2026-11-23", "--until", "2026-11-24",
         "--out", str(out), "--format", "json", "--sigma", str(RULES)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not-kubernetes.yml skipped" in result.output
    summary = json.loads((out / "summary.json").read_text())
    by_id = {row["id"]: row for row in summary["controls"]}
    assert by_id["sigma:6d3f1c2e-9a41-4b8e-8f0a-1c2d3e4f5a64"]["findings"] == 2
    assert by_id["sigma:6d3f1c2e-9a41-4b8e-8f0a-1c2d3e4f5a61"]["findings"] == 2
    evidence = pl.read_parquet(out / "evidence.parquet")
    assert evidence.filter(pl.col("control").str.starts_with("sigma:")).height == 4
