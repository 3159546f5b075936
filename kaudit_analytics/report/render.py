"""Reports laid out: self-contained HTML, Markdown, JSON and evidence files.

The renderers are pure functions of a ``Report``, so the same events always give
byte-identical files:

- ``to_html``: one self-contained page; the styles, the chart specs and the Vega JavaScript
  are inline, so it opens with no network (air-gapped shops).
- ``to_markdown``, ``to_json`` (a summary for machines), and the evidence as Parquet/CSV
  through ``write_report``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import polars as pl
from markupsafe import Markup

from kaudit_analytics.compliance import settings_rows
from kaudit_analytics.report.model import (
    FORMATS,
    SHOWN_EVIDENCE,
    Report,
    ReportError,
    tactic_table,
)

if TYPE_CHECKING:
    import altair as alt

__all__ = [
    "chart_specs",
    "charts",
    "check_formats",
    "summary",
    "to_html",
    "to_json",
    "to_markdown",
    "write_report",
]


# --------------------------------------------------------------------------- charts


def _control_frame(report: Report) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "control": [row.control.id for row in report.rows],
            "title": [row.control.title for row in report.rows],
            "status": [row.result.status for row in report.rows],
            "severity": [row.control.severity for row in report.rows],
            "findings": [row.result.findings for row in report.rows],
            "previous": [row.previous.findings for row in report.rows],
        },
        schema={
            "control": pl.String,
            "title": pl.String,
            "status": pl.String,
            "severity": pl.String,
            "findings": pl.Int64,
            "previous": pl.Int64,
        },
    )


def charts(report: Report) -> dict[str, alt.TopLevelMixin]:
    """The report's charts by name, built from its small aggregated frames.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, charts
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> sorted(charts(build_report(empty_events().lazy(), w)))
    ['findings', 'status', 'timeline']
    """
    from kaudit_analytics import charts as _charts  # altair: imported only to draw

    counts = report.status_counts()
    return {
        "status": _charts.report_status_chart(
            pl.DataFrame({"status": list(counts), "controls": list(counts.values())})
        ),
        "findings": _charts.report_findings_chart(_control_frame(report)),
        "timeline": _charts.report_timeline_chart(report.daily),
    }


def chart_specs(report: Report) -> dict[str, dict[str, Any]]:
    """The charts as Vega-Lite specs, in the project's ``kaudit`` theme (what the HTML embeds).

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, chart_specs
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> chart_specs(build_report(empty_events().lazy(), w))["status"]["mark"]["type"]
    'bar'
    """
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it

    from kaudit_analytics import charts as _charts  # registers the "kaudit" theme

    del _charts
    with alt.theme.enable("kaudit"):
        return {name: chart.to_dict() for name, chart in charts(report).items()}


# --------------------------------------------------------------------------- JSON


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _count(value: int) -> str:
    """A count as people read it (``20,000``); the JSON summary keeps the number."""
    return f"{value:,}"


def summary(report: Report) -> dict[str, Any]:
    """The machine-readable summary (what ``to_json`` writes)."""
    return {
        "title": report.title,
        "window": {"since": _iso(report.window.since), "until": _iso(report.window.until)},
        "previous_window": {
            "since": _iso(report.previous_window.since),
            "until": _iso(report.previous_window.until),
        },
        "clusters": list(report.clusters),
        "events": report.events,
        "previous_events": report.previous_events,
        "policy": report.policy_name,
        "settings_file": report.settings_name,
        "settings": dict(settings_rows(report.settings)),
        "errors": dict(report.errors),
        "status_counts": report.status_counts(),
        "findings_by_severity": report.findings_by_severity(),
        "controls": [
            {
                "id": row.control.id,
                "title": row.control.title,
                "severity": row.control.severity,
                "status": row.result.status,
                "findings": row.result.findings,
                "reason": row.result.reason,
                "previous_status": row.previous.status,
                "previous_findings": row.previous.findings,
                "trend": row.trend,
                "level": row.control.level,
                "clauses": [str(clause) for clause in row.control.clauses],
                "attack": list(row.control.attack),
                "tactics": list(row.control.tactics),
                "excludes": row.control.excludes,
            }
            for row in report.rows
        ],
        "tactics": tactic_table(report).to_dicts(),
        "coverage": [dataclasses.asdict(row) for row in report.coverage],
    }


def to_json(report: Report) -> str:
    """The summary as indented JSON with sorted keys (stable across runs).

    Examples
    --------
    >>> import datetime as dt, json
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, to_json
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> doc = json.loads(to_json(build_report(empty_events().lazy(), w)))
    >>> doc["window"]
    {'since': '2026-11-26T00:00:00Z', 'until': '2026-11-27T00:00:00Z'}
    """
    return json.dumps(summary(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- Markdown


def _md(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _evidence_rows(report: Report, control_id: str) -> tuple[list[dict[str, Any]], int]:
    rows = report.evidence.filter(pl.col("control") == control_id)
    # A missing value shows as an empty cell, never as Python's "None".
    shown = rows.head(SHOWN_EVIDENCE).with_columns(
        pl.col("when").dt.strftime("%Y-%m-%d %H:%M:%S%.6fZ"),
        pl.col(pl.String).fill_null(""),
        pl.col("source_line").cast(pl.String).fill_null(""),
    )
    return shown.to_dicts(), rows.height


def to_markdown(report: Report) -> str:
    """The report as Markdown: summary, control table, findings, coverage.

    Examples
    --------
    >>> import datetime as dt
    >>> from kaudit_analytics.compliance import Window
    >>> from kaudit_analytics.report import build_report, to_markdown
    >>> from kaudit_analytics.schema import empty_events
    >>> end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    >>> w = Window(end - dt.timedelta(days=1), end)
    >>> to_markdown(build_report(empty_events().lazy(), w)).splitlines()[0]
    '# Kubernetes audit compliance report'
    """
    out = [f"# {_md(report.title)}", ""]
    out += [
        f"- Window: {_iso(report.window.since)} to {_iso(report.window.until)} "
        f"(previous: {_iso(report.previous_window.since)} to {_iso(report.previous_window.until)})",
        f"- Clusters: {_md(', '.join(report.clusters)) or 'none'}",
        f"- Events: {_count(report.events)} (previous window: {_count(report.previous_events)})",
        f"- Audit policy: {_md(report.policy_name) if report.policy_name else 'not given'}",
        f"- Settings: {_md(report.settings_name) if report.settings_name else 'defaults'} "
        "(values below)",
        "- Controls: "
        + ", ".join(f"{count} {status}" for status, count in report.status_counts().items()),
        "",
        "## Controls",
        "",
        "| Control | Severity | Result | Findings | Previous | Trend | ATT&CK | Frameworks |",
        "|---|---|---|---:|---:|---|---|---|",
    ]
    out += [
        f"| {_md(row.control.title)} (`{row.control.id}`) | {row.control.severity} | "
        f"{row.result.status} | {_count(row.result.findings)} | {_count(row.previous.findings)} | "
        f"{row.trend} | "
        f"{row.attack} | {_md(row.frameworks)} |"
        for row in report.rows
    ]
    if report.errors:
        out += ["", "## Controls that could not run", ""]
        out += [f"- **{cid}**: {_md(error)}" for cid, error in sorted(report.errors.items())]
    out += ["", "## Results", ""]
    out += [
        f"- **{row.control.id}** ({row.result.status}): {_md(row.result.reason)}. "
        f"Leaves out: {_md(row.control.excludes)}."
        for row in report.rows
    ]
    out += ["", "## By ATT&CK tactic", "", "| Tactic | Controls | Failing | Findings |"]
    out += ["|---|---:|---:|---:|"]
    out += [
        f"| {r['tactic']} | {r['controls']} | {r['failing']} | {r['findings']} |"
        for r in tactic_table(report).to_dicts()
    ]
    for row in report.rows:
        if row.result.status != "fail":
            continue
        shown, total = _evidence_rows(report, row.control.id)
        out += [
            "",
            f"## Findings: {_md(row.control.title)} ({_count(total)}, {row.control.severity})",
            "",
        ]
        out += [_md(row.control.detects), ""]
        out += [
            "| When | Cluster | Who | What | Where | Outcome | Detail | Source |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['when']} | {_md(r['cluster'])} | {_md(r['who'])} | {_md(r['what'])} | "
            f"{_md(r['where'])} | {_md(r['outcome'])} | {_md(r['detail'])} | "
            f"{_md(r['source_file'])}:{r['source_line']} |"
            for r in shown
        ]
        if total > len(shown):
            out += ["", f"{_count(total - len(shown))} more in evidence.csv / evidence.parquet."]
    if report.coverage:
        out += ["", f"## Policy coverage ({_md(report.policy_name)})", ""]
        out += ["| Control | Support | Reason |", "|---|---|---|"]
        out += [
            f"| `{row.control}` | {row.support} | {_md(row.reason)} |" for row in report.coverage
        ]
    out += ["", "## Settings this report ran with", "", "| Setting | Value |", "|---|---|"]
    out += [f"| `{name}` | {_md(value)} |" for name, value in settings_rows(report.settings)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML


def _asset(name: str) -> str:
    return resources.files("kaudit_analytics.report").joinpath("templates", name).read_text("utf-8")


@cache
def _vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one inline script, from vl-convert (no network)."""
    import altair as alt  # here, not at the top: 1.5 s to import, and only charts need it
    import vl_convert

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    # The stub marks ``snippet`` required; at run time it defaults to exporting vegaEmbed.
    bundle = vl_convert.javascript_bundle(vl_version=major_minor)  # type: ignore[call-arg]
    return bundle.replace("</script", "<\\/script")


