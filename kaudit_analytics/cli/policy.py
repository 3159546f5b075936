"""``kaudit policy``: lint, simulate, compare, diff and suggest audit policies."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import polars as pl

from kaudit_analytics import lake as _lake
from kaudit_analytics import policy as _policy
from kaudit_analytics.cli._options import engine_options, json_option, lake_option

_POLICY_HELP = "A policy file, or a bundled one: " + ", ".join(_policy.CATALOG) + "."


@contextmanager
def _user_errors() -> Iterator[None]:
    """Library errors a user can cause end as one sentence, not a traceback."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", _policy.PolicyWarning)
            yield
        for warning in caught:
            click.echo(f"warning: {warning.message}", err=True)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err).splitlines()[0]) from err


def _load(source: str) -> _policy.Policy:
    name = source.removeprefix("catalog:")
    if name in _policy.CATALOG and not Path(source).exists():
        return _policy.catalog_policy(name)
    return _policy.load_policy(Path(source))


def _events(lake: str) -> pl.LazyFrame:
    if not _lake.is_lake(lake):
        msg = f"{lake} is not a kaudit lake (no events folder); run 'kaudit ingest' first"
        raise click.ClickException(msg)
    return _lake.scan(lake)


def _echo(frame: pl.DataFrame, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(frame.to_dicts(), default=str, indent=2))
        return
    with pl.Config(
        tbl_rows=200,
        tbl_cols=20,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        fmt_str_lengths=200,
        tbl_width_chars=200,
    ):
        click.echo(str(frame))


def _json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2)


@click.group("policy")
def policy_group() -> None:
    """Audit policies: lint, simulate on a lake, compare, diff, suggest a quieter one."""


@policy_group.command("lint", help="Check POLICY; exit 1 on an error (for CI). " + _POLICY_HELP)
@click.argument("policy")
@json_option("Findings as JSON.")
def lint_command(policy: str, as_json: bool) -> None:
    with _user_errors():
        findings = _policy.lint_frame({policy: _load(policy)}).drop("policy")
    _echo(findings, as_json)
    if (findings["severity"] == "error").any():
        sys.exit(1)


_RETENTION_OPTIONS = (
    click.option("--price", type=click.Choice(sorted(_policy.PRICES)), default="cloudwatch",
                 show_default=True, help="Price list for the cost (see the docs' assumptions)."),
    click.option("--maxsize", default=100, show_default=True, help="--audit-log-maxsize (MB)."),
    click.option("--maxbackup", default=10, show_default=True, help="--audit-log-maxbackup."),
    click.option("--maxage", default=0, show_default=True, help="--audit-log-maxage (days)."),
)  # fmt: skip


def _retention_options(command: Any) -> Any:
    for option in reversed(_RETENTION_OPTIONS):
        command = option(command)
    return command


def _estimate(
    policy: _policy.Policy, observed: _policy.Policy | None, lake: str, engine: str, master: str
) -> tuple[_policy.VolumeEstimate, float]:
    """The estimate and the hours the traffic spans, on polars or on Spark."""
    if engine == "spark":
        from kaudit_analytics import spark as _spark

        try:
            events = _spark.scan(_spark.session(master, app_name="kaudit policy simulate"), lake)
        except _spark.SparkUnavailableError as err:
            raise click.ClickException(str(err)) from err
        est = _spark.estimate_volume(events, policy, observed_policy=observed)
        return est, _spark.observed_hours(events)
    frame = _events(lake)
    return policy.estimate_volume(frame, observed_policy=observed), _policy.observed_hours(frame)


@policy_group.command("simulate")
@click.argument("policy")
@lake_option(spark=True)
@click.option("--observed", help="The policy the traffic was logged under (for the lower bound).")
@click.option("--by", type=click.Choice(["rule", "day"]), default="rule", show_default=True,
              help="Break the estimate down per policy rule or per day.")  # fmt: skip
