"""The synthetic audit-log generator: determinism, the apiserver's exact form, policy replay."""

from __future__ import annotations

import collections
import gzip
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kaudit_analytics.cli import main
from kaudit_analytics.policy import load_policy, request_info
from kaudit_analytics.sample import (
    PROFILES,
    SampleError,
    generate,
    iter_lines,
    profile_policy,
    write_sample,
)
from kaudit_analytics.sample.gojson import go_duration, go_json, go_quote
from kaudit_analytics.testing import SAMPLE_DIR
from tests.paths import REPO

# Go field order of the structs the log backend serializes (audit/v1 types.go, authn/v1,
# meta/v1 Status); a line may omit empty fields but never reorder them.
EVENT_FIELDS = (
    "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
    "impersonatedUser", "sourceIPs", "userAgent", "objectRef", "responseStatus",
    "requestObject", "responseObject", "requestReceivedTimestamp", "stageTimestamp",
    "annotations",
)  # fmt: skip
USER_FIELDS = ("username", "uid", "groups", "extra")
REF_FIELDS = (
    "resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion",
    "subresource",
)  # fmt: skip
STATUS_FIELDS = ("kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code")
REQUIRED = {"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
            "requestReceivedTimestamp", "stageTimestamp"}  # fmt: skip
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# Every rule at Metadata and no stage omitted: every request shows every stage it has.
EVERYTHING = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
EVERYTHING_BODIES = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n"
OFFICE_HOURS = "2024-09-10T09:00:00Z"


@cache
def _lines(
    events: int, seed: int, policy: str | None, profile: str, start: str | None
) -> list[str]:
    return list(iter_lines(events=events, seed=seed, policy=policy, profile=profile, start=start))


def lines_of(
    events: int,
    *,
    seed: int = 0,
    policy: str | None = None,
    profile: str = "metadata",
    start: str | None = None,
) -> list[str]:
    """Generated lines, cached per arguments so that tests share the work."""
    return _lines(events, seed, policy, profile, start)


def sample_lines() -> list[str]:
    """Every line of the committed sample, oldest file first."""
    out: list[str] = []
    for path in sorted(SAMPLE_DIR.iterdir(), key=lambda p: (p.name == "audit.log", p.name)):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out.extend(data.decode().splitlines(keepends=True))
    return out


def assert_go_order(keys: Iterable[str], order: tuple[str, ...], where: str) -> None:
    positions = [order.index(key) for key in keys]
    assert positions == sorted(positions), f"{where}: {list(keys)} is not in Go field order"


def assert_event_form(line: str) -> dict[str, Any]:
    """One line is an audit.k8s.io/v1 Event exactly as Go's encoding/json writes it."""
    assert line.endswith("\n")
    assert "\n" not in line[:-1]
    event: dict[str, Any] = json.loads(line)
    assert go_json(event) + "\n" == line, "not the canonical Go encoding of itself"
    assert set(event) <= set(EVENT_FIELDS)
    assert set(event) >= REQUIRED
    assert_go_order(event, EVENT_FIELDS, "event")
    assert_go_order(event["user"], USER_FIELDS, "user")
    if "impersonatedUser" in event:
        assert_go_order(event["impersonatedUser"], USER_FIELDS, "impersonatedUser")
    if "objectRef" in event:
        assert_go_order(event["objectRef"], REF_FIELDS, "objectRef")
        assert all(event["objectRef"].values()), "omitempty: no empty objectRef field"
    if "responseStatus" in event:
        assert_go_order(event["responseStatus"], STATUS_FIELDS, "responseStatus")
    for key in ("annotations",):
        if key in event:
            assert list(event[key]) == sorted(event[key]), "Go sorts map keys"
    assert MICRO_TIME.match(event["requestReceivedTimestamp"])
    assert MICRO_TIME.match(event["stageTimestamp"])
    assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]
    assert not any(char in line for char in "<>&"), "Go escapes <, > and & as \\u003c..."
    return event


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", '"plain"'),
        ("a&b", '"a\\u0026b"'),
        ("<x>", '"\\u003cx\\u003e"'),
        ('q"\\', '"q\\"\\\\"'),
        ("tab\tnl\n", '"tab\\tnl\\n"'),
        ("\u2028", '"\\u2028"'),
        ("µs", '"µs"'),
    ],
)
def test_go_quote_escapes_like_encoding_json(text: str, expected: str) -> None:
    assert go_quote(text) == expected


