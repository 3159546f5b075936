"""The Spark engine gives what the polars path gives, on the same lake (``local[2]``).

One SparkSession for the whole test session; these tests skip, saying why, where pyspark
or a Java runtime is missing (``make test`` installs both where it can).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import kaudit_analytics as ka
from kaudit_analytics import activity, compliance, report
from kaudit_analytics.cli import main
from kaudit_analytics.policy import load_policy
from kaudit_analytics.sample import generate
from kaudit_analytics.testing import SAMPLE_DIR
from tests.paths import REPO

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

POLICY = REPO / "tests" / "fixtures" / "policy" / "property_policy.yaml"
END = dt.datetime(2024, 9, 13, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install 'kaudit-analytics[spark]')")
    from kaudit_analytics import spark as ks

    # Spark looks up this machine's address and warns when it resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        session = ks.session(
            "local[2]",
            app_name="kaudit-tests",
            local_dir=tmp_path_factory.mktemp("spark-local"),
            conf={
                "spark.sql.shuffle.partitions": "4",
                "spark.default.parallelism": "2",
                "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse")),
            },
        )
    except ks.SparkUnavailableError as err:
        pytest.skip(str(err))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def fleet_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clusters: the bundled sample, and a generated cluster over the same days."""
    lake = tmp_path_factory.mktemp("fleet-lake")
    ka.ingest(SAMPLE_DIR, lake, cluster="prod")
    log = tmp_path_factory.mktemp("fleet-logs") / "audit.log"
    generate(log, events=4_000, seed=3, start="2024-09-12T02:00:00Z")
    ka.ingest(log, lake, cluster="staging")
    return lake


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(pl.all().exclude(pl.List, pl.Struct), nulls_last=True)


