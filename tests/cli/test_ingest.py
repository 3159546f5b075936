"""`kaudit ingest`, `describe` and `demo`: one sentence per problem, exit codes for scripts."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaudit_analytics.cli import main

EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/pods",
    "verb": "list",
    "user": {"username": "alice"},
    "requestReceivedTimestamp": "2024-09-11T10:00:00.000001Z",
    "stageTimestamp": "2024-09-11T10:00:00.000201Z",
}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    path.write_text(json.dumps(EVENT) + "\n{broken\n")
    return path


def test_ingest_prints_a_summary_and_problem_sentences(tmp_path: Path, log: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(log), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "Events: 1 new, 0 duplicate, 1 quarantined" in result.output
    assert f"1 line was not valid JSON and quarantined (first: {log.resolve()}:2)." in result.output


def test_strict_fails_on_any_quarantined_line(tmp_path: Path, log: Path) -> None:
    args = ["ingest", str(log), "--lake", str(tmp_path / "lake"), "--strict"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip().endswith("Error: --strict: 1 line(s) were quarantined")


def test_nothing_loadable_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text("{broken\n")
    result = CliRunner().invoke(main, ["ingest", str(bad), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 1
    assert "Error: nothing could be loaded: every line was quarantined" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ingest", "/no/such.log", "--lake", "LAKE"],
            "Error: no such file or folder: /no/such.log",
        ),
        (["describe", "--lake", "/no/such/lake"], "Error: no lake at /no/such/lake"),
        (["ingest", "LOG", "--lake", "LAKE", "--cluster", "a/b"], "Error: cluster name 'a/b'"),
    ],
)
def test_user_errors_are_one_sentence_without_traceback(
    tmp_path: Path, log: Path, args: list[str], message: str
) -> None:
    args = [a.replace("LAKE", str(tmp_path / "lake")).replace("LOG", str(log)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert result.output.startswith(message)
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_demo_loads_the_bundled_sample(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "0 quarantined" in result.output
    assert "time span" in result.output
    again = CliRunner().invoke(main, ["demo", "--lake", str(tmp_path / "lake")])
    assert "Events: 0 new" in again.output


def test_progress_reports_running_totals_per_batch_and_file(tmp_path: Path) -> None:
    from kaudit_analytics import ingest
    from kaudit_analytics.ingestion import Progress
    from kaudit_analytics.testing import SAMPLE_DIR

    seen: list[Progress] = []
    stats = ingest(SAMPLE_DIR, tmp_path / "lake", progress=seen.append)
    assert seen[-1] == Progress(stats.files, stats.files, stats.bytes_read, stats.events_read)
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    assert all(a.bytes_read <= b.bytes_read for a, b in itertools.pairwise(seen))


@pytest.mark.slow
def test_progress_line_shows_on_a_terminal_only(tmp_path: Path, log: Path) -> None:
    kaudit = Path(sys.executable).parent / "kaudit"
    args = [str(kaudit), "ingest", str(log), "--lake", str(tmp_path / "lake")]
    piped = subprocess.run(args, capture_output=True, text=True, check=True)
    assert piped.stderr == ""
    # A pseudo-terminal on stderr, as an interactive shell gives it.
    leader, follower = pty.openpty()
    done = subprocess.run(
        [*args[:-1], str(tmp_path / "lake2")],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        check=True,
    )
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once everything the child wrote is read
        while chunk := os.read(leader, 4096):
            shown += chunk
    os.close(leader)
    assert done.returncode == 0
    assert b"1/1 files" in shown
    assert b"1 events" in shown
    assert b"ev/s" in shown