@pytest.mark.parametrize(
    ("nanos", "expected"),
    [(999, "999ns"), (1_000, "1µs"), (561_927, "561.927µs"), (1_500_000, "1.5ms"),
     (7_855_949_070, "7.85594907s"), (2_000_000_000, "2s")],
)  # fmt: skip
def test_go_duration_formats_like_time_duration(nanos: int, expected: str) -> None:
    assert go_duration(nanos) == expected


def test_real_apiserver_lines_are_their_own_go_encoding(shared_samples: Path) -> None:
    # The encoder the generator uses reproduces real kube-apiserver output byte for byte.
    real = [
        *(shared_samples / "crowdsec-hub").glob("*.log"),
        shared_samples / "openshift-docs" / "audit_examples.jsonl",
    ]
    checked = 0
    for path in real:
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            assert go_json(event) == line
            assert_go_order(event, EVENT_FIELDS, path.name)
            checked += 1
    assert checked == 6


@pytest.mark.slow
def test_generated_lines_have_the_field_order_of_a_real_line(shared_samples: Path) -> None:
    real = json.loads((shared_samples / "crowdsec-hub" / "k8s-audit-pod-exec-file.log").read_text())
    line = next(
        line
        for line in lines_of(20_000, start=OFFICE_HOURS, policy=EVERYTHING)
        if '"subresource":"exec"' in line
        and '"stage":"ResponseComplete"' in line
        and '"code":101' in line
    )
    ours = json.loads(line)
    common = [key for key in real if key in ours]
    assert common == [key for key in ours if key in real]
    assert list(real["objectRef"]) == [k for k in ours["objectRef"] if k in real["objectRef"]]
    assert ours["responseStatus"] == real["responseStatus"] == {"metadata": {}, "code": 101}
    assert "\\u0026container=" in line
    assert "&" not in line


# --------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_same_seed_same_bytes_and_another_seed_other_bytes() -> None:
    first, again, other = io.BytesIO(), io.BytesIO(), io.BytesIO()
    generate(first, events=3_000, seed=11)
    generate(again, events=3_000, seed=11)
    generate(other, events=3_000, seed=12)
    assert first.getvalue() == again.getvalue()
    assert first.getvalue() != other.getvalue()
    assert first.getvalue().count(b"\n") == 3_000


def test_start_moves_the_clock_only() -> None:
    default = [json.loads(line) for line in lines_of(500)]
    later = [json.loads(line) for line in lines_of(500, start="2024-09-10T00:00:00+00:00")]
    assert default == later
    assert default[0]["requestReceivedTimestamp"].startswith("2024-09-10T00:00:")


@pytest.mark.slow
def test_the_committed_sample_is_what_write_sample_builds(tmp_path: Path) -> None:
    stats = write_sample(tmp_path)
    built = {Path(name).name: Path(name).read_bytes() for name in stats.files}
    for copy in (REPO / "data" / "sample",):
        committed = {path.name: path.read_bytes() for path in copy.iterdir()}
        assert committed == built, f"{copy} is stale: rebuild it with write_sample"


def test_the_sample_is_a_rotated_set_of_about_two_days() -> None:
    names = sorted(path.name for path in SAMPLE_DIR.iterdir())
    assert names[-1] == "audit.log"
    assert re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log\.gz", names[0])
    assert re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", names[1])
    assert sum(path.stat().st_size for path in SAMPLE_DIR.iterdir()) < 5_000_000
    lines = sample_lines()
    assert 20_000 <= len(lines) <= 40_000
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    span = datetime.fromisoformat(last["stageTimestamp"]) - datetime.fromisoformat(
        first["stageTimestamp"]
    )
    assert 36 <= span.total_seconds() / 3600 <= 60


# --------------------------------------------------------------------------- form


