"""An ingest killed (``kill -9``) at each point of its work: rerun, and nothing is lost or twice.

The child process stops itself at a named point (``ingestion.commit.CHECKPOINT``), so each case
lands exactly where it says, whatever the machine's speed; the test asserts where it landed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics import lake as lake_mod
from kaudit_analytics import schema as s

_CHILD = """
import os, signal, sys
import kaudit_analytics as ka
from kaudit_analytics.ingestion import commit, loader
loader.FLUSH_BYTES = 60_000  # stage often: several files per run
loader.PARSE_BYTES = 30_000  # parse in several groups
point, nth = sys.argv[3], int(sys.argv[4])
seen = {}

def stop(name):
    seen[name] = seen.get(name, 0) + 1
    if name == point and seen[name] == nth:
        print(f"reached {name} #{nth}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

commit.CHECKPOINT = stop
ka.ingest(sys.argv[1], sys.argv[2], threads=1)
print("finished", flush=True)
"""

EVENTS = 1500
BAD = 3


def _event(n: int) -> str:
    day = 11 + n % 2  # two day partitions
    return json.dumps(
        {
            "kind": "Event",
            "level": "Metadata",
            "auditID": f"00000000-0000-0000-0000-{n:012d}",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/default/pods/p{n}",
            "verb": "get",
            "user": {"username": "alice"},
            "requestReceivedTimestamp": f"2024-09-{day}T10:{n % 60:02d}:00.000001Z",
            "stageTimestamp": f"2024-09-{day}T10:{n % 60:02d}:00.000201Z",
        }
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    for part in range(2):
        lines = [_event(n) for n in range(part * EVENTS // 2, (part + 1) * EVENTS // 2)]
        for bad in range(BAD):  # a few broken lines in each file: quarantined exactly once
            lines.insert(100 + bad * 200, "{broken")
        (folder / f"audit-{part}.log").write_text("\n".join(lines) + "\n")
    return folder


def _crash(logs: Path, lake: Path, point: str, nth: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(logs), str(lake), point, str(nth)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == -9, done.stdout + done.stderr
    return done.stdout.strip()


def _count(lake: Path) -> int:
    return int(ka.scan(lake).select(pl.len()).collect().item()) if lake.exists() else 0


POINTS = [
    # (point, which occurrence, events visible after the crash)
    pytest.param("parsed", 2, 0, id="during-parse"),
    pytest.param("staged", 2, 0, id="during-staging"),
    pytest.param("staged-all", 1, 0, id="between-staging-and-commit"),
    pytest.param("quarantine-committed", 1, 0, id="during-commit"),
    pytest.param("committed", 1, EVENTS, id="after-commit"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "nth", "visible"), POINTS)
def test_kill_minus_nine_then_rerun_loses_nothing_and_doubles_nothing(
    logs: Path, tmp_path: Path, point: str, nth: int, visible: int
) -> None:
    lake = tmp_path / "lake"
    assert _crash(logs, lake, point, nth) == f"reached {point} #{nth}"
    # What a reader sees after the crash: all or nothing of the run.
    assert _count(lake) == visible
    stats = ka.ingest(logs, lake)
    assert stats.events_written == EVENTS - visible
    ids = ka.scan(lake).select(s.AUDIT_ID).collect()[s.AUDIT_ID]
    assert (ids.len(), ids.n_unique()) == (EVENTS, EVENTS)
    quarantine = lake_mod.scan_quarantine(lake).collect()
    assert quarantine.height == 2 * BAD
    assert quarantine.select("source", "line").n_unique() == 2 * BAD
    # Run again: the lake knows how far every file was loaded.
    again = ka.ingest(logs, lake)
    assert (again.files_unchanged, again.events_written, again.quarantined) == (2, 0, 0)


@pytest.mark.slow
def test_a_crash_before_the_commit_leaves_only_files_vacuum_removes(
    logs: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    _crash(logs, lake, "staged-all", 1)
    staged = list((lake / "events").rglob("*.parquet"))
    assert staged  # written, never committed: no reader lists them
    assert _count(lake) == 0
    assert lake_mod.vacuum(lake, retention_hours=0, orphan_hours=0) == len(staged)
    assert not list((lake / "events").rglob("*.parquet"))
