"""The compliance report: windows, determinism, snapshots of every rendering, secrets, the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from syrupy.assertion import SnapshotAssertion

import kaudit_analytics as ka
from kaudit_analytics import compliance as c
from kaudit_analytics import report as r
from kaudit_analytics import schema as s
from kaudit_analytics.cli import main
from kaudit_analytics.policy import load_policy
from tests.compliance.test_compliance import PRIVILEGED_POD, event, frame
from tests.paths import FIXTURES, POLICIES, REPO

UTC = dt.UTC
END = dt.datetime(2026, 11, 23, tzinfo=UTC)
WINDOW = c.Window(END - dt.timedelta(days=7), END)
SETTINGS = dataclasses.replace(c.Settings(), gap_threshold=dt.timedelta(days=2))
CANARY = "c3VwZXItc2VjcmV0LWNhbmFyeQ"  # what a Secret value looks like: must never leak
STUB_BUNDLE = "/* vega bundle stub */"


def _at(days: float, hours: float = 10, **fields: Any) -> dict[str, Any]:
    """An event ``days`` before the window's end, at ``hours`` UTC that day."""
    when = END - dt.timedelta(days=days) + dt.timedelta(hours=hours)
    return event(request_ts=when, source_file="audit.log", **fields)


def _secret_body(kind: str) -> str:
    return json.dumps(
        {"kind": "Secret", "data": {"password": CANARY}, "stringData": {kind: CANARY}}
    )


def scenario_rows() -> list[dict[str, Any]]:
    """A week with a bit of everything, and the week before it for the trend."""
    now = [
        _at(
            6.5,
            verb="create",
            subresource="exec",
            code=101,
            request_uri="/api/v1/namespaces/default/pods/web/exec?command=sh",
        ),
        _at(
            6,
            verb="create",
            name=None,
            level="Request",
            code=201,
            request_object=PRIVILEGED_POD,
            request_uri="/api/v1/namespaces/default/pods",
        ),
        _at(
            5,
            resource="secrets",
            name="db",
            level="RequestResponse",
            request_uri="/api/v1/namespaces/default/secrets/db",
            response_object=_secret_body("get"),
        ),
        _at(4, code=403, authz_decision="forbid", user="mallory", source_ips=["203.0.113.7"]),
        _at(
            3,
            hours=23,
            resource="secrets",
            verb="create",
            level="RequestResponse",
            code=201,
            request_object=_secret_body("create"),
            response_object=_secret_body("created"),
            request_uri="/api/v1/namespaces/default/secrets",
        ),
        _at(
            2,
            api_group="rbac.authorization.k8s.io",
            resource="clusterrolebindings",
            namespace=None,
            verb="create",
            level="RequestResponse",
            code=201,
            request_uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            request_object=json.dumps({"roleRef": {"name": "cluster-admin"}}),
        ),
        _at(1, user_agent="curl/8.5.0", message="the | pipe and <b>tags</b> are escaped"),
        _at(0.5),
    ]
    before = [
        _at(13, verb="create", subresource="exec", code=101),
        _at(12, verb="create", subresource="exec", code=101),
        _at(11, code=403, authz_decision="forbid", user="mallory", source_ips=["203.0.113.7"]),
        _at(10),
        _at(9),
        _at(8),
    ]
    # Numbered here, not by the shared counter, so snapshots do not depend on test order.
    return [
        {**row, s.AUDIT_ID: f"ev-{i}", s.SOURCE_LINE: i + 1} for i, row in enumerate(now + before)
    ]


@pytest.fixture(scope="module")
def scenario() -> r.Report:
    policy = load_policy(POLICIES / "docs-example.yaml")
    return r.build_report(
        frame(scenario_rows()),
        WINDOW,
        policy=policy,
        policy_name="docs-example.yaml",
        settings=SETTINGS,
    )


# --------------------------------------------------------------------------- the report value


@pytest.mark.slow
def test_scenario_results(scenario: r.Report) -> None:
    rows = {row.control.id: row for row in scenario.rows}
    assert (scenario.events, scenario.previous_events) == (8, 6)
    assert rows["pod-exec"].result.findings == 1
    assert (rows["pod-exec"].previous.findings, rows["pod-exec"].trend) == (2, "down")
    assert (rows["secret-read-by-human"].previous.findings, rows["secret-read-by-human"].trend) == (
        0,
        "new",
    )
    # The policy cannot support privileged-pod; last week had no findings to outweigh that.
    assert (rows["privileged-pod"].previous.status, rows["privileged-pod"].trend) == (
        "not assessable",
        "-",
    )
    assert rows["rbac-escalation"].result.status == "fail"
    assert rows["new-agent-or-address"].result.findings == 1
    assert rows["incomplete-request"].result.status == "not assessable"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [(None, r.EXIT_OK), ("critical", r.EXIT_FINDINGS), ("low", r.EXIT_FINDINGS)],
)
def test_exit_code(scenario: r.Report, fail_on: c.Severity | None, expected: int) -> None:
    assert r.exit_code(scenario, fail_on) == expected