@pytest.mark.slow
def test_every_sample_line_is_an_event_as_go_writes_it() -> None:
    stamps = [assert_event_form(line)["stageTimestamp"] for line in sample_lines()]
    assert stamps == sorted(stamps), "a log file receives events in stage-time order"


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["metadata", "bodies"])
def test_every_profile_line_is_an_event_as_go_writes_it(profile: str) -> None:
    for line in lines_of(5_000, profile=profile, start=OFFICE_HOURS):
        assert_event_form(line)


@pytest.mark.slow
def test_every_stage_and_level_appears_in_the_sample() -> None:
    events = [json.loads(line) for line in sample_lines()]
    assert {e["stage"] for e in events} == {
        "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic",
    }  # fmt: skip
    assert {e["level"] for e in events} == {"Metadata", "Request", "RequestResponse"}
    features: collections.Counter[str] = collections.Counter()
    for e in events:
        features["impersonation"] += "impersonatedUser" in e
        features["managedFields"] += "managedFields" in json.dumps(e.get("responseObject", {}))
        features["table"] += e.get("responseObject", {}).get("kind") == "Table"
        features["no userAgent"] += "userAgent" not in e
        features["user extra"] += "extra" in e["user"]
        features["latency"] += any(
            k.startswith("apiserver.latency") for k in e.get("annotations", {})
        )
        features["pod-security"] += "pod-security.kubernetes.io/enforce-policy" in e.get(
            "annotations", {}
        )
        features["unauthenticated"] += e["user"] == {}
    assert all(features[name] > 0 for name in features), features


@pytest.mark.slow
def test_stages_follow_the_audit_filter() -> None:
    by_id: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for line in lines_of(20_000, start=OFFICE_HOURS, policy=EVERYTHING):
        event = json.loads(line)
        by_id[event["auditID"]].append(event)
    kinds: collections.Counter[tuple[str, ...]] = collections.Counter()
    for events in by_id.values():
        stages = [e["stage"] for e in events]
        first = events[0]
        if first["stage"] == "RequestReceived":
            # RequestReceived is written before authorization, impersonation and the handler.
            assert first["stageTimestamp"] == first["requestReceivedTimestamp"]
            assert not {"responseStatus", "annotations", "impersonatedUser"} & set(first)
        long_running = first["verb"] == "watch" or first.get("objectRef", {}).get(
            "subresource"
        ) in {"exec", "attach", "portforward", "log"}
        if "ResponseStarted" in stages and first["user"] != {}:
            assert long_running
        times = [e["stageTimestamp"] for e in events]
        assert times == sorted(times)
        kinds[tuple(stages)] += 1
    # Complete requests; a request cut off at the end of the log may miss its last stages.
    assert kinds[("RequestReceived", "ResponseComplete")] > 10_000 / 3
    assert kinds[("RequestReceived", "ResponseStarted", "ResponseComplete")] > 50
    assert kinds[("ResponseStarted",)] > 0  # failed authentication: 401, no RequestReceived


@pytest.mark.slow
def test_object_refs_agree_with_the_request_uri() -> None:
    checked = 0
    for line in lines_of(20_000, start=OFFICE_HOURS, policy=EVERYTHING):
        event = json.loads(line)
        if event["stage"] != "RequestReceived":
            continue
        info = request_info(event["verb"], event["requestURI"])
        ref = event.get("objectRef")
        assert info.is_resource_request == (ref is not None), event["requestURI"]
        if ref is not None:
            parsed = (
                info.namespace,
                info.api_group,
                info.api_version,
                info.resource,
                info.subresource,
                info.name,
            )
            keys = ("namespace", "apiGroup", "apiVersion", "resource", "subresource", "name")
            assert parsed == tuple(ref.get(key, "") for key in keys), event["requestURI"]
        checked += 1
    assert checked > 5_000


# --------------------------------------------------------------------------- policy


