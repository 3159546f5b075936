"""The time window every command reads: ``--since``/``--until`` text into ``[since, until)``."""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC

import pytest

from kaudit_analytics.window import Window, WindowError, as_utc, parse_bounds, parse_window

NOW = dt.datetime(2026, 11, 27, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("7d", None, ("2026-11-20T06:30:00+00:00", "2026-11-27T06:30:00+00:00")),
        ("24h", "2026-11-20", ("2026-11-19T00:00:00+00:00", "2026-11-20T00:00:00+00:00")),
        ("30m", "1h", ("2026-11-27T05:00:00+00:00", "2026-11-27T05:30:00+00:00")),
        ("2w", None, ("2026-11-13T06:30:00+00:00", "2026-11-27T06:30:00+00:00")),
        (
            "2026-11-01",
            "2026-11-02T12:00:00Z",
            ("2026-11-01T00:00:00+00:00", "2026-11-02T12:00:00+00:00"),
        ),
        (
            "2026-11-01T08:00:00+02:00",
            None,
            ("2026-11-01T08:00:00+02:00", "2026-11-27T06:30:00+00:00"),
        ),
    ],
)
def test_parse_window(since: str, until: str | None, expected: tuple[str, str]) -> None:
    window = parse_window(since, until, now=NOW)
    assert (window.since.isoformat(), window.until.isoformat()) == expected


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("7x", None, "--since: cannot read '7x'"),
        ("7d", "tomorrow", "--until: cannot read 'tomorrow'"),
        ("2026-12-01", None, "empty window"),
    ],
)
def test_parse_window_errors(since: str, until: str | None, message: str) -> None:
    with pytest.raises(WindowError, match=re.escape(message)):
        parse_window(since, until, now=NOW)


def test_window_refuses_naive_and_empty_bounds() -> None:
    day = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(WindowError, match="timezone-aware"):
        Window(day.replace(tzinfo=None), day)
    with pytest.raises(WindowError, match="empty window"):
        Window(day, day)


PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-09-11T22:00:00Z", "2024-09-11T22:00:00+00:00"),
        ("2024-09-11T22:00:00", "2024-09-11T22:00:00+00:00"),
        (dt.date(2024, 9, 12), "2024-09-12T00:00:00+00:00"),
        (
            dt.datetime(2024, 9, 12, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-09-12T00:00:00+00:00",
        ),
    ],
)
def test_as_utc(value: dt.datetime | dt.date | str, expected: str) -> None:
    result = as_utc(value)
    assert result is not None
    assert result.isoformat() == expected


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, (None, None)),
        (None, "2026-11-01", (None, "2026-11-01T00:00:00+00:00")),
        (None, "2h", (None, "2026-11-27T04:30:00+00:00")),
        ("1d", None, ("2026-11-26T06:30:00+00:00", "2026-11-27T06:30:00+00:00")),
        ("2026-11-01", "1d", ("2026-11-01T00:00:00+00:00", "2026-11-26T06:30:00+00:00")),
    ],
)
def test_parse_bounds_leaves_open_ends_open(
    since: str | None, until: str | None, expected: tuple[str | None, str | None]
) -> None:
    got = parse_bounds(since, until, now=NOW)
    assert tuple(value.isoformat() if value else None for value in got) == expected


def test_parse_bounds_errors_like_parse_window() -> None:
    with pytest.raises(WindowError, match="--until: cannot read 'soon'"):
        parse_bounds(None, "soon", now=NOW)
    with pytest.raises(WindowError, match="empty window"):
        parse_bounds("2026-11-02", "2026-11-01", now=NOW)


def test_a_window_can_end_at_a_datetime() -> None:
    # What "the last 7 days of the lake" is: counted back from the lake's last event.
    end = dt.datetime(2024, 9, 12, 2, 45, tzinfo=UTC)
    window = parse_window("7d", end, now=NOW)
    assert (window.since, window.until) == (end - dt.timedelta(days=7), end)
