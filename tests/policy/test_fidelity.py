"""Bytes the replay predicts, against what the apiserver writes.

Two tiers with the same assertions: ``tests/policy/apiserver.py`` (the project's own
real-shaped requests, written under any policy as the apiserver's log backend writes them)
and, where present, the real kube-apiserver v1.36 captures of ``reference/apiserver-captures``
(one workload under three policies; other policies' logs are derived from the ``everything``
capture by the apiserver's own managedFields rules, in Python, independently of the lake).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics.policy import Policy, load_policy
from kaudit_analytics.policy.volume import predicted_events
from kaudit_analytics.schema import AUDIT_ID, EVENT_BYTES, MANAGED_FIELDS_BYTES, STAGE, USER, VERB
from tests.paths import CAPTURES
from tests.policy.apiserver import REQUESTS, emit, go_json, strip_managed_fields

EVERYTHING = "apiVersion: audit.k8s.io/v1\nrules: [{level: RequestResponse}]\n"
CANDIDATES = {
    "everything": EVERYTHING,
    "omit-managed-fields": (
        "apiVersion: audit.k8s.io/v1\nomitManagedFields: true\nrules: [{level: RequestResponse}]\n"
    ),
    "request-omit-managed": (
        "apiVersion: audit.k8s.io/v1\nomitManagedFields: true\nomitStages: [RequestReceived]\n"
        "rules: [{level: Request}]\n"
    ),
    "metadata": "apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n",
    "mixed": """
