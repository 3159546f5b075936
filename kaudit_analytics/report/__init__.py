"""Compliance reports: built once from the events (``model``), laid out as files (``render``).

``build_report`` runs every control over a window and over the previous window of the same
length (the trend), collects once, and returns an immutable ``Report``. The renderers are pure
functions of that value, so the same events always give byte-identical files: self-contained
HTML (opens with no network), Markdown, a JSON summary, and the evidence as Parquet and CSV.

Examples
--------
>>> import datetime as dt
>>> from kaudit_analytics.report import build_report
>>> from kaudit_analytics.window import Window
>>> from kaudit_analytics.schema import empty_events
>>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
>>> report = build_report(empty_events().lazy(), Window(end - dt.timedelta(days=7), end))
>>> report.status_counts()
{'fail': 0, 'not assessable': 65, 'pass': 0}
"""

from __future__ import annotations

from kaudit_analytics.report.model import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    FORMATS,
    Assessment,
    ControlRow,
    EmptyWindowError,
    Report,
    ReportError,
    SliceParts,
    assess,
    assessment,
    build_report,
    check_window,
    control_table,
    coverage_table,
    day_slices,
    exit_code,
    merge_slices,
    report_from_lake,
    slice_parts,
    tactic_table,
)
from kaudit_analytics.report.render import (
    chart_specs,
    charts,
    check_formats,
    summary,
    to_html,
    to_json,
    to_markdown,
    write_report,
)
from kaudit_analytics.window import parse_window

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "FORMATS",
    "Assessment",
    "ControlRow",
    "EmptyWindowError",
    "Report",
    "ReportError",
    "SliceParts",
    "assess",
    "assessment",
    "build_report",
    "chart_specs",
    "charts",
    "check_formats",
    "check_window",
    "control_table",
    "coverage_table",
    "day_slices",
    "exit_code",
    "merge_slices",
    "parse_window",
    "report_from_lake",
    "slice_parts",
    "summary",
    "tactic_table",
    "to_html",
    "to_json",
    "to_markdown",
    "write_report",
]
