"""`kaudit top`, `timeline`, `history` and `sql` on the bundled sample: tables, JSON, errors.

Every user error ends in one sentence and exit 1 (2 for a malformed option), never a
traceback; the numbers are the library's (``activity``, ``lake.connect``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result

import kaudit_analytics as ka
from kaudit_analytics import activity
from kaudit_analytics.cli import main
from tests.paths import REPO

USER = "ivan@example.com"
POD = ("web", "pods", "worker-sqnshmdqkh-cnkdj")


def run(lake: Path | str, *args: str, env: dict[str, str] | None = None) -> Result:
    command = [args[0], "--lake", str(lake), *args[1:]] if lake else list(args)
    return CliRunner().invoke(main, command, env=env)


def one_sentence_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    return message


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- top


@pytest.mark.slow
def test_top_prints_users_verbs_and_resources(sample_lake: Path) -> None:
    result = run(sample_lake, "top")
    assert result.exit_code == 0, result.output
    for title in ("Top users by requests", "Top verbs by requests", "Top resources by requests"):
        assert title in result.output
    assert "system:kube-controller-manager" in result.output  # long names are not cut
    assert "(other)" in result.output
    assert " %" in result.output  # the share


@pytest.mark.slow
def test_top_json_adds_up_to_the_window(sample_lake: Path, sample_events: pl.LazyFrame) -> None:
    tables = as_json(
        run(sample_lake, "top", "--by", "namespace", "--by", "verb", "-n", "3", "--json")
    )
    assert list(tables) == ["namespace", "verb"]
    total = activity.summary(sample_events).collect()["requests"].item()
    for rows in tables.values():
        assert sum(row["requests"] for row in rows) == total
        assert sum(row["share"] for row in rows) == pytest.approx(1.0)
        assert len(rows) == 4
        assert rows[-1][next(iter(rows[-1]))] == activity.OTHER


def test_top_ranks_by_the_measure(sample_lake: Path) -> None:
    rows = as_json(
        run(sample_lake, "top", "--by", "user", "--measure", "bytes", "-n", "5", "--json")
    )["user"]
    top = [row["bytes"] for row in rows[:-1]]
    assert top == sorted(top, reverse=True)


def test_top_reads_only_the_window_and_cluster(sample_lake: Path) -> None:
    whole = as_json(run(sample_lake, "top", "--by", "verb", "--json"))["verb"]
    day = as_json(run(sample_lake, "top", "--by", "verb", "--since", "2024-09-11", "--json"))
    expected = activity.summary(ka.scan(sample_lake, since="2024-09-11")).collect()
    assert sum(row["requests"] for row in day["verb"]) == expected["requests"].item()
    assert sum(row["requests"] for row in day["verb"]) < sum(row["requests"] for row in whole)
    result = run(sample_lake, "top", "--cluster", "prod")
    message = one_sentence_error(result)
    assert "no events in" in message
    assert "(cluster prod)" in message


def test_top_on_an_empty_window_gives_the_lakes_span(sample_lake: Path) -> None:
    message = one_sentence_error(run(sample_lake, "top", "--since", "2025-01-01"))
    assert "between 2025-01-01 00:00:00 UTC and" in message
    assert (
        "the lake holds events from 2024-09-10 00:00:07 UTC to 2024-09-12 02:45:48 UTC" in message
    )


@pytest.mark.parametrize("command", ["top", "timeline", "history", "sql"])
def test_not_a_lake_is_one_sentence(tmp_path: Path, command: str) -> None:
    extra = {"timeline": ["--user", USER], "history": ["pods/x"], "sql": ["SELECT 1"]}
    message = one_sentence_error(run(tmp_path, command, *extra.get(command, [])))
    assert message == (
        f"Error: no lake at {tmp_path}: the folder is empty; load logs into it with "
        f"`kaudit ingest LOGS --lake {tmp_path}`"
    )


def test_an_unreadable_window_is_one_sentence(sample_lake: Path) -> None:
    message = one_sentence_error(run(sample_lake, "top", "--since", "last tuesday"))
    assert "--since: cannot read 'last tuesday'" in message


def test_the_lake_can_come_from_the_environment(sample_lake: Path) -> None:
    result = run("", "top", "--by", "verb", "--json", env={"KAUDIT_LAKE": str(sample_lake)})
    assert as_json(result)["verb"]


# --------------------------------------------------------------------------- timeline


def test_timeline_of_one_user(sample_lake: Path, sample_events: pl.LazyFrame) -> None:
    expected = activity.actor_activity(sample_events, user=USER).collect()
    rows = as_json(run(sample_lake, "timeline", "--user", USER, "--json"))
    assert len(rows) == expected.height > 0
    assert [row["audit_id"] for row in rows] == expected["audit_id"].to_list()
    assert rows[0]["request_ts"].endswith("Z")
    result = run(sample_lake, "timeline", "--user", USER, "--rows", "5")
    assert result.exit_code == 0, result.output
    assert f"{expected.height:,} requests by {USER}" in result.stdout
    assert f"showing the first 5 of {expected.height:,} requests" in result.stderr


def test_timeline_of_an_unknown_user_suggests_close_names(sample_lake: Path) -> None:
    message = one_sentence_error(run(sample_lake, "timeline", "--user", "ivan@exmple.com"))
    assert message.startswith(
        "Error: no requests by ivan@exmple.com (did you mean ivan@example.com"
    )


# --------------------------------------------------------------------------- history


@pytest.mark.parametrize(
    "spelling",
    [
        [f"{POD[1]}/{POD[2]}", "-n", POD[0]],
        ["/".join(POD)],
        [f"{POD[1]}/{POD[2]}", "--namespace", POD[0]],
    ],
    ids=["resource/name -n", "namespace/resource/name", "--namespace"],
)
def test_history_of_one_object(sample_lake: Path, spelling: list[str]) -> None:
    found = as_json(run(sample_lake, "history", *spelling, "--json"))
    assert set(found) == {"requests", "changes"}
    assert len(found["requests"]) == 18
    assert {row["name"] for row in found["requests"]} == {POD[2]}
    assert found["changes"]
    assert {"path", "change", "before", "after"} <= set(found["changes"][0])


def test_history_prints_requests_then_changes(sample_lake: Path) -> None:
    result = run(sample_lake, "history", "/".join(POD))
    assert result.exit_code == 0, result.output
    requests, changes = result.stdout.split("What changed between its logged states")
    assert "18 requests on" in requests
    assert ".metadata.deletionTimestamp" in changes


def test_history_of_a_group_resource(sample_lake: Path, sample_events: pl.LazyFrame) -> None:
    name, namespace = (
        sample_events.filter(pl.col("resource") == "deployments")
        .select("name", "namespace")
        .drop_nulls()
        .head(1)
        .collect()
        .row(0)
    )
    found = as_json(
        run(sample_lake, "history", f"deployments.apps/{name}", "-n", namespace, "--json")
    )
    assert found["requests"]
    assert {row["resource"] for row in found["requests"]} == {"deployments"}


def test_history_errors(sample_lake: Path) -> None:
    message = one_sentence_error(run(sample_lake, "history", "a/b/c/d"), code=2)
    assert "cannot read 'a/b/c/d' as an object" in message
    message = one_sentence_error(run(sample_lake, "history", "web/pods/worker-sqnshmdqkh"))
    assert "no requests on web/pods/worker-sqnshmdqkh (did you mean worker-sqnshmdqkh-" in message


# --------------------------------------------------------------------------- sql


def test_sql_over_the_events_view(sample_lake: Path, sample_events: pl.LazyFrame) -> None:
    rows = as_json(
        run(sample_lake, "sql", "SELECT verb, count(*) AS n FROM events GROUP BY 1", "--json")
    )
    expected = sample_events.group_by("verb").len().collect()
    assert {row["verb"]: row["n"] for row in rows} == dict(expected.iter_rows())


def test_sql_prints_a_table_with_one_number_format(sample_lake: Path) -> None:
    result = run(sample_lake, "sql", "SELECT sum(event_bytes) AS bytes FROM events")
    assert result.exit_code == 0, result.output
    total = ka.scan(sample_lake).select(pl.col("event_bytes").sum()).collect().item()
    assert f"{total:,}" in result.stdout


@pytest.mark.slow
def test_sql_cuts_long_results_on_screen_only(sample_lake: Path, tmp_path: Path) -> None:
    result = run(sample_lake, "sql", "SELECT audit_id FROM events", "--rows", "3")
    assert result.exit_code == 0, result.output
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 2 + 3
    assert "showing the first 3 rows" in result.stderr
    rows = as_json(run(sample_lake, "sql", "SELECT audit_id FROM events", "--rows", "3", "--json"))
    assert len(rows) == 20_000


def test_sql_window_and_cluster(sample_lake: Path) -> None:
    query = "SELECT count(*) AS n, min(request_ts) AS first FROM events"
    (row,) = as_json(
        run(sample_lake, "sql", query, "--since", "2024-09-11", "--until", "2024-09-12", "--json")
    )
    expected = ka.scan(sample_lake, since="2024-09-11", until="2024-09-12").collect()
    assert row["n"] == expected.height
    assert row["first"] == expected["request_ts"].min().isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    message = one_sentence_error(run(sample_lake, "sql", query, "--cluster", "prod"))
    assert "no events in" in message


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELEC 1", 'the SQL failed: Parser Error: syntax error at or near "SELEC"'),
        ("SELECT * FROM evnts", 'Table with name evnts does not exist! Did you mean "events"?'),
        ("SELECT nope FROM events", 'Referenced column "nope" not found'),
    ],
)
def test_bad_sql_is_one_sentence(sample_lake: Path, query: str, expected: str) -> None:
    assert expected in one_sentence_error(run(sample_lake, "sql", query))


def test_sql_describes_the_view(sample_lake: Path) -> None:
    rows = as_json(run(sample_lake, "sql", "DESCRIBE events", "--json"))
    assert [row["column_name"] for row in rows] == list(ka.AUDIT_SCHEMA.names())


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_sql_exports(sample_lake: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"deletes{suffix}"
    query = "SELECT audit_id, user, request_ts FROM events WHERE verb = 'delete' ORDER BY 3, 1"
    result = run(sample_lake, "sql", query, "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = (
        ka.scan(sample_lake)
        .filter(pl.col("verb") == "delete")
        .sort("request_ts", "audit_id")
        .collect()
    )
    assert f"wrote {expected.height:,} rows to {out}" in result.stderr
    if suffix == ".parquet":
        ids = pl.read_parquet(out)["audit_id"].to_list()
    elif suffix == ".csv":
        with out.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        ids = [row["audit_id"] for row in rows]
        assert rows[0]["request_ts"].endswith("Z")
    elif suffix == ".json":
        ids = [row["audit_id"] for row in json.loads(out.read_text(encoding="utf-8"))]
    else:
        lines = out.read_text(encoding="utf-8").splitlines()
        ids = [json.loads(line)["audit_id"] for line in lines]
    assert ids == expected["audit_id"].to_list()


def test_sql_refuses_an_unknown_export_format(sample_lake: Path, tmp_path: Path) -> None:
    message = one_sentence_error(
        run(sample_lake, "sql", "SELECT 1", "--out", str(tmp_path / "x.xlsx"))
    )
    assert (
        message
        == "Error: cannot export to x.xlsx: use one of .csv, .parquet, .json, .jsonl, .ndjson"
    )


# --------------------------------------------------------------------------- the README


def _readme_commands(*headings: str) -> list[list[str]]:
    """The ``kaudit`` lines of the README's shell examples under these headings."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for heading in headings:
        section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["kaudit"] and words[1:2] != ["ingest"]:  # no logs here to load
                    commands.append(words[1:])
    return commands


