"""Precision: the cluster's own machinery doing its job is never a high or critical finding.

Checked on the project's own start-up fixture (the API server creating the bootstrap RBAC,
controllers refused until RBAC exists, a kubelet registering its own Node, kube-proxy and
CNI pods in kube-system), on the bundled sample, and, where they exist, on the public samples
and a real kube-apiserver's captures (issue 13 found "36 critical rbac-escalation findings for
system:apiserver bootstrap" there).

Two kinds of finding are allowed to name the machinery, by design: the audit trail's own
integrity (a gap, an incomplete request, a record missing a field is about the log, and
points at whatever event is next to it), and a controller creating a privileged pod outside
the platform's namespaces (the workload it copies is the risk, as Falco's samples show).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics import compliance as c
from kaudit_analytics import exprs
from kaudit_analytics import schema as s
from kaudit_analytics.report import assess
from tests.paths import CAPTURES, FIXTURES

TRAIL = {"audit-gap", "incomplete-request", "missing-record-fields"}
POD_SPEC = {"privileged-pod", "sensitive-host-path", "dangerous-capabilities", "disallowed-image"}
SYSTEM = c.Settings().system_namespaces


def _machinery_alarms(found: pl.DataFrame) -> pl.DataFrame:
    """High and critical findings whose actor is the cluster's machinery."""
    real = pl.col("who").str.split(" as ").list.first()
    kind = exprs.actor_kind(real, pl.lit(None, dtype=pl.List(pl.String)))
    machinery = kind.is_in(("control_plane", "node")) | real.str.starts_with(
        "system:serviceaccount:kube-system:"
    )
    workload_pod = pl.col("control").is_in(POD_SPEC) & ~pl.col(s.NAMESPACE).is_in(SYSTEM)
    return found.filter(
        pl.col("severity").is_in(("high", "critical"))
        & machinery.fill_null(value=False)
        & ~pl.col("control").is_in(TRAIL)
        & ~workload_pod.fill_null(value=False)
    )


def _everything(lake: Path) -> pl.DataFrame:
    events = ka.scan(lake)
    span = events.select(pl.col(s.REQUEST_TS).min().alias("a"), pl.col(s.REQUEST_TS).max())
    first, last = span.collect().row(0)
    window = c.Window(first, last + dt.timedelta(seconds=1))
    return assess(events, c.Context(window)).evidence


@pytest.fixture(scope="module")
def start_up_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("start-up")
    ka.ingest([FIXTURES / "precision" / "cluster-start.jsonl"], lake)
    return lake


@pytest.mark.slow
def test_a_cluster_starting_up_raises_no_alarm(start_up_lake: Path) -> None:
    found = _everything(start_up_lake)
    assert _machinery_alarms(found).is_empty(), (
        _machinery_alarms(found).select("control", "who", "what").rows()
    )
    # Not silent either: the start-up is still visible at low and medium severity.
    assert found.filter(pl.col("control") == "denied-requests").height == 1


@pytest.mark.slow
def test_bootstrap_rbac_by_the_api_server_is_not_an_escalation(start_up_lake: Path) -> None:
    found = _everything(start_up_lake)
    assert found.filter(pl.col("control").str.starts_with("rbac-")).is_empty()


@pytest.mark.slow
def test_the_bundled_sample(sample_lake: Path) -> None:
    """``sample_lake`` is ``kaudit_analytics.testing.SAMPLE_DIR``, ingested."""
    alarms = _machinery_alarms(_everything(sample_lake))
    assert alarms.is_empty(), alarms.select("control", "who", "what").rows()


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder",
    [
        "falco-legacy-trace-files",
        "crowdsec-hub",
        "elastic-integrations",
        "khi",
        "kube-audit-rest",
        "kubernetes-website-docs",
        "openshift-docs",
        "panther-analysis",
        "sysdig-aks-audit-log",
        "audit2rbac",
    ],
)
def test_public_samples(shared_samples: Path, tmp_path: Path, folder: str) -> None:
    lake = tmp_path / "lake"
    ka.ingest([shared_samples / folder], lake)
    if ka.scan(lake).select(pl.len()).collect().item() == 0:
        pytest.skip(f"{folder} holds no audit events")
    alarms = _machinery_alarms(_everything(lake))
    assert alarms.is_empty(), alarms.select("control", "who", "what").rows()


@pytest.mark.slow
@pytest.mark.parametrize("capture", ["everything", "metadata", "tuned"])
def test_real_apiserver_captures(tmp_path: Path, capture: str) -> None:
    if not (CAPTURES / capture).is_dir():
        pytest.skip(f"the apiserver captures ({CAPTURES}) are absent on this machine")
    lake = tmp_path / "lake"
    ka.ingest(sorted((CAPTURES / capture).glob("audit*.log")), lake)
    found = _everything(lake)
    alarms = _machinery_alarms(found)
    assert alarms.is_empty(), alarms.select("control", "who", "what").rows()
    apiserver = found.filter(
        pl.col("who").str.starts_with("system:apiserver") & ~pl.col("control").is_in(TRAIL)
    )
    assert apiserver.is_empty(), apiserver.select("control", "what").rows()
    if capture == "everything":
        # What the workload did wrong is found, refused attempts included (section K: alice
        # --as=admin; F: a refused exec and a failed port-forward).
        kinds = set(found["control"])
        assert {"impersonation-failed", "pod-exec-failed", "secret-read-by-human-failed"} <= kinds
        assert "anonymous-auth-enabled" in kinds
