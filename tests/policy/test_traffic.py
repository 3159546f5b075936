"""The traffic under a policy: its span and rates, one policy per cluster, slices, prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import kaudit_analytics as ka
from kaudit_analytics.policy import (
    PRICES,
    MixedPoliciesError,
    PolicyError,
    Retention,
    Span,
    catalog_policy,
    checked_traffic,
    costs,
    estimate_volumes,
    load_policy,
    load_prices,
    observed_hours,
    observed_span,
    policy_conflicts,
    price,
    volume,
)
from kaudit_analytics.policy.volume import request_chunks
from kaudit_analytics.schema import AUDIT_ID, DATE, STAGE
from kaudit_analytics.testing import events_frame
from tests.paths import REPO
from tests.policy.apiserver import REQUESTS, emit

EVERYTHING = "apiVersion: audit.k8s.io/v1\nrules: [{level: RequestResponse}]\n"
METADATA = (
    "apiVersion: audit.k8s.io/v1\nomitStages: [RequestReceived]\nrules: [{level: Metadata}]\n"
)
T0 = dt.datetime(2026, 11, 27, 5, 10, 15, tzinfo=dt.UTC)


def _ingest(folder: Path, cluster: str, text: str) -> None:
    log = folder / f"{cluster}.log"
    lines = [line for _, _, line in emit(REQUESTS, load_policy(text))]
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ka.ingest([log], folder / "lake", cluster=cluster)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clusters a and b logged under the same policy, c under another."""
    folder = tmp_path_factory.mktemp("traffic")
    for cluster, text in (("a", EVERYTHING), ("b", EVERYTHING), ("c", METADATA)):
        _ingest(folder, cluster, text)
    return folder / "lake"


# --------------------------------------------------------------------------- span and rates


def test_a_short_capture_is_priced_over_its_own_span() -> None:
    """50 seconds and 750 kB: about 1.3 GB a day, not an hour's worth (0.018)."""
    span = Span(T0, T0 + dt.timedelta(seconds=50))
    rates = costs(750_000, span.hours, Retention(), PRICES["cloudwatch"])
    assert rates.gb_per_day == pytest.approx(1.296)
    assert span.extrapolated
    assert "extrapolated from 50 s" in span.describe()
    assert not Span(T0, T0 + dt.timedelta(days=2)).extrapolated
    assert "extrapolated" not in Span(T0, T0 + dt.timedelta(days=2)).describe()


def test_observed_span_runs_to_the_last_event_written() -> None:
    events = events_frame(
        [
            {"request_ts": T0, "stage_ts": T0},
            {"request_ts": T0 + dt.timedelta(seconds=5), "stage_ts": T0 + dt.timedelta(seconds=50)},
        ]
    )
    assert observed_span(events).seconds == 50
    assert observed_hours(events.lazy()) == pytest.approx(50 / 3600)
    assert observed_span(events.head(0)).describe().startswith("no events")
    assert costs(1_000, 0.0, Retention(), PRICES["cloudwatch"]).gb_per_day == 0


@pytest.mark.slow
def test_estimates_carry_their_span(lake: Path) -> None:
    events = ka.scan(lake, cluster="a")
    (estimate,) = estimate_volumes({"docs": catalog_policy("kubernetes-docs")}, events).values()
    assert estimate.span == observed_span(events)
    assert 10 < estimate.span.seconds < 60


# --------------------------------------------------------------------------- one policy at a time


@pytest.mark.slow
def test_clusters_under_different_policies_are_found(lake: Path) -> None:
    conflicts = policy_conflicts(ka.scan(lake))
    pairs = set(conflicts.select("cluster", "other").unique().iter_rows())
    assert pairs == {("a", "c"), ("b", "c")}
    assert policy_conflicts(ka.scan(lake, cluster=["a", "b"])).is_empty()


def test_checked_traffic_refuses_to_mix_them_unless_asked(lake: Path) -> None:
    with pytest.raises(MixedPoliciesError, match="clusters a and c"):
        checked_traffic(ka.scan(lake))
    mixed = checked_traffic(ka.scan(lake), mixed_policies=True)
    assert mixed.select(pl.len()).collect().item() > 0
    both = checked_traffic(ka.scan(lake, cluster=["a", "b"]))
    assert set(both.select("cluster").unique().collect()["cluster"]) == {"a", "b"}


