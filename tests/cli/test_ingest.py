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


@pytest.mark.slow
def test_ingest_prints_a_summary_and_problem_sentences(tmp_path: Path, log: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(log), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "Events: 1 new, 0 duplicate, 1 quarantined" in result.output
    assert f"1 line was not valid JSON and quarantined (first: {log.resolve()}:2)." in result.output


@pytest.mark.slow
def test_strict_fails_on_any_quarantined_line(tmp_path: Path, log: Path) -> None:
    args = ["ingest", str(log), "--lake", str(tmp_path / "lake"), "--strict"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip().endswith("Error: --strict: 1 line(s) were quarantined")


@pytest.mark.slow
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


@pytest.mark.slow
def test_demo_loads_the_bundled_sample(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "0 quarantined" in result.output
    assert "time span" in result.output
    again = CliRunner().invoke(main, ["demo", "--lake", str(tmp_path / "lake")])
    assert "Events: 0 new" in again.output


@pytest.mark.slow
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


@pytest.mark.slow
def test_describe_json_has_every_cluster_and_its_quarantine(tmp_path: Path, log: Path) -> None:
    lake = str(tmp_path / "lake")
    CliRunner().invoke(main, ["ingest", str(log), "--lake", lake, "--cluster", "prod"])
    result = CliRunner().invoke(main, ["describe", "--lake", lake, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["version"], data["events"], data["quarantined"]) == (1, 1, 1)
    assert [(c["cluster"], c["events"], c["quarantined"]) for c in data["by_cluster"]] == [
        ("prod", 1, 1)
    ]
    table = CliRunner().invoke(main, ["describe", "--lake", lake])
    assert "Delta table, version 1" in table.output
    assert "prod" in table.output


@pytest.mark.slow
def test_max_line_bytes_is_an_option_and_the_message_names_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(json.dumps({**EVENT, "requestObject": {"blob": "x" * 3000}}) + "\n")
    args = ["ingest", str(log), "--lake", str(tmp_path / "lake")]
    small = CliRunner().invoke(main, [*args, "--max-line-bytes", "1000"])
    assert "over the line-size limit of 1,000 bytes (--max-line-bytes)" in small.output
    args[-1] = str(tmp_path / "other")
    big = CliRunner().invoke(main, [*args, "--max-line-bytes", "10000"])
    assert "Events: 1 new" in big.output


@pytest.mark.slow
def test_lake_commands_compact_history_retain(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    for n in range(3):
        path = tmp_path / f"h{n}.log"
        path.write_text(json.dumps({**EVENT, "auditID": f"a{n}"}) + "\n")
        CliRunner().invoke(main, ["ingest", str(path), "--lake", lake])
    compacted = CliRunner().invoke(main, ["lake", "compact", "--lake", lake])
    assert compacted.exit_code == 0, compacted.output
    assert "Compacted 3 files" in compacted.output
    history = CliRunner().invoke(main, ["lake", "history", "--lake", lake, "--json"])
    rows = json.loads(history.output)
    assert [r["operation"] for r in rows] == ["compact", "ingest", "ingest", "ingest", "create"]
    assert rows[1]["detail"]["sources"][0]["events_added"] == 1
    detail = CliRunner().invoke(main, ["lake", "history", "--lake", lake, "--version", "1"])
    assert json.loads(detail.output)["operation"] == "ingest"
    dry = CliRunner().invoke(
        main, ["lake", "retain", "--lake", lake, "--older-than", "400d", "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert "Would delete 3 events" in dry.output
    bad = CliRunner().invoke(main, ["lake", "retain", "--lake", lake, "--older-than", "soon"])
    assert bad.exit_code == 2
    assert "is not a duration such as 400d" in bad.output


@pytest.mark.slow
def test_quarantine_list_show_retry(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    log = tmp_path / "audit.log"
    long = json.dumps({**EVENT, "auditID": "long", "requestObject": {"blob": "x" * 3000}})
    log.write_text(json.dumps(EVENT) + "\n" + long + "\n")
    CliRunner().invoke(main, ["ingest", str(log), "--lake", lake, "--max-line-bytes", "1000"])
    listed = json.loads(
        CliRunner().invoke(main, ["quarantine", "list", "--lake", lake, "--json"]).output
    )
    assert [(r["line"], r["reason"], r["bytes"]) for r in listed] == [
        (2, "line-too-long", len(long))
    ]
    shown = CliRunner().invoke(
        main, ["quarantine", "show", f"{log.resolve()}:2", "--lake", lake, "--raw"]
    )
    assert shown.stdout_bytes == long.encode() + b"\n"
    retried = CliRunner().invoke(main, ["quarantine", "retry", "--lake", lake])
    assert "1 event(s) loaded" in retried.output
    empty = CliRunner().invoke(main, ["quarantine", "list", "--lake", lake])
    assert "The quarantine is empty." in empty.output
    missing = CliRunner().invoke(main, ["quarantine", "show", "nowhere:3", "--lake", lake])
    assert missing.exit_code == 1
    assert "nothing from nowhere:3 is in the quarantine" in missing.output


def test_ingest_into_a_folder_of_other_files_is_refused(tmp_path: Path, log: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("x")
    result = CliRunner().invoke(main, ["ingest", str(log), "--lake", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert "is not a lake and not empty" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_waiting_ingest_says_so_and_does_not_count_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaudit_analytics.ingestion import commit

    lake = str(tmp_path / "lake")
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(json.dumps(EVENT) + "\n")
    second.write_text(json.dumps({**EVENT, "auditID": "b"}) + "\n")
    fired: list[bool] = []

    def other_writer_first(point: str) -> None:
        if point == "events-checked" and not fired:
            fired.append(True)
            CliRunner().invoke(main, ["ingest", str(second), "--lake", lake])

    monkeypatch.setattr(commit, "CHECKPOINT", other_writer_first)
    result = CliRunner().invoke(main, ["ingest", str(first), "--lake", lake])
    assert result.exit_code == 0, result.output
    assert "Waiting: another writer committed to" in result.output
    assert "after waiting" in result.output


def test_the_line_limit_in_help_is_the_loaders() -> None:
    from kaudit_analytics.cli.ingest import MAX_LINE_BYTES_HELP
    from kaudit_analytics.ingestion.lines import MAX_LINE_BYTES

    assert MAX_LINE_BYTES_HELP == MAX_LINE_BYTES