def test_exit_code_ignores_milder_failures() -> None:
    rows = [_at(1, verb="create", subresource="exec", code=101), _at(0.5)]
    report = r.build_report(
        frame(rows), WINDOW, settings=SETTINGS, controls=[c.control("pod-exec")]
    )
    assert (r.exit_code(report, "high"), r.exit_code(report, "critical")) == (1, 0)


# --------------------------------------------------------------------------- renderings


def test_markdown_snapshot(scenario: r.Report, snapshot: SnapshotAssertion) -> None:
    assert r.to_markdown(scenario) == snapshot


def test_json_snapshot(scenario: r.Report, snapshot: SnapshotAssertion) -> None:
    assert json.loads(r.to_json(scenario)) == snapshot


def test_html_snapshot(scenario: r.Report, snapshot: SnapshotAssertion) -> None:
    assert r.to_html(scenario, vega_bundle=STUB_BUNDLE) == snapshot


def test_progress_is_told_after_every_slice() -> None:
    told: list[tuple[str, int, int]] = []
    r.build_report(
        frame(scenario_rows()),
        WINDOW,
        settings=SETTINGS,
        progress=lambda stage, done, total: told.append((stage, done, total)),
    )
    stages = [stage for stage, _, _ in told]
    assert stages == sorted(stages, key=["baseline", "previous window", "window"].index)
    assert {"previous window", "window"} <= set(stages)
    last = {stage: (done, total) for stage, done, total in told}
    assert all(done == total > 0 for done, total in last.values())


def test_counts_are_grouped_by_thousands(scenario: r.Report) -> None:
    big = dataclasses.replace(scenario, events=1_234_567, previous_events=20_000)
    assert "1,234,567 (previous window: 20,000)" in r.to_markdown(big)
    assert "1,234,567 (previous window: 20,000)" in r.to_html(big, vega_bundle=STUB_BUNDLE)
    assert json.loads(r.to_json(big))["events"] == 1_234_567


def test_chart_specs_snapshot(scenario: r.Report, snapshot: SnapshotAssertion) -> None:
    assert r.chart_specs(scenario) == snapshot


@pytest.mark.slow
def test_outputs_are_deterministic(tmp_path: Path) -> None:
    rows = scenario_rows()
    first, second = (r.build_report(frame(rows), WINDOW, settings=SETTINGS) for _ in range(2))
    assert r.to_html(first) == r.to_html(second)
    a = r.write_report(first, tmp_path / "a")
    b = r.write_report(second, tmp_path / "b")
    assert [p.name for p in a] == [
        "report.html",
        "report.md",
        "summary.json",
        "evidence.parquet",
        "evidence.csv",
    ]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


@pytest.mark.slow
def test_html_is_self_contained(scenario: r.Report) -> None:
    html = r.to_html(scenario)
    # The inline Vega bundle mentions tags in its own strings; look at the page around it.
    page = re.sub(r'<script id="kaudit-vega-bundle">.*?</script>', "", html, flags=re.S)
    assert len(page) < len(html) - 100_000
    html = page
    assert not re.search(r"<(script|img|iframe)[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    assert "@import" not in html
    assert html.count('class="chart"') == len(r.charts(scenario))
    assert "vegaEmbed" in html


@pytest.mark.slow
def test_user_text_is_escaped(scenario: r.Report) -> None:
    rows = [_at(1, user="<script>alert(1)</script>", code=403)]
    report = r.build_report(
        frame(rows), WINDOW, settings=SETTINGS, controls=[c.control("denied-requests")]
    )
    html = r.to_html(report, vega_bundle=STUB_BUNDLE)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\|" in r.to_markdown(
        r.build_report(
            frame([_at(1, user="a|b", code=403)]),
            WINDOW,
            settings=SETTINGS,
            controls=[c.control("denied-requests")],
        )
    )


@pytest.mark.slow
def test_secret_values_never_reach_any_output(scenario: r.Report, tmp_path: Path) -> None:
    written = r.write_report(scenario, tmp_path)
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path.name
    assert CANARY not in r.to_html(scenario)


