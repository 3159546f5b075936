from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import kaudit_analytics as ka
from kaudit_analytics import activity
from kaudit_analytics.activity import OTHER
from kaudit_analytics.schema import (
    API_GROUP,
    AUDIT_ID,
    AUDIT_SCHEMA,
    CLUSTER,
    CODE,
    EVENT_BYTES,
    GROUPS,
    IMPERSONATED_USER,
    NAME,
    NAMESPACE,
    REDACTED,
    REQUEST_OBJECT,
    REQUEST_TS,
    REQUEST_URI,
    RESOURCE,
    RESPONSE_OBJECT,
    SOURCE_FILE,
    SOURCE_LINE,
    STAGE,
    STAGE_TS,
    SUBRESOURCE,
    USER,
    VERB,
)
from tests.paths import REPO

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def make_events(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """Events from row dicts; unnamed columns are null, types from AUDIT_SCHEMA."""
    defaults = {CLUSTER: "c1", REQUEST_TS: T0, STAGE: "ResponseComplete", EVENT_BYTES: 100}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=AUDIT_SCHEMA).lazy()


@pytest.fixture(scope="module")
def example() -> pl.LazyFrame:
    return activity.example_events()


# --------------------------------------------------------------------------- requests


def test_requests_joins_stages_with_latency() -> None:
    events = make_events(
        [
            {AUDIT_ID: "r", STAGE: "RequestReceived", VERB: "get", STAGE_TS: at(0)},
            {AUDIT_ID: "r", STAGE: "ResponseStarted", VERB: "get", STAGE_TS: at(4), CODE: 200},
            {AUDIT_ID: "r", STAGE: "ResponseComplete", VERB: "get", STAGE_TS: at(9), CODE: 200},
            # Same audit ID in another cluster: another request.
            {CLUSTER: "c2", AUDIT_ID: "r", VERB: "list", STAGE_TS: at(2), CODE: 500},
            # A panic is the end of a request too.
            {AUDIT_ID: "p", STAGE: "RequestReceived", VERB: "create", STAGE_TS: at(0)},
            {AUDIT_ID: "p", STAGE: "Panic", VERB: "create", STAGE_TS: at(30), CODE: 500},
        ]
    )
    got = (
        activity.requests(events)
        .select(CLUSTER, AUDIT_ID, VERB, "stages", "first_byte_ms", "latency_ms", "bytes", CODE)
        .sort(CLUSTER, AUDIT_ID)
        .collect()
    )
    expected = pl.DataFrame(
        {
            CLUSTER: ["c1", "c1", "c2"],
            AUDIT_ID: ["p", "r", "r"],
            VERB: ["create", "get", "list"],
            "stages": [2, 3, 1],
            "first_byte_ms": [None, 4.0, None],
            "latency_ms": [30.0, 9.0, 2.0],
            "bytes": [200, 300, 100],
            CODE: [500, 200, 500],
        },
        schema_overrides={"stages": pl.UInt32, CODE: pl.Int16},
    )
    assert_frame_equal(got, expected)


def test_requests_keeps_events_without_audit_id_apart() -> None:
    events = make_events(
        [
            {SOURCE_FILE: "a.log", SOURCE_LINE: 1, VERB: "get"},
            {SOURCE_FILE: "a.log", SOURCE_LINE: 2, VERB: "list"},
        ]
    )
    got = activity.requests(events).collect()
    assert sorted(got[VERB].to_list()) == ["get", "list"]
    assert got[AUDIT_ID].to_list() == [None, None]


def test_requests_has_one_row_per_request_on_the_example(example: pl.LazyFrame) -> None:
    got = activity.requests(example).collect()
    ids = example.select(AUDIT_ID).unique().collect()
    assert sorted(got[AUDIT_ID].to_list()) == sorted(ids[AUDIT_ID].to_list())
    assert got["bytes"].sum() == example.select(pl.col(EVENT_BYTES).sum()).collect().item()


def test_long_running_sessions(example: pl.LazyFrame) -> None:
    got = activity.long_running_sessions(example).collect()
    assert got.select("session", "duration_ms", "exec_command").rows() == [
        ("watch", 300_000.0, None),
        ("exec", 45_000.0, "sh -c id"),
    ]


