"""``kaudit policy``: lint | simulate | compare | diff | suggest, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaudit_analytics.cli import main
from kaudit_analytics.policy import load_policy


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("policy", "code"), [("cis-minimal", 0), ("catalog:gce", 1), ("openshift-allrequestbodies", 1)]
)
def test_lint_exit_codes(policy: str, code: int) -> None:
    exit_code, out, _ = run("lint", policy, "--json")
    assert exit_code == code
    findings = json.loads(out)
    assert any(f["severity"] == "error" for f in findings) is bool(code)


def test_lint_file_with_unknown_key_warns_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nrules:\n- level: Metadata\n  verb: [get]\n", encoding="utf-8"
    )
    exit_code, out, err = run("lint", str(path))
    assert exit_code == 1
    assert "unknown-field" in out
    assert "warning:" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lint", "/no/such/policy.yaml"), "failed to read audit policy file"),
        (("simulate", "gce", "--lake", "/no/such/lake"), "is not a kaudit lake"),
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


def test_simulate_compare_diff_suggest(sample_lake: Path, tmp_path: Path) -> None:
    lake = str(sample_lake)
    exit_code, out, _ = run(
        "simulate", "eks", "--lake", lake, "--observed", "kubernetes-docs", "--json"
    )
    assert exit_code == 0
    result = json.loads(out)
    assert result["events"] == sum(row["events"] for row in result["rule"])
    assert result["observed_events"] > 0

    exit_code, out, _ = run("simulate", "gce", "--lake", lake, "--by", "day", "--maxage", "1")
    assert exit_code == 0
    assert "events=" in out
    assert "retention_hours=24.00" in out

    exit_code, out, _ = run(
        "compare", "gce", "cis-minimal", "--lake", lake, "--json", "--maxage", "7"
    )
    assert exit_code == 0
    assert [row["policy"] for row in json.loads(out)] == ["observed", "gce", "cis-minimal"]

    exit_code, out, _ = run("diff", "gce", "cis-minimal", "--lake", lake, "--json", "--top", "5")
    assert exit_code == 0
    assert 0 < len(json.loads(out)) <= 5

    exit_code, out, err = run("suggest", "--lake", lake, "--base", "kubernetes-docs")
    assert exit_code == 0
    assert load_policy(out).rules  # stdout is the policy alone (``> tuned.yaml``)
    assert "before:" in err
    tuned = tmp_path / "tuned.yaml"
    exit_code, out, _ = run(
        "suggest", "--lake", lake, "--base", "kubernetes-docs", "--out", str(tuned)
    )
    assert exit_code == 0
    assert "after:" in out
    assert load_policy(tuned).rules
    exit_code, _, _ = run("lint", str(tuned))
    assert exit_code == 0