def _script_json(value: object) -> str:
    # JSON that cannot end the <script> element or open a comment: "<", ">" and "&" become
    # \u escapes, which mean the same characters to JSON.parse.
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    env.filters["iso"] = _iso
    env.filters["count"] = _count
    return env


def to_html(report: Report, *, vega_bundle: str | None = None) -> str:
    """One self-contained HTML page: styles, chart specs and Vega inline; no network.

    Parameters
    ----------
    report
        The report.
    vega_bundle
        The JavaScript that defines ``vegaEmbed``; default: vl-convert's bundle for the
        installed altair's Vega-Lite version.
    """
    bundle = _vega_bundle() if vega_bundle is None else vega_bundle
    specs = chart_specs(report)
    failing = []
    for row in report.rows:
        if row.result.status == "fail":
            shown, total = _evidence_rows(report, row.control.id)
            failing.append({"row": row, "evidence": shown, "total": total})
    template = _environment().from_string(_asset("report.html.j2"))
    return template.render(
        report=report,
        rows=report.rows,
        tactics=tactic_table(report).to_dicts(),
        settings=settings_rows(report.settings),
        errors=sorted(report.errors.items()),
        failing=failing,
        counts=report.status_counts(),
        severities=report.findings_by_severity(),
        # Trusted, not user text: our stylesheet, the vl-convert bundle, and JSON whose "</"
        # is escaped; everything that comes from events goes through autoescaping.
        css=Markup(_asset("report.css")),  # noqa: S704
        bundle=Markup(bundle),  # noqa: S704
        bundle_sha256=hashlib.sha256(bundle.encode()).hexdigest(),
        specs=Markup(_script_json(specs)),  # noqa: S704
        chart_names=list(specs),
    )