def test_long_running_session_without_completion_lasts_until_last_seen() -> None:
    events = make_events(
        [
            {
                AUDIT_ID: "x",
                STAGE: "ResponseStarted",
                VERB: "create",
                RESOURCE: "pods",
                SUBRESOURCE: "attach",
                STAGE_TS: at(1500),
                CODE: 101,
            }
        ]
    )
    got = activity.long_running_sessions(events).collect()
    assert got.select("session", "duration_ms").rows() == [("attach", 1500.0)]


# --------------------------------------------------------------------------- who did what


def test_actor_activity_includes_impersonation() -> None:
    events = make_events(
        [
            {AUDIT_ID: "1", USER: "alice", VERB: "get", REQUEST_TS: at(0)},
            {AUDIT_ID: "2", USER: "admin", IMPERSONATED_USER: "alice", VERB: "delete",
             REQUEST_TS: at(1)},
            {AUDIT_ID: "3", USER: "bob", VERB: "list", REQUEST_TS: at(2)},
        ]
    )  # fmt: skip
    alice = activity.actor_activity(events, user="alice").collect()
    assert alice.select(AUDIT_ID, "actor", IMPERSONATED_USER).rows() == [
        ("1", "alice", None),
        ("2", "admin", "alice"),
    ]
    admin = activity.actor_activity(events, user="admin").collect()
    assert admin[AUDIT_ID].to_list() == ["2"]
    assert activity.actor_activity(events, user="nobody").collect().height == 0


def deployment(replicas: int, **labels: str) -> str:
    return json.dumps(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels, "managedFields": [{"m": replicas}]},
            "spec": {"replicas": replicas},
        }
    )


SCALE = json.dumps({"kind": "Scale", "spec": {"replicas": 9}})
STATUS_403 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403})


def history_events() -> pl.LazyFrame:
    web = {RESOURCE: "deployments", API_GROUP: "apps", NAMESPACE: "shop", NAME: "web"}
    return make_events(
        [
            {AUDIT_ID: "1", **web, USER: "alice", VERB: "create", CODE: 201, REQUEST_TS: at(0),
             REQUEST_OBJECT: deployment(1, app="web")},
            {AUDIT_ID: "2", **web, USER: "bob", VERB: "patch", CODE: 403, REQUEST_TS: at(1),
             REQUEST_OBJECT: '{"spec":{"replicas":50}}', RESPONSE_OBJECT: STATUS_403},
            # A subresource speaks another kind: not a state of the Deployment.
            {AUDIT_ID: "2s", **web, SUBRESOURCE: "scale", USER: "hpa", VERB: "update",
             CODE: 200, REQUEST_TS: at(1.5), REQUEST_OBJECT: SCALE, RESPONSE_OBJECT: SCALE},
            {AUDIT_ID: "3", **web, USER: "carol", VERB: "patch", CODE: 200, REQUEST_TS: at(2),
             REQUEST_OBJECT: '{"spec":{"replicas":3}}',
             RESPONSE_OBJECT: deployment(3, **{"app": "web", "app.kubernetes.io/name": "w"})},
            {AUDIT_ID: "4", **web, USER: "dave", VERB: "get", CODE: 200, REQUEST_TS: at(3)},
            {AUDIT_ID: "5", **web, USER: "erin", VERB: "delete", CODE: 200, REQUEST_TS: at(4),
             RESPONSE_OBJECT: json.dumps({"kind": "Status", "status": "Success"})},
            # Same name elsewhere: not this object.
            {AUDIT_ID: "6", **web, NAMESPACE: "other", USER: "x", VERB: "delete", CODE: 200},
            {AUDIT_ID: "7", **web, API_GROUP: "extensions", USER: "y", VERB: "get", CODE: 200,
             REQUEST_TS: at(5)},
        ]
    )  # fmt: skip


def test_object_history_timeline_and_state() -> None:
    got = activity.object_history(
        history_events(), resource="deployments", namespace="shop", name="web", api_group="apps"
    ).collect()
    assert got.select("actor", VERB, pl.col("outcome").cast(pl.String)).rows() == [
        ("alice", "create", "success"),
        ("bob", "patch", "denied"),
        ("hpa", "update", "success"),
        ("carol", "patch", "success"),
        ("dave", "get", "success"),
        ("erin", "delete", "success"),
    ]
    state = got["object"].to_list()
    # create: the request body is the object; denied patch and Status replies are not states.
    assert state == [deployment(1, app="web"), None, None, got[RESPONSE_OBJECT][3], None, None]
    any_group = activity.object_history(
        history_events(), resource="deployments", namespace="shop", name="web"
    ).collect()
    assert any_group.height == 7