def test_scan_prunes_partitions_and_keeps_the_window(spark: SparkSession, fleet_lake: Path) -> None:
    from kaudit_analytics import spark as ks

    since, until = "2024-09-11T12:00:00", "2024-09-12T06:00:00"
    events = ks.scan(spark, fleet_lake, cluster="staging", since=since, until=until)
    plan = events._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [" in plan
    assert "staging" in plan
    expected = ka.scan(fleet_lake, cluster="staging", since=since, until=until).collect()
    assert events.count() == expected.height > 0


def test_evaluate_adds_the_same_decisions(spark: SparkSession, fleet_lake: Path) -> None:
    from kaudit_analytics import spark as ks

    policy = load_policy(POLICY)
    columns = ["cluster", "audit_id", "stage", "policy_level", "policy_rule", "policy_keeps_stage"]
    got = pl.DataFrame(pl.from_arrow(ks.evaluate(ks.scan(spark, fleet_lake), policy).toArrow()))
    expected = policy.evaluate(ka.scan(fleet_lake)).select(columns).collect()
    assert_frame_equal(_sorted(got.select(columns).cast(expected.schema)), _sorted(expected))


def test_estimate_volume_is_the_same_estimate(spark: SparkSession, fleet_lake: Path) -> None:
    from kaudit_analytics import spark as ks

    policy, observed = load_policy(POLICY), ka.policy.catalog_policy("gce")
    got = ks.estimate_volume(ks.scan(spark, fleet_lake), policy, observed_policy=observed)
    expected = policy.estimate_volume(ka.scan(fleet_lake), observed_policy=observed)
    assert_frame_equal(got.by_rule, expected.by_rule)
    assert_frame_equal(got.by_day, expected.by_day)
    totals = ("events", "bytes", "exact_bytes", "modelled_bytes", "observed_events", "requests")
    assert {k: getattr(got, k) for k in totals} == {k: getattr(expected, k) for k in totals}
    assert (got.never_logged, got.notes) == (expected.never_logged, expected.notes)
    assert got.modelled_bytes > 0  # the body model (summed over all events) was exercised
    assert ks.observed_hours(ks.scan(spark, fleet_lake)) == ka.policy.observed_hours(
        ka.scan(fleet_lake)
    )


def test_chart_aggregates_are_the_same(spark: SparkSession, fleet_lake: Path) -> None:
    from kaudit_analytics import spark as ks

    events = ks.scan(spark, fleet_lake)
    keys = ["actor", "verb", "resource_key", "namespace"]
    cube = ks.activity_cube(events)
    expected = activity.activity_cube(ka.scan(fleet_lake)).collect()
    assert_frame_equal(cube.sort(keys), expected.sort(keys))
    assert_frame_equal(
        ks.activity_by_hour_and_weekday(events),
        activity.activity_by_hour_and_weekday(ka.scan(fleet_lake)).collect(),
    )


def test_compliance_report_is_the_same_report(spark: SparkSession, fleet_lake: Path) -> None:
    from kaudit_analytics import spark as ks

    window = compliance.Window(END - dt.timedelta(days=1), END)
    got = ks.report_from_lake(spark, fleet_lake, window, policy_path=POLICY)
    expected = report.report_from_lake(fleet_lake, window, policy_path=POLICY)
    assert got.evidence.height > 0
    assert set(got.evidence["cluster"]) == {"prod", "staging"}
    assert_frame_equal(got.evidence, expected.evidence)
    assert_frame_equal(got.daily, expected.daily)
    assert got == expected  # results, trend, counts, clusters, coverage


def test_spark_ingest_tasks_stage_in_parallel_and_commit_once(
    spark: SparkSession, fleet_lake: Path, tmp_path: Path
) -> None:
    """Per-file ingest as Spark tasks: one commit, dedupe and bookkeeping as for sequential runs."""
    from kaudit_analytics import spark as ks

    files = sorted(SAMPLE_DIR.iterdir())
    stats = ks.ingest(spark, files, tmp_path / "lake", cluster="prod")
    assert [s.files for s in stats] == [1] * len(files)
    assert sum(s.events_written for s in stats) == 20_000
    assert {s.version for s in stats} == {1}  # one commit for every task
    # The sample's rotated copies overlap nothing, so every event is there exactly once.
    got = ka.scan(tmp_path / "lake").drop("source_file").collect()
    expected = ka.scan(fleet_lake, cluster="prod").drop("source_file").collect()
    assert_frame_equal(_sorted(got), _sorted(expected), check_row_order=False)
    again = ks.ingest(spark, [SAMPLE_DIR], tmp_path / "lake", cluster="prod")
    assert sum(s.events_written for s in again) == 0
    assert sum(s.files_unchanged for s in again) == len(files)
    # Two tasks holding the same events (a file and its copy): the driver keeps one of each.
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.log").write_bytes(files[-1].read_bytes())
    (copy / "b.log").write_bytes(b"\n" + files[-1].read_bytes())  # another first line
    twice = ks.ingest(spark, [copy], tmp_path / "twice", cluster="prod")
    written = sum(s.events_written for s in twice)
    assert written == ka.scan(tmp_path / "twice").select(pl.len()).collect().item()
    assert sum(s.duplicates for s in twice) == written


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result


def test_cli_engine_spark(spark: SparkSession, fleet_lake: Path, tmp_path: Path) -> None:
    del spark  # the CLI finds the session the fixture started
    simulate = (
        "policy",
        "simulate",
        str(POLICY),
        "--lake",
        str(fleet_lake),
        "--json",
        "--cluster",
        "prod",
    )
    on_spark = json.loads(_cli(*simulate, "--engine", "spark", "--master", "local[2]").output)
    assert on_spark == json.loads(_cli(*simulate).output)
    common = ("report", "--lake", str(fleet_lake), "--since", "2024-09-12", "--until", "2024-09-13")
    _cli(*common, "--out", str(tmp_path / "a"), "--format", "json")
    _cli(*common, "--out", str(tmp_path / "b"), "--format", "json", "--engine", "spark")
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert a == b
    assert (tmp_path / "a" / "evidence.csv").read_text() == (
        tmp_path / "b" / "evidence.csv"
    ).read_text()