# --------------------------------------------------------------------------- files


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The chosen renderings, each once, or ``ReportError`` naming the first unknown one.

    Examples
    --------
    >>> check_formats(["html", " md", "html"])
    ('html', 'md')
    """
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        msg = f"unknown format {unknown[0]!r}: choose from {', '.join(FORMATS)}"
        raise ReportError(msg)
    return chosen


def write_report(
    report: Report, out: str | os.PathLike[str], formats: Iterable[str] = FORMATS
) -> tuple[Path, ...]:
    """Write the chosen renderings plus ``evidence.parquet`` and ``evidence.csv`` into ``out``.

    Returns the paths written, in a fixed order.

    Raises
    ------
    ReportError
        When a format is unknown or ``out`` cannot be created.
    """
    chosen = check_formats(formats)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the output folder {folder}: {error.strerror}"
        raise ReportError(msg) from None
    renderers = {
        "html": ("report.html", to_html),
        "md": ("report.md", to_markdown),
        "json": ("summary.json", to_json),
    }
    written = []
    for name in chosen:
        filename, render = renderers[name]
        path = folder / filename
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    parquet, csv = folder / "evidence.parquet", folder / "evidence.csv"
    report.evidence.write_parquet(parquet, compression="zstd", statistics=False)
    report.evidence.with_columns(pl.col("when").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(
        csv
    )
    return (*written, parquet, csv)
