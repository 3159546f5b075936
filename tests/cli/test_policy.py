"""``kaudit policy``: catalog, lint, simulate, compare, diff and suggest, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import kaudit_analytics as ka
from kaudit_analytics.cli import main
from kaudit_analytics.cli.policy import policy_group
from kaudit_analytics.policy import CATALOG, load_policy
from tests.policy.apiserver import REQUESTS, emit

EVERYTHING = "apiVersion: audit.k8s.io/v1\nrules: [{level: RequestResponse}]\n"
METADATA = "apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def two_policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of two clusters: the same requests logged under two different policies
    (about 20 seconds of traffic each)."""
    folder = tmp_path_factory.mktemp("two-policies")
    for cluster, text in (("a", EVERYTHING), ("b", METADATA)):
        log = folder / f"{cluster}.log"
        lines = [line for _, _, line in emit(REQUESTS, load_policy(text))]
        log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        ka.ingest([log], folder / "lake", cluster=cluster)
    return folder / "lake"


def _commands() -> list[click.Command]:
    return list(policy_group.commands.values())


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c.name)
def test_every_option_has_help_and_tables_have_json(command: click.Command) -> None:
    options = [p for p in command.params if isinstance(p, click.Option)]
    assert all(option.help for option in options), [o.name for o in options if not o.help]
    assert "as_json" in {option.name for option in options}


@pytest.mark.parametrize("command", ["simulate", "compare", "diff", "suggest"])
def test_every_lake_command_takes_a_window(command: str) -> None:
    names = {p.name for p in policy_group.commands[command].params}
    assert {"cluster", "since", "until", "mixed", "lake"} <= names


def test_catalog_lists_the_bundled_policies() -> None:
    exit_code, out, _ = run("catalog", "--json")
    assert exit_code == 0
    rows = json.loads(out)
    assert [row["name"] for row in rows] == list(CATALOG)
    assert all(row["source"] for row in rows)
    exit_code, out, _ = run("catalog")
    assert "kubernetes-docs" in out


@pytest.mark.parametrize(
    ("policy", "code"), [("cis-minimal", 0), ("catalog:gce", 1), ("openshift-allrequestbodies", 1)]
)
def test_lint_exit_codes(policy: str, code: int) -> None:
    exit_code, out, _ = run("lint", policy, "--json")
    assert exit_code == code
    findings = json.loads(out)
    assert any(f["severity"] == "error" for f in findings) is bool(code)


def test_lint_says_no_findings_and_names_the_field(tmp_path: Path) -> None:
    exit_code, out, _ = run("lint", "cis-minimal")
    assert (exit_code, out.strip()) == (0, "no findings")
    assert json.loads(run("lint", "cis-minimal", "--json")[1]) == []
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nomitStages: [RequestReceived]\nrules:\n"
        "- {level: Metadata, resources: [{group: '', resources: [secrets, pods]}]}\n",
        encoding="utf-8",
    )
    findings = json.loads(run("lint", str(path), "--json")[1])
    policy_level = [f for f in findings if f["rule"] is None]
    assert policy_level
    assert all(f["field"] for f in findings)
    coverage = [f for f in policy_level if f["code"] == "cis-coverage"]
    assert coverage
    assert {f["field"] for f in coverage} == {"rules"}  # no rule matches exec, proxy …
    catch_all = next(f for f in findings if f["code"] == "no-catch-all")
    assert catch_all["field"] == "rules[0]"
    assert "null" not in run("lint", str(path))[1]


def test_lint_file_with_unknown_key_warns_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nrules:\n- level: Metadata\n  verb: [get]\n", encoding="utf-8"
    )
    exit_code, out, err = run("lint", str(path))
    assert exit_code == 1
    assert "unknown-field" in out
    assert "rules[0].verb" in out
    assert err.count("warning:") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lint", "/no/such/policy.yaml"), "failed to read audit policy file"),
        (("simulate", "gce", "--lake", "/no/such/lake"), "no lake at /no/such/lake"),
        (("compare", "gce", "--lake", "/no/such/lake"), "no lake at /no/such/lake"),
        (("simulate", "gce", "--lake", ".", "--price", "nowhere"), "no price"),
    ],
)
def test_user_errors_are_one_sentence(args: tuple[str, ...], message: str) -> None:
    exit_code, _, err = run(*args)
    assert exit_code == 1
    assert message in err
    assert "Traceback" not in err


def test_invalid_policy_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1beta1\nrules: [{level: Metadata}]\n", encoding="utf-8"
    )
    exit_code, _, err = run("lint", str(path))
    assert exit_code == 1
    assert "change the header" in err


@pytest.mark.slow
def test_simulate_prints_a_warning_once(sample_lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nrules:\n- level: Metadata\n  verb: [get]\n", encoding="utf-8"
    )
    exit_code, _, err = run(
        "simulate", str(path), "--observed", str(path), "--lake", str(sample_lake)
    )
    assert exit_code == 0
    assert err.count("warning:") == 1


