"""Time windows over the events table: ``[since, until)`` in UTC, and how users write them.

Every command and analysis that takes ``--since``/``--until`` reads them here: a date
(``2026-11-20``), a timestamp (naive means UTC) or a duration counted back (``7d``, ``24h``).

Examples
--------
>>> import datetime as dt
>>> from kaudit_analytics.window import parse_window
>>> now = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
>>> w = parse_window("7d", now=now)
>>> w.since.isoformat(), w.until.isoformat()
('2026-11-20T06:00:00+00:00', '2026-11-27T06:00:00+00:00')
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from kaudit_analytics import schema as s

__all__ = ["Window", "WindowError", "as_utc", "parse_bounds", "parse_window"]


class WindowError(ValueError):
    """A window bound cannot be read, or the window is empty."""


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[since, until)`` in UTC.

    Examples
    --------
    >>> import datetime as dt
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=7), end)
    >>> w.previous().since.date().isoformat()
    '2026-11-13'
    """

    since: dt.datetime
    until: dt.datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            msg = "window bounds must be timezone-aware"
            raise WindowError(msg)
        if self.until <= self.since:
            msg = f"empty window: until ({self.until}) is not after since ({self.since})"
            raise WindowError(msg)

    @property
    def length(self) -> dt.timedelta:
        """``until - since``."""
        return self.until - self.since

    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.since - self.length, self.since)

    def contains(self) -> pl.Expr:
        """True for events whose ``request_ts`` falls in the window."""
        return (pl.col(s.REQUEST_TS) >= self.since) & (pl.col(s.REQUEST_TS) < self.until)


def as_utc(value: dt.datetime | dt.date | str | None) -> dt.datetime | None:
    """A bound as an aware UTC datetime: dates are midnight, naive values are UTC.

    Examples
    --------
    >>> import datetime as dt
    >>> as_utc("2024-09-11T22:00:00Z").isoformat()
    '2024-09-11T22:00:00+00:00'
    >>> as_utc(dt.date(2024, 9, 12)).isoformat()
    '2024-09-12T00:00:00+00:00'
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _instant(text: str | dt.datetime, option: str) -> dt.datetime | dt.timedelta:
    if isinstance(text, dt.datetime):
        return text if text.tzinfo else text.replace(tzinfo=dt.UTC)
    match = _DURATION.match(text)
    if match:
        return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = (
            f"{option}: cannot read {text!r} as a date (2026-11-20), a timestamp "
            "(2026-11-20T08:00:00Z) or a duration (7d, 24h, 30m)"
        )
        raise WindowError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_window(
    since: str | dt.datetime, until: str | dt.datetime | None = None, *, now: dt.datetime
) -> Window:
    """The window from ``--since``/``--until`` text.

    Each is a date, a timestamp (naive means UTC; a ``datetime`` is taken as it is) or a
    duration; a duration is counted back from ``until``, and ``until`` itself (default
    ``now``) back from ``now``.

    Raises
    ------
    WindowError
        When a value cannot be read or the window is empty.

    Examples
    --------
    >>> import datetime as dt
    >>> now = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    >>> parse_window("2026-11-01", "2026-11-02", now=now).length
    datetime.timedelta(days=1)
    >>> parse_window("7d", dt.datetime(2024, 9, 13, tzinfo=dt.UTC), now=now).since.isoformat()
    '2024-09-06T00:00:00+00:00'
    """
    end_value = _instant(until, "--until") if until else now
    end = now - end_value if isinstance(end_value, dt.timedelta) else end_value
    start_value = _instant(since, "--since")
    start = end - start_value if isinstance(start_value, dt.timedelta) else start_value
    return Window(start, end)


def parse_bounds(
    since: str | None, until: str | None, *, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``--since``/``--until`` where either may be left out: an open end is ``None``.

    With neither, the window is everything; with ``until`` alone, everything before it;
    otherwise as ``parse_window``.

    Raises
    ------
    WindowError
        When a value cannot be read or the window is empty.

    Examples
    --------
    >>> import datetime as dt
    >>> now = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    >>> parse_bounds(None, None, now=now)
    (None, None)
    >>> parse_bounds(None, "1d", now=now)[1].isoformat()
    '2026-11-26T06:00:00+00:00'
    """
    if since is not None:
        window = parse_window(since, until, now=now)
        return window.since, window.until
    if until is None:
        return None, None
    end = _instant(until, "--until")
    return None, now - end if isinstance(end, dt.timedelta) else end
