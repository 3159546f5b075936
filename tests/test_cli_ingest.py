"""`kaudit ingest`, `describe` and `demo`: one sentence per problem, exit codes for scripts."""

from __future__ import annotations

import json
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