def test_object_changes_diffs_successive_states() -> None:
    history = activity.object_history(
        history_events(), resource="deployments", namespace="shop", name="web", api_group="apps"
    ).collect()
    got = activity.object_changes(history)
    columns = ("actor", "path", pl.col("change").cast(pl.String), "before", "after")
    assert got.select(columns).rows() == [
        ("carol", '.metadata.labels["app.kubernetes.io/name"]', "added", None, '"w"'),
        ("carol", ".spec.replicas", "changed", "1", "3"),
    ]  # fmt: skip
    assert got.schema == activity.object_changes(history.head(0)).schema


def test_object_changes_hides_secret_values() -> None:
    # A history from elsewhere (not object_history, which drops unredacted bodies).
    def secret(value: str, note: str) -> str:
        return json.dumps(
            {"kind": "Secret", "metadata": {"name": "db", "annotations": {"note": note}},
             "data": {"password": value}}
        )  # fmt: skip

    history = pl.DataFrame(
        {
            REQUEST_TS: [at(0), at(1)],
            "actor": ["u", "u"],
            VERB: ["update", "update"],
            AUDIT_ID: ["1", "2"],
            RESOURCE: ["secrets", "secrets"],
            "object": [secret("aHVudGVyMg==", "a"), secret("c2VjcmV0", "b")],
        }
    )
    got = activity.object_changes(history)
    assert got.select("path", "before", "after").rows() == [
        (".data.password", f'"{REDACTED}"', f'"{REDACTED}"'),
        (".metadata.annotations.note", '"a"', '"b"'),
    ]
    assert "aHVudGVyMg" not in str(got.rows())


def test_object_history_never_shows_unredacted_secret_values() -> None:
    kept = json.dumps({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}})
    redacted = json.dumps({"kind": "Secret", "data": {"password": REDACTED}})
    list_of_secrets = json.dumps({"kind": "List", "items": [json.loads(kept)]})
    events = make_events(
        [
            {AUDIT_ID: "1", RESOURCE: "secrets", NAMESPACE: "a", NAME: "db", VERB: "get",
             CODE: 200, REQUEST_TS: at(0), RESPONSE_OBJECT: kept},
            {AUDIT_ID: "2", RESOURCE: "secrets", NAMESPACE: "a", NAME: "db", VERB: "get",
             CODE: 200, REQUEST_TS: at(1), RESPONSE_OBJECT: redacted},
            {AUDIT_ID: "3", RESOURCE: "configmaps", NAMESPACE: "a", NAME: "db", VERB: "get",
             CODE: 200, REQUEST_TS: at(2), RESPONSE_OBJECT: list_of_secrets},
        ]
    )  # fmt: skip
    secret = activity.object_history(events, resource="secrets", namespace="a", name="db")
    assert secret.collect()[RESPONSE_OBJECT].to_list() == [None, redacted]
    other = activity.object_history(events, resource="configmaps", namespace="a", name="db")
    assert other.collect()[RESPONSE_OBJECT].to_list() == [None]


# --------------------------------------------------------------------------- aggregates

Aggregate = Callable[[pl.LazyFrame], pl.LazyFrame]

TWO_WAY: list[tuple[Aggregate, str]] = [
    (activity.activity_by_user_and_verb, "actor"),
    (activity.activity_by_resource_and_verb, "resource_key"),
    (activity.activity_by_namespace_and_user, "namespace"),
    (activity.activity_by_hour_and_weekday, "hour"),
]


def many_actors(n_actors: int, per_actor: Callable[[int], int]) -> pl.LazyFrame:
    rows = [
        {AUDIT_ID: f"{a}-{i}", USER: f"user-{a:02d}", VERB: "get", RESOURCE: "pods",
         NAMESPACE: f"ns-{a % 3}", EVENT_BYTES: 10 * (a + 1)}
        for a in range(n_actors)
        for i in range(per_actor(a))
    ]  # fmt: skip
    return make_events(rows)


@pytest.mark.parametrize(("aggregate", "key"), TWO_WAY)
def test_aggregates_preserve_totals(aggregate: Aggregate, key: str, example: pl.LazyFrame) -> None:
    got = aggregate(example).collect()
    assert got.select("requests", "events", "bytes").sum().row(0) == (6, 9, 4700)
    assert got[key].null_count() == 0