@pytest.mark.slow  # end to end: it runs a report and a policy simulation too
def test_the_readme_walkthrough_runs_on_the_demo_lake(
    sample_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _readme_commands("## Your first hour", "## Explore from the command line")
    assert {words[0] for words in commands} >= {"describe", "top", "timeline", "history", "sql"}
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)  # where the examples' --out files go
    for words in commands:
        result = runner.invoke(main, words, env={"KAUDIT_LAKE": str(sample_lake)})
        assert result.exit_code == 0, (words, result.output)


@pytest.mark.slow
def test_a_terminal_sees_what_is_running_and_a_pipe_does_not(sample_lake: Path) -> None:
    run_kaudit = "from kaudit_analytics.cli import main; main()"
    command = [sys.executable, "-c", run_kaudit, "top", "--lake", str(sample_lake)]
    leader, follower = pty.openpty()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=follower, check=True)
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once everything the child wrote is read
        while chunk := os.read(leader, 4096):
            shown += chunk
    os.close(leader)
    assert f"Counting in {sample_lake}".encode() in shown  # the spinner, on the terminal
    assert b"Counting" not in done.stdout
    assert done.stdout.startswith(b"Top users by requests")
    piped = subprocess.run(command, capture_output=True, check=True)
    assert piped.stderr == b""