apiVersion: audit.k8s.io/v1
omitStages: [RequestReceived]
rules:
- {level: None, nonResourceURLs: ["/healthz*"]}
- {level: Metadata, resources: [{group: "", resources: [secrets]}]}
- {level: Request, verbs: [get, list, watch], omitManagedFields: false}
- {level: RequestResponse, omitManagedFields: true, omitStages: [ResponseStarted]}
""",
}


def _lake(lines: list[str], folder: Path) -> pl.DataFrame:
    log = folder / "audit.log"
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ka.ingest([log], folder / "lake")
    return ka.scan(folder / "lake").collect()


def _compare(predicted: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Every predicted event against the written one: both sets must be equal."""
    keys = [AUDIT_ID, "stage"]
    assert predicted.select(keys).sort(keys).equals(truth.select(keys).sort(keys))
    return predicted.join(truth, on=keys)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The fixture requests as logged under the everything policy, through ingest."""
    lines = [line for _, _, line in emit(REQUESTS, load_policy(EVERYTHING))]
    return _lake(lines, tmp_path_factory.mktemp("fidelity"))


@pytest.mark.parametrize("candidate", list(CANDIDATES))
def test_replay_writes_every_event_byte_for_byte(candidate: str, observed: pl.DataFrame) -> None:
    policy = load_policy(CANDIDATES[candidate])
    truth = pl.DataFrame(
        [(audit_id, stage, len(line.encode())) for audit_id, stage, line in emit(REQUESTS, policy)],
        schema=[AUDIT_ID, "stage", "written"],
        orient="row",
    )
    predicted = predicted_events(policy, observed.lazy()).collect()
    joined = _compare(predicted, truth)
    wrong = joined.filter(pl.col("bytes") != pl.col("written"))
    assert wrong.is_empty(), wrong.select(AUDIT_ID, "stage", "bytes", "written")
    assert not predicted["modelled"].any()


def test_managed_fields_bytes_count_list_items_and_table_rows(observed: pl.DataFrame) -> None:
    expected = {}
    for req in REQUESTS:
        dropped = 0
        for body, strippable in (
            (req.request_body, req.verb != "patch"),
            (req.response_body, True),
        ):
            if body is not None and strippable:
                dropped += len(go_json(body).encode()) - len(go_json(strip_managed_fields(body)))
        expected[req.audit_id] = dropped
    final = observed.filter(pl.col(STAGE) == "ResponseComplete").select(
        AUDIT_ID, pl.col(MANAGED_FIELDS_BYTES).fill_null(0)
    )
    assert dict(final.iter_rows()) == {k: v for k, v in expected.items() if k in final[AUDIT_ID]}
    # The Table of a kubectl get, the items of a list, and a patch (nothing dropped from it).
    assert expected["a0000000-0000-4000-8000-000000000001"] > 0
    assert expected["a0000000-0000-4000-8000-000000000002"] > 0
    patch = next(r for r in REQUESTS if r.verb == "patch")
    assert "managedFields" in go_json(patch.request_body)


def test_failed_long_running_requests_carry_their_status_in_both_events(
    observed: pl.DataFrame,
) -> None:
    policy = load_policy(EVERYTHING)
    predicted = predicted_events(policy, observed.lazy()).collect()
    logged = observed.with_columns(pl.col(STAGE).cast(pl.String))
    started = predicted.join(logged, on=[AUDIT_ID, STAGE]).filter(
        (pl.col(STAGE) == "ResponseStarted") & pl.col("response_object_bytes").is_not_null()
    )
    assert started.height >= 3  # the log, the exec and the failed login
    assert (started["bytes"] == started[EVENT_BYTES]).all()


# --------------------------------------------------------------------------- real captures


def _capture_lines(name: str) -> list[bytes]:
    folder = CAPTURES / name
    if not folder.is_dir():
        pytest.skip(f"the apiserver captures ({CAPTURES}) are absent on this machine")
    files = [*sorted(folder.glob("audit-*.log")), folder / "audit.log"]
    return [line for path in files for line in path.read_bytes().splitlines()]


def _workload(events: pl.DataFrame) -> pl.DataFrame:
    """The workload's events (README: not the apiserver's own loopback, not the probes)."""
    own = pl.col(USER).is_in(["system:apiserver", "oracle:readiness-probe"]).fill_null(value=False)
    return events.filter(~own)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    out = {}
    for name in ("everything", "metadata", "tuned"):
        lines = _capture_lines(name)
        folder = tmp_path_factory.mktemp(f"capture-{name}")
        log = folder / "audit.log"
        log.write_bytes(b"".join(line + b"\n" for line in lines))
        ka.ingest([log], folder / "lake", cluster=name)
        out[name] = _workload(ka.scan(folder / "lake").collect())
    return out


def _capture_policy(name: str) -> Policy:
    return load_policy(CAPTURES / name / "policy.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("candidate", ["everything", "metadata", "tuned"])
def test_captures_replayed_from_everything(
    candidate: str, captures: dict[str, pl.DataFrame]
) -> None:
    """The same workload under another policy: every event, and every byte (the workloads
    are deterministic but for timing, README "Determinism")."""
    policy = _capture_policy(candidate)
    predicted = predicted_events(policy, captures["everything"].lazy()).collect()
    actual = captures[candidate]
    assert predicted.height == actual.height
    counts = [VERB, "stage"]
    stage = pl.col(STAGE).cast(pl.String).alias("stage")
    by_kind = actual.group_by(VERB, stage).len().sort(counts)
    by_kind_predicted = (
        predicted.join(captures["everything"].select(AUDIT_ID, VERB).unique(), on=AUDIT_ID)
        .group_by(counts)
        .len()
        .sort(counts)
    )
    assert by_kind.equals(by_kind_predicted)
    total, written = int(predicted["bytes"].sum()), int(actual[EVENT_BYTES].sum())
    assert abs(total - written) <= 0.01 * written


@pytest.mark.parametrize("name", ["everything", "metadata", "tuned"])
def test_capture_replayed_under_its_own_policy_is_exact(
    name: str, captures: dict[str, pl.DataFrame]
) -> None:
    events = captures[name]
    predicted = predicted_events(_capture_policy(name), events.lazy()).collect()
    truth = events.select(AUDIT_ID, pl.col(STAGE).cast(pl.String).alias("stage"), EVENT_BYTES)
    joined = _compare(predicted, truth)
    assert (joined["bytes"] == joined[EVENT_BYTES]).all()


def _mf_dropped(body: object) -> int:
    if not isinstance(body, dict):
        return 0
    return len(go_json(body).encode()) - len(go_json(strip_managed_fields(body)).encode())


@pytest.mark.slow
def test_capture_with_omit_managed_fields(captures: dict[str, pl.DataFrame]) -> None:
    """``everything`` with omitManagedFields, derived line by line from the raw capture."""
    written = {}
    for line in _capture_lines("everything"):
        event = json.loads(line)
        request = 0 if event["verb"] == "patch" else _mf_dropped(event.get("requestObject"))
        dropped = request + _mf_dropped(event.get("responseObject"))
        written[(event["auditID"], event["stage"])] = len(line) - dropped
    policy = load_policy(CANDIDATES["omit-managed-fields"])
    predicted = predicted_events(policy, captures["everything"].lazy()).collect()
    truth = pl.DataFrame(
        [(*key, size) for key, size in written.items()],
        schema=[AUDIT_ID, "stage", "written"],
        orient="row",
    ).join(predicted.select(AUDIT_ID), on=AUDIT_ID, how="semi")
    joined = _compare(predicted, truth)
    assert (joined["bytes"] == joined["written"]).all()
    assert int(joined["written"].sum()) < 0.9 * int(captures["everything"][EVENT_BYTES].sum())