def test_checked_traffic_refuses_an_empty_window(lake: Path) -> None:
    part = checked_traffic(ka.scan(lake, cluster="a", since=T0 + dt.timedelta(seconds=20)))
    whole = ka.scan(lake, cluster="a").select(pl.len()).collect().item()
    assert 0 < part.select(pl.len()).collect().item() < whole
    with pytest.raises(PolicyError, match="no events"):
        checked_traffic(ka.scan(lake, cluster="a", since="2030-01-01"))


# --------------------------------------------------------------------------- slices


@pytest.mark.slow
def test_slices_give_the_totals_of_the_whole(
    sample_events: pl.LazyFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = catalog_policy("gce")
    events = sample_events.collect()
    whole = policy.estimate_volume(events)
    sliced = list(request_chunks(events.lazy(), events.columns, chunk_rows=2_000))
    assert len(sliced) > 6  # three dates, each cut into spans of request_ts
    assert sum(chunk.select(pl.len()).collect().item() for chunk in sliced) == events.height
    seen = pl.concat([chunk.select(AUDIT_ID).unique().collect() for chunk in sliced])
    assert seen[AUDIT_ID].is_unique().all()  # no request is cut in two
    monkeypatch.setattr(volume, "CHUNK_ROWS", 2_000)
    in_slices = policy.estimate_volume(events)
    assert (in_slices.events, in_slices.bytes) == (whole.events, whole.bytes)
    assert in_slices.by_rule.equals(whole.by_rule)


def test_a_request_whose_stages_fall_on_two_dates_is_replayed_whole() -> None:
    late = T0.replace(hour=23, minute=59, second=59)
    base = {
        "audit_id": "r1",
        "verb": "get",
        "request_uri": "/api/v1/namespaces/a/pods/p",
        "user": "tim",
        "level": "Metadata",
        "code": 200,
        "event_bytes": 500,
    }
    after = late + dt.timedelta(seconds=2)
    events = events_frame(
        [
            {**base, "stage": "RequestReceived", "request_ts": late, "stage_ts": late,
             "date": late.date()},
            {**base, "stage": "ResponseComplete", "request_ts": after, "stage_ts": after,
             "date": after.date()},
        ]
    )  # fmt: skip
    chunks = [c.collect() for c in request_chunks(events.lazy(), events.columns)]
    assert [c.height for c in chunks] == [0, 2]
    assert chunks[1][STAGE].to_list() == ["RequestReceived", "ResponseComplete"]
    assert chunks[1][DATE].n_unique() == 2
    policy = load_policy(METADATA)
    assert policy.estimate_volume(events).events == 1  # one request, RequestReceived omitted


# --------------------------------------------------------------------------- prices


def test_every_bundled_price_has_its_source_and_date_documented() -> None:
    doc = (REPO / "docs" / "prices.md").read_text(encoding="utf-8")
    for name, entry in PRICES.items():
        assert entry.source.startswith("https://"), name
        assert entry.as_of, name
        assert f"`{name}`" in doc
        assert entry.source in doc
        assert f"{entry.ingest_per_gb:.2f}" in doc


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("own.csv", "name,ingest_usd,storage_usd_month,unit,included_days\nsiem,0.9,0.05,GiB,7\n"),
        (
            "own.yaml",
            "siem: {ingest_usd: 0.9, storage_usd_month: 0.05, unit: GiB, included_days: 7}\n",
        ),
        (
            "own.yml",
            "- {name: siem, ingest_usd: 0.9, storage_usd_month: 0.05, unit: GiB,"
            " included_days: 7}\n",
        ),
    ],
)
def test_ones_own_prices(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    siem = load_prices(path)["siem"]
    assert (siem.ingest_per_gb, siem.unit_bytes, siem.included_days) == (0.9, 2**30, 7.0)
    assert price(path) == siem
    month = costs(2**30 * 30, 24 * 30, Retention(100, 0, 0), siem)
    assert month.usd_per_month == pytest.approx(30 * 0.9 + (30 - 7) * 0.05)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,ingest_usd\nsiem,1\n", "lacks storage_usd_month"),
        ("name,ingest_usd,storage_usd_month,unit\nsiem,1,1,TB\n", "unit must be GB or GiB"),
        ("name,ingest_usd,storage_usd_month\nsiem,cheap,1\n", "siem"),
        ("name,ingest_usd,storage_usd_month\n", "no prices"),
    ],
)
def test_bad_price_tables_are_user_errors(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_prices(path)
    with pytest.raises(PolicyError, match="no price"):
        price("nowhere")
