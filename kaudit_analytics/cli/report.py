"""``kaudit report``: compliance report over a window of the lake.

Exit codes, for cron and CI: 0 when no control at or above ``--fail-on`` failed, 1 when one
did, 2 when the report could not be made (bad option, missing lake, invalid policy or
settings, a window with no events) or when a control's query failed (the report of the
other controls is still written).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from pathlib import Path

import click

from kaudit_analytics import report as _report
from kaudit_analytics.cli._options import engine_options, lake_option
from kaudit_analytics.cli._output import number, progress_bar
from kaudit_analytics.compliance import (
    CONTROLS,
    SEVERITIES,
    SettingsError,
    Severity,
    load_settings,
)
from kaudit_analytics.compliance.sigma import load_rules as load_sigma_rules
from kaudit_analytics.lake import LakeError
from kaudit_analytics.policy import PolicyError
from kaudit_analytics.spark.session import SparkUnavailableError
from kaudit_analytics.window import WindowError


class _ReportFailed(click.ClickException):
    exit_code = _report.EXIT_ERROR


@click.command("report")
@lake_option(spark=True)
@click.option("--since", default="7d", show_default=True, help="Date, timestamp or duration.")
@click.option("--until", default=None, help="Date, timestamp or duration back from now [now].")
@click.option("--policy", type=click.Path(dir_okay=False), help="Audit policy: adds coverage.")
@click.option("--cluster", multiple=True, help="Only this cluster (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--format",
    "formats",
    default="html,md,json",
    show_default=True,
    help="Comma-separated renderings; evidence.parquet and evidence.csv are always written.",
)
@click.option("--fail-on", type=click.Choice(SEVERITIES), help="Exit 1 on findings this severe.")
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False),
    help="YAML file of allow-lists and thresholds (see docs/controls.md); the report prints "
    "the values it ran with.",
)
@click.option(
    "--sigma",
    "sigma_dirs",
    multiple=True,
    type=click.Path(),
    help="Folder (or file) of Sigma rules (logsource product kubernetes, service audit) to "
    "run next to the built-in controls (repeatable).",
)
@engine_options
def report_command(
    lake: str,
    since: str,
    until: str | None,
    policy: str | None,
    cluster: tuple[str, ...],
    out: str,
    formats: str,
    fail_on: Severity | None,
    settings_path: str | None,
    sigma_dirs: tuple[str, ...],
    engine: str,
    master: str,
) -> None:
    """Assess the compliance controls over a window and write the report and its evidence.

    Exit status: 0 when no control at or above --fail-on failed, 1 when one did, 2 when the
    report could not be made.
    """
    try:
        window = _report.parse_window(since, until, now=dt.datetime.now(dt.UTC))
        chosen = _report.check_formats(formats.split(","))
        settings = load_settings(Path(settings_path) if settings_path else None)
        sigma_rules = load_sigma_rules([Path(d) for d in sigma_dirs])
        with progress_bar() as progress:
            make = functools.partial(_report.report_from_lake, progress=progress)
            if engine == "spark":
                from kaudit_analytics import spark as _spark

                make = functools.partial(
                    _spark.report_from_lake, _spark.session(master, app_name="kaudit report")
                )
            result = make(
                lake,
                window,
                policy_path=policy,
                cluster=list(cluster) or None,
                settings=settings,
                settings_name=Path(settings_path).name if settings_path else None,
                controls=(*CONTROLS, *sigma_rules.controls),
            )
        if sigma_rules.problems:
            result = dataclasses.replace(result, sigma_problems=dict(sigma_rules.problems))
        written = _report.write_report(result, out, chosen)
    except (
        _report.ReportError,
        WindowError,
        LakeError,
        PolicyError,
        SettingsError,
        OSError,
        SparkUnavailableError,
    ) as error:
        raise _ReportFailed(str(error)) from None
    counts = ", ".join(f"{number(n)} {status}" for status, n in result.status_counts().items())
    click.echo(f"{len(result.rows)} controls over {number(result.events)} events: {counts}")
    click.echo("\n".join(str(path) for path in written))
    for file, problem in sorted(result.sigma_problems.items()):
        click.echo(f"Sigma rule {file} skipped: {problem}", err=True)
    if result.errors:
        names = ", ".join(sorted(result.errors))
        first = next(iter(sorted(result.errors.items())))
        click.echo(
            f"Error: {len(result.errors)} control(s) could not be assessed ({names}): "
            f"{first[1]}; the report of the others was written.",
            err=True,
        )
    click.get_current_context().exit(_report.exit_code(result, fail_on))