CUBE_READERS: list[Aggregate] = [
    activity.activity_by_user_and_verb,
    activity.activity_by_resource_and_verb,
    activity.activity_by_namespace_and_user,
    activity.top_talkers,
    lambda e: activity.top_talkers(e, top=1, by="bytes"),
    lambda e: activity.busiest(e, by="resource_key", top=2),
    lambda e: activity.activity_by_namespace_and_user(e, top_namespaces=1, top_users=2),
]


@pytest.mark.parametrize("aggregate", CUBE_READERS)
def test_aggregates_read_the_cube_like_the_events(
    aggregate: Aggregate, example: pl.LazyFrame
) -> None:
    cube = activity.activity_cube(example).collect().lazy()
    assert_frame_equal(aggregate(cube).collect(), aggregate(example).collect())


def test_top_n_buckets_the_rest_into_other() -> None:
    events = many_actors(6, lambda a: a + 1)  # user-05 busiest, user-00 quietest
    got = activity.activity_by_user_and_verb(events, top=2).collect()
    assert got.rows() == [
        (OTHER, "get", 1 + 2 + 3 + 4, 1 + 2 + 3 + 4, 10 * 1 + 20 * 2 + 30 * 3 + 40 * 4),
        ("user-04", "get", 5, 5, 250),
        ("user-05", "get", 6, 6, 360),
    ]
    by_bytes = activity.activity_by_user_and_verb(events, top=1, by="bytes").collect()
    assert set(by_bytes["actor"]) == {"user-05", OTHER}
    assert OTHER not in activity.activity_by_user_and_verb(events, top=6).collect()["actor"]


def test_labels_for_missing_keys() -> None:
    events = make_events([{AUDIT_ID: "1", VERB: "get", REQUEST_URI: "/healthz", USER: None}])
    assert activity.activity_by_resource_and_verb(events).collect()["resource_key"].to_list() == [
        "(non-resource)"
    ]
    by_ns = activity.activity_by_namespace_and_user(events).collect()
    assert by_ns.select("namespace", "actor").rows() == [("(cluster-scoped)", "(none)")]


def test_hour_and_weekday_grid(example: pl.LazyFrame) -> None:
    got = activity.activity_by_hour_and_weekday(example).collect()
    assert got.height == 168
    busy = got.filter(pl.col("requests") > 0)
    assert busy.select(pl.col("day").cast(pl.String), "hour", "requests").rows() == [("Mon", 9, 6)]


@pytest.mark.parametrize(
    ("span", "every", "max_points", "bucket_seconds", "buckets"),
    [
        (timedelta(minutes=10), None, 1_500, 60, 11),
        (timedelta(days=7), None, 1_500, 420, 1_441),
        (timedelta(days=7), None, 100, 6_120, 100),
        (timedelta(hours=3), "1h", 1_500, 3_600, 4),
    ],
)
def test_request_rate_buckets(
    span: timedelta, every: str | None, max_points: int, bucket_seconds: int, buckets: int
) -> None:
    steps = 200
    events = make_events(
        [{AUDIT_ID: str(i), REQUEST_TS: T0 + span * i / steps, CODE: 200} for i in range(steps + 1)]
    )
    got = activity.request_rate(events, every=every, max_points=max_points).collect()
    assert got["requests"].sum() == steps + 1
    assert set(got["bucket_seconds"]) == {bucket_seconds}
    assert got.height <= buckets
    assert got.height <= max_points


def test_request_rate_counts_errors() -> None:
    codes = [200, 201, 401, 403, 404, 500, 503, None]
    events = make_events([{AUDIT_ID: str(i), CODE: c} for i, c in enumerate(codes)])
    got = activity.request_rate(events).collect()
    assert got.select("requests", "denied", "client_errors", "server_errors").row(0) == (
        8,
        2,
        3,
        2,
    )


def test_response_codes(example: pl.LazyFrame) -> None:
    got = activity.response_codes(example).collect()
    assert got.select(CODE, pl.col("outcome").cast(pl.String), "requests").rows() == [
        (200, "success", 3),
        (101, "success", 1),
        (201, "success", 1),
        (403, "denied", 1),
    ]