def _requests_seen(lines: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for line in lines:
        event = json.loads(line)
        out[event["auditID"], event["stage"]] = event
    return out


@pytest.mark.slow
def test_same_requests_under_two_policies() -> None:
    # Same profile (traffic mix), two policies: the bundled one and log-everything.
    wide = _requests_seen(
        lines_of(20_000, start=OFFICE_HOURS, policy=EVERYTHING_BODIES, profile="bodies")
    )
    narrow = _requests_seen(lines_of(6_000, start=OFFICE_HOURS, profile="bodies"))
    last = max(e["stageTimestamp"] for e in wide.values())
    inside = {k: e for k, e in narrow.items() if e["stageTimestamp"] <= last}
    assert len(inside) > 3_000
    assert inside.keys() <= wide.keys()
    for key, event in inside.items():
        other = wide[key]
        for field in ("requestURI", "verb", "user", "impersonatedUser", "objectRef",
                      "responseStatus", "requestReceivedTimestamp", "stageTimestamp"):  # fmt: skip
            assert event.get(field) == other.get(field), (key, field)
        if event["level"] == "RequestResponse":
            assert event.get("requestObject") == other.get("requestObject")
            assert event.get("responseObject") == other.get("responseObject")


@pytest.mark.slow
def test_levels_keep_what_the_apiserver_keeps() -> None:
    for line in lines_of(20_000, start=OFFICE_HOURS, profile="docs"):
        event = json.loads(line)
        bodies = {"requestObject", "responseObject"} & set(event)
        if event["level"] == "Metadata" or event["stage"] in {"RequestReceived"}:
            assert not bodies
        elif event["stage"] == "ResponseStarted":
            # Only a failed authentication writes its Status before the header (then RR).
            assert not bodies or event["responseStatus"]["code"] == 401
        elif event["stage"] == "Panic":
            assert "responseObject" not in event
        if event["level"] == "Request":
            assert "responseObject" not in event


@pytest.mark.slow
def test_the_policy_decides_the_level_omitted_stages_and_managed_fields() -> None:
    policy = profile_policy("metadata")
    by_rule: collections.Counter[int | None] = collections.Counter()
    for line in lines_of(5_000, start=OFFICE_HOURS):
        event = json.loads(line)
        info = request_info(event["verb"], event["requestURI"])
        user = event["user"]
        cfg = policy.evaluate_request(
            info.attributes(user=user.get("username"), groups=tuple(user.get("groups", ())))
            if user
            else info.attributes(user=None)
        )
        assert cfg.level == event["level"]
        assert event["stage"] not in cfg.omit_stages
        if cfg.omit_managed_fields:
            assert "managedFields" not in line
        by_rule[cfg.rule_index] += 1
    assert len(by_rule) >= 5


def test_omit_managed_fields_drops_them_from_bodies() -> None:
    keep = lines_of(3_000, start=OFFICE_HOURS, policy=EVERYTHING_BODIES)
    omit = lines_of(
        3_000, start=OFFICE_HOURS, policy=EVERYTHING_BODIES + "  omitManagedFields: true\n"
    )
    assert sum('"managedFields"' in line for line in keep) > 100
    assert not any('"managedFields"' in line for line in omit)


@pytest.mark.slow
def test_large_bodies_are_truncated_like_the_truncate_backend() -> None:
    lines = lines_of(60_000, seed=3, start=OFFICE_HOURS, profile="bodies")
    truncated = [json.loads(line) for line in lines if "audit.k8s.io/truncated" in line]
    assert truncated
    for event in truncated:
        assert event["annotations"]["audit.k8s.io/truncated"] == "true"
        assert "requestObject" not in event
        assert "responseObject" not in event
    assert max(len(line.encode()) for line in lines) <= 102_400


# --------------------------------------------------------------------------- traffic


def _share(events: list[dict[str, Any]], predicate: Any) -> float:
    return sum(1 for e in events if predicate(e)) / len(events)


@pytest.mark.slow
def test_traffic_mix_of_a_real_cluster() -> None:
    events = [json.loads(line) for line in lines_of(20_000, start=OFFICE_HOURS, policy=EVERYTHING)]
    users = [e["user"].get("username", "") for e in events]
    kubelets = sum(u.startswith("system:node:") for u in users) / len(users)
    assert 0.25 < kubelets < 0.6
    leases = _share(events, lambda e: e.get("objectRef", {}).get("resource") == "leases")
    assert 0.2 < leases < 0.6
    probes = _share(events, lambda e: e["requestURI"] in {"/readyz", "/livez", "/healthz"})
    assert 0.02 < probes < 0.15
    humans = _share(events, lambda e: e["user"].get("username", "").endswith("@example.com"))
    assert 0.01 < humans < 0.2
    codes = collections.Counter(
        e["responseStatus"]["code"] for e in events if "responseStatus" in e
    )
    total = sum(codes.values())
    assert codes[200] / total > 0.8
    for code in (101, 201, 401, 403, 404, 409):
        assert 0 < codes[code] / total < 0.1, (code, codes)


@pytest.mark.slow
def test_people_work_office_hours() -> None:
    def humans(start: str) -> float:
        events = [json.loads(line) for line in lines_of(5_000, start=start, policy=EVERYTHING)]
        return _share(events, lambda e: e["user"].get("username", "").endswith("@example.com"))

    assert humans("2024-09-10T10:00:00Z") > 4 * humans("2024-09-10T02:00:00Z")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("profile", "bodies_low", "bodies_high", "bytes_low", "bytes_high"),
    [("metadata", 0.001, 0.02, 700, 1_200), ("bodies", 0.18, 0.4, 1_400, 3_000)],
)
def test_profiles_have_their_body_share_and_size(
    profile: str, bodies_low: float, bodies_high: float, bytes_low: int, bytes_high: int
) -> None:
    lines = lines_of(20_000, profile=profile)
    with_body = sum('"requestObject"' in line or '"responseObject"' in line for line in lines)
    size = sum(len(line.encode()) for line in lines) / len(lines)
    assert bodies_low < with_body / len(lines) < bodies_high
    assert bytes_low < size < bytes_high