@pytest.mark.slow
def test_simulate_shows_the_span_and_extrapolates_short_traffic(two_policies: Path) -> None:
    exit_code, out, _ = run(
        "simulate", "cis-minimal", "--lake", str(two_policies), "--cluster", "a", "--json"
    )
    assert exit_code == 0
    result = json.loads(out)
    assert 10 < result["observed_seconds"] < 60
    assert result["extrapolated"]
    # The bytes of ~20 seconds, as a daily rate (not as an hour's).
    daily = result["bytes"] * 86_400 / result["observed_seconds"] / 1e9
    assert result["gb_per_day"] == pytest.approx(daily)
    exit_code, out, _ = run(
        "simulate", "cis-minimal", "--lake", str(two_policies), "--cluster", "a"
    )
    assert "extrapolated from" in out
    assert "rates: observed" in out


@pytest.mark.slow
def test_clusters_logged_under_different_policies_are_not_mixed(two_policies: Path) -> None:
    lake = str(two_policies)
    for command in (["simulate", "gce"], ["compare", "gce"], ["diff", "gce", "eks"], ["suggest"]):
        exit_code, _, err = run(*command, "--lake", lake)
        assert exit_code == 1, command
        assert "different audit policies" in err
    exit_code, out, _ = run("simulate", "gce", "--lake", lake, "--mixed-policies", "--json")
    assert exit_code == 0
    assert json.loads(out)["observed_events"] > 0
    assert run("simulate", "gce", "--lake", lake, "--cluster", "b")[0] == 0


@pytest.mark.slow
def test_window_options_filter_and_an_empty_window_says_what_the_lake_holds(
    sample_lake: Path,
) -> None:
    lake = str(sample_lake)
    whole = json.loads(run("simulate", "gce", "--lake", lake, "--json")[1])
    one_day = json.loads(
        run("simulate", "gce", "--lake", lake, "--json", "--since", "2024-09-11",
            "--until", "2024-09-12")[1]
    )  # fmt: skip
    assert 0 < one_day["observed_events"] < whole["observed_events"]
    assert one_day["observed_seconds"] <= 86_400
    exit_code, _, err = run("simulate", "gce", "--lake", lake, "--since", "2030-01-01")
    assert exit_code == 1
    assert "no events" in err
    exit_code, _, err = run("simulate", "gce", "--lake", lake, "--until", "2024-01-01")
    assert exit_code == 1
    assert "no events" in err
    assert "it holds 2024-09-10" in err


@pytest.mark.slow
def test_compare_prints_formatted_numbers_and_the_span(sample_lake: Path) -> None:
    exit_code, out, _ = run("compare", "gce", "cis-minimal", "--lake", str(sample_lake))
    assert exit_code == 0
    assert "rates: observed 2.1 days" in out
    assert "0.00876" not in out  # no raw floats
    assert "e-" not in out
    exit_code, out, _ = run(
        "compare", "gce", "cis-minimal", "--lake", str(sample_lake), "--json", "--maxage", "7"
    )
    rows = json.loads(out)
    assert [row["policy"] for row in rows] == ["observed", "gce", "cis-minimal"]
    assert all(row["observed_seconds"] > 86_400 for row in rows)


@pytest.mark.slow
def test_price_file_of_ones_own(sample_lake: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("name,ingest_usd,storage_usd_month\nsiem,10,0\n", encoding="utf-8")
    args = ("simulate", "gce", "--lake", str(sample_lake), "--json")
    ours = json.loads(run(*args, "--price", str(prices))[1])
    cloudwatch = json.loads(run(*args)[1])
    assert ours["usd_per_month"] == pytest.approx(ours["gb_per_day"] * 30 * 10)
    assert ours["usd_per_month"] > cloudwatch["usd_per_month"]


@pytest.mark.slow
def test_diff_names_non_resource_requests(sample_lake: Path) -> None:
    exit_code, out, _ = run("diff", "gce", "cis-minimal", "--lake", str(sample_lake), "--top", "40")
    assert exit_code == 0
    assert "/readyz" in out
    assert "null" not in out
    rows = json.loads(
        run("diff", "gce", "cis-minimal", "--lake", str(sample_lake), "--json", "--top", "5")[1]
    )
    assert 0 < len(rows) <= 5
    assert all(row["target"] for row in rows)


@pytest.mark.slow
def test_suggest(sample_lake: Path, tmp_path: Path) -> None:
    lake = str(sample_lake)
    exit_code, out, err = run("suggest", "--lake", lake, "--base", "kubernetes-docs")
    assert exit_code == 0
    assert load_policy(out).rules  # stdout is the policy alone (``> tuned.yaml``)
    assert "before" in err
    assert "after" in err
    assert "shape:" not in err  # tables, not a polars repr
    tuned = tmp_path / "tuned.yaml"
    exit_code, out, _ = run(
        "suggest", "--lake", lake, "--base", "kubernetes-docs", "--out", str(tuned)
    )
    assert exit_code == 0
    assert "after" in out
    assert run("lint", str(tuned))[0] == 0
    exit_code, out, _ = run("suggest", "--lake", lake, "--base", "gce", "--json")
    found = json.loads(out)
    assert found["fixes"]
    assert found["saved_share"] > 0.5
    assert {"noisiest", "rules", "kept_controls", "span"} <= set(found)
