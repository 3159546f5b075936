"""Every control against its own audit events: one that must be a finding, one that must not.

``tests/fixtures/controls/<control>/`` holds plain audit.k8s.io/v1 JSON lines, the same files
the Sigma tests read: ``hit.jsonl`` (events the control must find), ``miss.jsonl`` (near
misses it must leave alone), and optionally ``baseline.jsonl`` (the previous window, for
first-seen controls) and ``settings.yaml`` (the allow-lists a control needs). The window of
each case is the span of its own events.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from kaudit_analytics import compliance as c
from kaudit_analytics import schema as s
from kaudit_analytics.compliance.evidence import Flagged, Where
from tests.paths import FIXTURES, REPO

CASES = FIXTURES / "controls"
IDS = [ctrl.id for ctrl in c.CONTROLS]
#: Controls whose findings are single requests: each hit event alone must be found.
PER_REQUEST = [ctrl.id for ctrl in c.CONTROLS if isinstance(ctrl.evidence, Where | Flagged)]


def _events(frame: pl.DataFrame, control_id: str, kind: str) -> pl.DataFrame:
    path = CASES / control_id / f"{kind}.jsonl"
    return (
        frame.filter(pl.col(s.SOURCE_FILE).str.ends_with(f"/{control_id}/{kind}.jsonl"))
        if (path.exists())
        else frame.head(0)
    )


def _settings(control_id: str) -> c.Settings:
    path = CASES / control_id / "settings.yaml"
    return c.load_settings(path) if path.exists() else c.Settings()


def _found(frame: pl.DataFrame, events: pl.DataFrame, control_id: str) -> pl.DataFrame:
    first, last = events[s.REQUEST_TS].min(), events[s.REQUEST_TS].max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    window = c.Window(first, last + dt.timedelta(seconds=1))
    baseline = _events(frame, control_id, "baseline")
    ctx = c.Context(
        window, _settings(control_id), baseline=baseline.lazy() if baseline.height else None
    )
    return c.control_evidence(events.lazy(), c.control(control_id), ctx).collect()


def test_every_control_has_a_hit_and_a_miss() -> None:
    for control_id in IDS:
        assert (CASES / control_id / "hit.jsonl").is_file(), control_id
        assert (CASES / control_id / "miss.jsonl").is_file(), control_id
    assert sorted(path.name for path in CASES.iterdir() if path.is_dir()) == sorted(IDS)


@pytest.mark.parametrize("control_id", IDS)
def test_control_finds_its_hits(fixture_events: pl.DataFrame, control_id: str) -> None:
    hits = _events(fixture_events, control_id, "hit")
    assert hits.height
    found = _found(fixture_events, hits, control_id)
    assert found.height >= 1
    assert (found["source_line"] >= 1).all()
    assert found["source_file"].str.ends_with("hit.jsonl").all()


@pytest.mark.parametrize("control_id", PER_REQUEST)
def test_each_hit_alone_is_a_finding(fixture_events: pl.DataFrame, control_id: str) -> None:
    hits = _events(fixture_events, control_id, "hit")
    for row in hits.iter_slices(1):
        assert _found(fixture_events, row, control_id).height == 1, row.row(0, named=True)


@pytest.mark.parametrize("control_id", IDS)
def test_control_leaves_its_near_misses_alone(
    fixture_events: pl.DataFrame, control_id: str
) -> None:
    misses = _events(fixture_events, control_id, "miss")
    assert misses.height
    found = _found(fixture_events, misses, control_id)
    assert found.height == 0, found.select("what", "detail").rows()


def test_fixtures_are_plain_audit_events() -> None:
    import json

    for path in CASES.glob("*/*.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            assert event["apiVersion"] == "audit.k8s.io/v1"
            assert event["kind"] == "Event"
            assert {"auditID", "stage", "verb", "requestURI", "requestReceivedTimestamp"} <= set(
                event
            )


def _path(p: Path) -> str:
    return p.as_posix()


def test_the_docs_count_every_control() -> None:
    """The README states how many controls there are; a new control updates it."""
    stated = {
        (doc.name, int(n))
        for doc in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
        for n in re.findall(r"\b(\d+) controls\b", doc.read_text(encoding="utf-8"))
    }
    assert stated, "the README no longer says how many controls there are"
    assert {n for _, n in stated} == {len(c.CONTROLS)}, stated