def test_evidence_files_round_trip(scenario: r.Report, tmp_path: Path) -> None:
    written = {p.name: p for p in r.write_report(scenario, tmp_path, ["json"])}
    assert set(written) == {"summary.json", "evidence.parquet", "evidence.csv"}
    assert_frame_equal(pl.read_parquet(written["evidence.parquet"]), scenario.evidence)
    assert pl.read_csv(written["evidence.csv"]).height == scenario.evidence.height
    assert scenario.evidence.schema == c.EVIDENCE_SCHEMA


def test_unknown_format_is_an_error(scenario: r.Report, tmp_path: Path) -> None:
    with pytest.raises(r.ReportError, match="unknown format 'pdf'"):
        r.write_report(scenario, tmp_path, ["html", "pdf"])


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def falco_lake(tmp_path_factory: pytest.TempPathFactory, shared_samples: Path) -> Path:
    lake = tmp_path_factory.mktemp("report-lake")
    ka.ingest([shared_samples / "falco-legacy-trace-files"], lake)
    return lake


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["report", *args], catch_exceptions=False)


@pytest.mark.slow
def test_cli_writes_the_report(falco_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "--lake",
        str(falco_lake),
        "--since",
        "2018-10-01",
        "--until",
        "2018-11-01",
        "--out",
        str(out),
        "--format",
        "md,json",
    ]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "evidence.csv",
        "evidence.parquet",
        "report.md",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    statuses = {row["id"]: row["status"] for row in summary["controls"]}
    assert statuses["privileged-pod"] == statuses["pod-exec"] == "fail"
    assert _run(*args, "--fail-on", "critical").exit_code == r.EXIT_FINDINGS
    policy = str(POLICIES / "tuned.yaml")
    assert _run(*args, "--policy", policy).exit_code == 0
    assert "Policy coverage (tuned.yaml)" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "Error: --since: cannot read 'soon'"),
        (["--format", "pdf"], "Error: unknown format 'pdf'"),
        (["--policy", "__missing__.yaml"], "Error:"),
    ],
)
def test_cli_errors_are_one_sentence(
    falco_lake: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run("--lake", str(falco_lake), "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == r.EXIT_ERROR
    assert result.output.startswith(message)
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_missing_lake(tmp_path: Path) -> None:
    result = _run("--lake", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.exit_code == r.EXIT_ERROR
    assert "no lake at" in result.output


# --------------------------------------------------------------------------- the notebook

NOTEBOOK = REPO / "notebooks" / "compliance_report.ipynb"


def test_notebook_is_thin_and_parameterised() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    tagged = [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1
    names = set(re.findall(r"^(\w+)\s*=", "".join(tagged[0]["source"]), flags=re.M))
    assert {"lake", "since", "until", "policy", "settings_file", "sigma_rules"} <= names
    assert not any(
        re.search(r"^\s*(def|class) ", "".join(cell["source"]), flags=re.M) for cell in code
    )
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)


@pytest.mark.notebook
def test_notebook_runs_on_the_samples(falco_lake: Path, tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "run.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="python3",
        progress_bar=False,
        # Generous: a loaded two-core machine can take a while to start a kernel.
        start_timeout=180,
        parameters={
            "lake": str(falco_lake),
            "since": "2018-10-01",
            "until": "2018-11-01",
            "policy": str(POLICIES / "tuned.yaml"),
            "settings_file": str(FIXTURES / "controls" / "disallowed-user" / "settings.yaml"),
            "sigma_rules": str(FIXTURES / "sigma"),
        },
    )
    text = out.read_text()
    assert "privileged-pod" in text
    assert "sigma:6d3f1c2e-9a41-4b8e-8f0a-1c2d3e4f5a61" in text  # the Sigma rules ran
    assert "not-kubernetes.yml" in text  # and the one that cannot run is named
    assert "allowed_groups" in text  # the settings it ran with
    assert CANARY not in text


@pytest.mark.slow
def test_cli_cluster_filter(falco_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "--lake", str(falco_lake), "--since", "2010-01-01", "--until", "2024-01-01",
        "--cluster", "default", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["events"] == 49


# --------------------------------------------------------------------------- nothing to report


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of the project's own fixtures: one day, 2026-11-23, cluster ``prod``."""
    lake = tmp_path_factory.mktemp("small-lake")
    ka.ingest(sorted((FIXTURES / "controls" / "pod-exec").glob("*.jsonl")), lake, cluster="prod")
    return lake


def _one_sentence(result: Any) -> str:
    assert result.exit_code == r.EXIT_ERROR, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    return str(lines[0])


@pytest.mark.slow
@pytest.mark.parametrize("fail_on", [[], ["--fail-on", "low"]])
def test_cli_empty_window_says_what_the_lake_holds(
    small_lake: Path, tmp_path: Path, fail_on: list[str]
) -> None:
    args = ["--lake", str(small_lake), "--since", "2026-12-01", "--until", "2026-12-08"]
    line = _one_sentence(_run(*args, "--out", str(tmp_path / "o"), *fail_on))
    assert line.startswith("Error: no events between 2026-12-01 00:00 and 2026-12-08 00:00 UTC")
    assert "from 2026-11-23 10:00 to 2026-11-23 10:00 UTC in cluster(s) prod" in line


def test_cli_misspelt_cluster(small_lake: Path, tmp_path: Path) -> None:
    args = ["--lake", str(small_lake), "--since", "2026-11-23", "--until", "2026-11-24"]
    line = _one_sentence(_run(*args, "--cluster", "prd", "--out", str(tmp_path / "o")))
    assert line == "Error: no cluster named 'prd' in the lake (did you mean 'prod'?); it holds prod"


def test_cli_folder_that_is_not_a_lake(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "audit.log").write_text("{}\n")
    line = _one_sentence(_run("--lake", str(tmp_path / "logs"), "--out", str(tmp_path / "o")))
    assert "is not a lake" in line


@pytest.mark.slow
def test_cli_settings_file(small_lake: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("allowed_users: [bob@example.com]\nsecret_burst: 50\n")
    out = tmp_path / "o"
    args = ["--lake", str(small_lake), "--since", "2026-11-23", "--until", "2026-11-24"]
    result = _run(*args, "--out", str(out), "--settings", str(settings), "--format", "json,md")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings_file"] == "settings.yaml"
    assert summary["settings"]["secret_burst"] == "50"  # noqa: S105 - a threshold, not a secret
    statuses = {row["id"]: row["status"] for row in summary["controls"]}
    assert statuses["disallowed-user"] == "fail"  # alice is not on the list
    assert "| `secret_burst` | 50 |" in (out / "report.md").read_text()
    settings.write_text("secret_brust: 50\n")
    line = _one_sentence(_run(*args, "--out", str(out), "--settings", str(settings)))
    assert line == (
        f"Error: unknown setting 'secret_brust' (did you mean 'secret_burst'?) in {settings}"
    )


# --------------------------------------------------------------------------- a failing query

#: A control whose query fails inside polars (a strict cast of user names to numbers).
BROKEN = dataclasses.replace(
    c.control("pod-exec"),
    id="broken",
    evidence=c.Where(pl.col(s.USER).cast(pl.Int64) > 0),
)


def test_a_failing_query_leaves_the_other_controls_assessed() -> None:
    rows = [_at(1, verb="create", subresource="exec", code=101), _at(0.5)]
    controls = [c.control("pod-exec"), BROKEN]
    report = r.build_report(frame(rows), WINDOW, settings=SETTINGS, controls=controls)
    by_id = {row.control.id: row.result for row in report.rows}
    assert by_id["pod-exec"].status == "fail"
    assert by_id["broken"].status == "not assessable"
    assert by_id["broken"].reason.startswith("the evidence query failed: ")
    assert set(report.errors) == {"broken"}
    assert r.exit_code(report, None) == r.EXIT_ERROR


@pytest.mark.slow
def test_cli_failing_query_writes_the_report_and_exits_2(
    small_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaudit_analytics.cli import report as cli_report

    monkeypatch.setattr(cli_report, "CONTROLS", (*c.CONTROLS, BROKEN))
    out = tmp_path / "o"
    args = ["--lake", str(small_lake), "--since", "2026-11-23", "--until", "2026-11-24"]
    result = CliRunner().invoke(main, ["report", *args, "--out", str(out), "--format", "json"])
    assert result.exit_code == r.EXIT_ERROR
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "1 control(s) could not be assessed (broken)" in errors[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"].keys() == {"broken"}
    assert {row["id"]: row["status"] for row in summary["controls"]}["pod-exec"] == "fail"


# --------------------------------------------------------------------------- HTML cells


def test_html_findings_have_a_cluster_column_and_no_none(scenario: r.Report) -> None:
    html = r.to_html(scenario, vega_bundle=STUB_BUNDLE)
    assert "<th>Cluster</th>" in html
    assert ">None<" not in html
    assert "<td>test</td>" in html