# --------------------------------------------------------------------------- API & CLI


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "nope"}, "unknown generator profile"),
        ({"events": -1}, "zero or more"),
        ({"start": "yesterday"}, "not an ISO 8601"),
        ({"rotate_bytes": 0}, "must be positive"),
    ],
)
def test_bad_requests_raise_sample_error(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"events": 5, **kwargs}
    with pytest.raises(SampleError, match=message):
        generate(io.BytesIO(), **arguments)


@pytest.mark.slow
def test_generate_rotates_and_compresses_like_the_log_backend(tmp_path: Path) -> None:
    stats = generate(tmp_path / "audit.log", events=4_000, rotate_bytes=1_000_000, compress=True)
    files = [Path(name) for name in stats.files]
    assert files[-1].name == "audit.log"
    assert len(files) >= 3
    assert all(f.name.endswith(".log.gz") for f in files[:-1])
    data = b"".join(
        gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files
    )
    assert data == b"".join(line.encode() for line in lines_of(4_000))
    assert all(len(gzip.decompress(f.read_bytes())) <= 1_000_000 for f in files[:-1])


def test_cli_generate_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "x.log.gz"
    result = CliRunner().invoke(
        main, ["generate", "--events", "200", "--seed", "4", "--out", str(out), "--gzip"]
    )
    assert result.exit_code == 0, result.output
    text = gzip.decompress(out.read_bytes()).decode()
    assert text == "".join(lines_of(200, seed=4))


def test_cli_generate_to_stdout_with_a_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(EVERYTHING)
    result = CliRunner().invoke(
        main, ["generate", "--events", "50", "--policy", str(policy), "--profile", "bodies"]
    )
    assert result.exit_code == 0
    assert result.stdout == "".join(lines_of(50, policy=EVERYTHING, profile="bodies"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "/nonexistent-dir/x.log"], "cannot write /nonexistent-dir/x.log"),
        (["--policy", "/nonexistent.yaml"], "/nonexistent.yaml"),
        (["--start", "soon"], "not an ISO 8601"),
    ],
)
def test_cli_generate_errors_are_one_sentence(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["generate", "--events", "5", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_bundled_policies_load_and_profiles_name_them() -> None:
    for name in PROFILES:
        assert profile_policy(name).rules
    assert load_policy(EVERYTHING).rules[0].level == "Metadata"


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31), profile=st.sampled_from(sorted(PROFILES)))
def test_any_seed_gives_canonical_events(seed: int, profile: str) -> None:
    start = datetime(2024, 9, 9, 6, tzinfo=UTC)
    for line in iter_lines(events=400, seed=seed, profile=profile, start=start):
        assert_event_form(line)