def test_latency_percentiles_leave_out_sessions() -> None:
    rows = [
        {AUDIT_ID: str(ms), VERB: "get", STAGE_TS: at(ms), REQUEST_URI: "/api/v1/pods"}
        for ms in range(1, 101)
    ]
    rows.append(
        {AUDIT_ID: "w", VERB: "watch", STAGE_TS: at(10**7), REQUEST_URI: "/api/v1/pods?watch=1"}
    )
    got = activity.latency_percentiles(make_events(rows)).collect()
    reference = pl.Series([float(ms) for ms in range(1, 101)])
    assert got.rows() == [
        (
            "get",
            100,
            reference.quantile(0.5, "linear"),
            reference.quantile(0.9, "linear"),
            reference.quantile(0.99, "linear"),
            100.0,
        )
    ]


def test_latency_histogram_bins_contain_their_latencies() -> None:
    latencies = [0.001, 0.5, 1.0, 3.0, 9.99, 10.0, 250.0, 4_000.0]
    events = make_events(
        [{AUDIT_ID: str(i), VERB: "get", STAGE_TS: at(ms)} for i, ms in enumerate(latencies)]
    )
    got = activity.latency_histogram(events, bins_per_decade=4).collect()
    assert got["requests"].sum() == len(latencies)
    for ms in latencies:
        clipped = max(ms, 0.01)
        inside = got.filter(
            (pl.col("bin_start_ms") <= clipped * (1 + 1e-9))
            & (clipped < pl.col("bin_end_ms") * (1 - 1e-12))
        )
        assert inside.height == 1, ms


def test_top_talkers(example: pl.LazyFrame) -> None:
    got = activity.top_talkers(example, top=2).collect()
    assert got.select("actor", pl.col("actor_kind").cast(pl.String), "requests").rows() == [
        ("alice@example.com", "human", 3),
        ("bob@example.com", "human", 1),
        (OTHER, None, 2),
    ]
    assert got.select("writes", "denied").sum().row(0) == (3, 1)


@pytest.mark.parametrize("by", ["actor", "verb", "resource_key", "namespace"])
@pytest.mark.parametrize("measure", ["requests", "events", "bytes"])
def test_busiest_keeps_the_totals_and_puts_other_last(
    example: pl.LazyFrame, by: activity.Dimension, measure: activity.Measure
) -> None:
    got = activity.busiest(example, by=by, measure=measure, top=1).collect()
    assert got.columns == [by, "requests", "events", "bytes", "writes", "denied", "share"]
    assert got.select("requests", "events", "bytes", "writes", "denied").sum().row(0) == (
        6,
        9,
        4700,
        3,
        1,
    )
    assert got["share"].sum() == pytest.approx(1.0)
    assert got[by][-1] == OTHER
    assert got.height == 2


def test_busiest_ranks_by_the_measure() -> None:
    events = many_actors(6, lambda a: 6 - a)  # user-00 makes most requests, user-05 most bytes
    by_requests = activity.busiest(events, top=2).collect()
    assert by_requests["actor"].to_list() == ["user-00", "user-01", OTHER]
    by_bytes = activity.busiest(events, measure="bytes", top=1).collect()
    assert by_bytes.rows()[0][:4] == ("user-02", 4, 4, 120)  # 30 B x 4 beats 10 B x 6
    assert activity.busiest(events, top=6).collect()["actor"].to_list()[-1] != OTHER


def test_busiest_of_nothing_is_empty() -> None:
    assert activity.busiest(make_events([]).filter(pl.lit(value=False))).collect().is_empty()


def test_summary(example: pl.LazyFrame) -> None:
    got = activity.summary(example).collect()
    assert got.select("requests", "events", "bytes", "users", "denied").row(0) == (
        6,
        9,
        4700,
        4,
        1,
    )


# --------------------------------------------------------------------------- properties

VERBS = ["get", "list", "watch", "create", "patch", "delete", None]
STAGES = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]


@st.composite
def event_frames(draw: st.DrawFn) -> pl.LazyFrame:
    n_requests = draw(st.integers(min_value=0, max_value=40))
    rows: list[dict[str, Any]] = []
    for i in range(n_requests):
        stages = draw(st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True))
        user = draw(st.sampled_from(["a", "b", "c", "system:node:n", None]))
        verb = draw(st.sampled_from(VERBS))
        ns = draw(st.sampled_from(["x", "y", None]))
        start = at(draw(st.integers(min_value=0, max_value=7 * 24 * 3_600_000)))
        code = draw(st.sampled_from([200, 403, 404, 500, None]))
        rows.extend(
            {AUDIT_ID: f"r{i}", STAGE: stage, USER: user, GROUPS: [], VERB: verb,
             NAMESPACE: ns, RESOURCE: "pods" if ns else None, CODE: code, REQUEST_TS: start,
             STAGE_TS: start + timedelta(milliseconds=draw(st.integers(0, 10_000))),
             EVENT_BYTES: draw(st.integers(0, 5_000))}
            for stage in stages
        )  # fmt: skip
    return make_events(rows) if rows else make_events([]).head(0)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(events=event_frames(), top=st.integers(min_value=1, max_value=4))