@_retention_options
@engine_options
@json_option("Totals and table as JSON.")
def simulate_command(
    policy: str, lake: str, observed: str | None, by: str, price: str, maxsize: int,
    maxbackup: int, maxage: int, engine: str, master: str, as_json: bool,
) -> None:  # fmt: skip
    """What POLICY would write for the traffic in the lake: events, bytes, retention, cost."""
    with _user_errors():
        candidate, before = _load(policy), _load(observed) if observed else None
        est, hours = _estimate(candidate, before, lake, engine, master)
        cost = _policy.costs(
            est.bytes, hours, _policy.Retention(maxsize, maxbackup, maxage), _policy.PRICES[price]
        )
    table = est.by_rule if by == "rule" else est.by_day
    names = ("events", "bytes", "exact_bytes", "modelled_bytes", "observed_events",
             "observed_bytes", "delta_events", "delta_bytes")  # fmt: skip
    totals = {**{k: getattr(est, k) for k in names}, **dataclasses.asdict(cost)}
    if as_json:
        extra = {"never_logged": est.never_logged, "notes": est.notes, by: table.to_dicts()}
        click.echo(_json({**totals, **extra}))
        return
    _echo(table, as_json=False)
    click.echo(
        " ".join(
            f"{k}={v:,.2f}" if isinstance(v, float) else f"{k}={v:,}" for k, v in totals.items()
        )
    )
    for note in est.notes:
        click.echo(f"note: {note}")


@policy_group.command("compare")
@click.argument("policies", nargs=-1, required=True)
@lake_option()
@_retention_options
@json_option()
def compare_command(
    policies: tuple[str, ...],
    lake: str,
    price: str,
    maxsize: int,
    maxbackup: int,
    maxage: int,
    as_json: bool,
) -> None:
    """POLICIES side by side on the same traffic: events, bytes, retention, cost."""
    with _user_errors():
        loaded = {p: _load(p) for p in policies}
        table = _policy.compare(
            loaded,
            _events(lake),
            retention=_policy.Retention(maxsize, maxbackup, maxage),
            price=_policy.PRICES[price],
        )
    _echo(table, as_json)


@policy_group.command("diff")
@click.argument("old")
@click.argument("new")
@lake_option()
@click.option("--top", default=30, show_default=True, help="Rows to show.")
@json_option()
def diff_command(old: str, new: str, lake: str, top: int, as_json: bool) -> None:
    """Traffic whose level, events or bytes change from OLD to NEW."""
    with _user_errors():
        table = _policy.diff(_load(old), _load(new), _events(lake)).head(top).collect()
    _echo(table, as_json)


@policy_group.command("suggest")
@lake_option()
@click.option("--base", help="Policy to start from (default cis-minimal).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the tuned policy here.")
@click.option("--top", default=15, show_default=True, help="Noisy traffic groups to consider.")
@json_option()
def suggest_command(lake: str, base: str | None, out: str | None, top: int, as_json: bool) -> None:
    """Rank the noisiest traffic and write a quieter policy that still passes lint."""
    with _user_errors():
        found = _policy.suggest(_events(lake), base=_load(base) if base else None, top=top)
    if out:
        Path(out).write_text(found.yaml, encoding="utf-8")
    if as_json:
        click.echo(
            _json(
                {
                    "policy": found.yaml,
                    "before": {"events": found.before.events, "bytes": found.before.bytes},
                    "after": {"events": found.after.events, "bytes": found.after.bytes},
                    "noisiest": found.noisiest.to_dicts(),
                }
            )
        )
        return
    # Without --out the policy goes to stdout alone (``> tuned.yaml``), the summary to stderr.
    summary_err = out is None
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_formatting="ASCII_MARKDOWN"):
        click.echo(str(found.noisiest), err=summary_err)
    before, after = found.before, found.after
    click.echo(f"before: {before.events:,} events, {before.bytes:,} bytes", err=summary_err)
    click.echo(f"after:  {after.events:,} events, {after.bytes:,} bytes", err=summary_err)
    if out is None:
        click.echo(found.yaml, nl=False)