def test_every_aggregate_counts_each_request_once(events: pl.LazyFrame, top: int) -> None:
    frame = events.collect()
    n_requests = frame.select(AUDIT_ID).n_unique() if frame.height else 0
    totals = (n_requests, frame.height, int(frame[EVENT_BYTES].sum()))
    for aggregate in (
        lambda e: activity.activity_by_user_and_verb(e, top=top),
        lambda e: activity.activity_by_resource_and_verb(e, top=top),
        lambda e: activity.activity_by_namespace_and_user(e, top_namespaces=top, top_users=top),
        activity.activity_by_hour_and_weekday,
        lambda e: activity.top_talkers(e, top=top),
    ):
        got = aggregate(events).collect()
        assert tuple(got.select("requests", "events", "bytes").sum().row(0)) == totals
    assert activity.request_rate(events).collect()["requests"].sum() == n_requests
    assert activity.requests(events).collect().height == n_requests
    answered = frame.filter(pl.col(STAGE) != "RequestReceived").select(AUDIT_ID).n_unique()
    assert activity.response_codes(events).collect()["requests"].sum() == (
        answered if frame.height else 0
    )
    sessions = activity.long_running_sessions(events).head(top).collect().sort(AUDIT_ID)
    fast = activity.long_running_sessions(events, top=top).collect().sort(AUDIT_ID)
    assert_frame_equal(fast, sessions)
    talkers = activity.top_talkers(events, top=top).collect()
    assert talkers.filter(pl.col("actor") != OTHER).height <= top


# --------------------------------------------------------------------------- the bundled sample

SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="module")
def sample_events(tmp_path_factory: pytest.TempPathFactory) -> pl.LazyFrame:
    lake = tmp_path_factory.mktemp("sample-lake")
    ka.ingest(SAMPLE, lake)
    return ka.scan(lake)


@pytest.mark.slow
def test_sample_requests_fall_in_exactly_one_cell(sample_events: pl.LazyFrame) -> None:
    frame = sample_events.select(AUDIT_ID, EVENT_BYTES).collect()
    totals = (frame[AUDIT_ID].n_unique(), frame.height, int(frame[EVENT_BYTES].sum()))
    assert totals[0] > 1_000
    cube = activity.activity_cube(sample_events).collect()
    assert tuple(cube.select("requests", "events", "bytes").sum().row(0)) == totals
    for aggregate in (
        activity.activity_by_user_and_verb,
        activity.activity_by_resource_and_verb,
        activity.activity_by_namespace_and_user,
        activity.top_talkers,
    ):
        got = aggregate(cube.lazy()).collect()
        assert tuple(got.select("requests", "events", "bytes").sum().row(0)) == totals
        assert got.height <= 26 * 30  # top N x verbs/actors: chart-sized
    assert activity.requests(sample_events).collect().height == totals[0]
    summary = activity.summary(sample_events).collect()
    assert summary.select("requests", "events", "bytes").row(0) == totals


@pytest.mark.slow
def test_sample_drill_downs(sample_events: pl.LazyFrame) -> None:
    busiest = (
        sample_events.filter(pl.col(NAME).is_not_null() & pl.col(NAMESPACE).is_not_null())
        .group_by(RESOURCE, NAMESPACE, NAME)
        .agg(pl.col(AUDIT_ID).n_unique().alias("n"))
        .sort("n", RESOURCE, NAMESPACE, NAME, descending=[True, False, False, False])
        .collect()
        .row(0, named=True)
    )
    history = activity.object_history(
        sample_events,
        resource=busiest[RESOURCE],
        namespace=busiest[NAMESPACE],
        name=busiest[NAME],
    ).collect()
    assert history.height == busiest["n"]
    assert history[REQUEST_TS].is_sorted()
    changes = activity.object_changes(history)
    assert set(changes[AUDIT_ID]) <= set(history[AUDIT_ID])
    fast = activity.long_running_sessions(sample_events, top=5).collect()
    assert_frame_equal(fast, activity.long_running_sessions(sample_events).head(5).collect())
    assert (fast["duration_ms"] >= 0).all()
