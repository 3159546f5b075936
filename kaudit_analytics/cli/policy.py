"""``kaudit policy``: catalog, lint, simulate, compare, diff and suggest audit policies.

Every command that reads a lake takes the same window (``--cluster``, ``--since``,
``--until``) and refuses to mix clusters logged under different policies unless
``--mixed-policies`` is given; every rate is printed with the span it is extrapolated from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl

from kaudit_analytics import lake as _lake
from kaudit_analytics import policy as _policy
from kaudit_analytics.cli._options import engine_options, json_option, lake_option
from kaudit_analytics.cli._output import (
    bytes_text,
    echo_json,
    number,
    show,
    show_totals,
    working,
)
from kaudit_analytics.lake import LakeError
from kaudit_analytics.window import parse_window

F = TypeVar("F", bound=Callable[..., Any])


_DURATION = re.compile(r"^\s*\d+\s*[smhdw]\s*$")

_POLICY_HELP = "A policy file, or a bundled one (see 'kaudit policy catalog')."


@contextmanager
def _user_errors() -> Iterator[None]:
    """Library errors a user can cause end as one sentence, not a traceback; warnings are
    printed once each, on stderr."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", _policy.PolicyWarning)
            yield
        for message in dict.fromkeys(str(w.message) for w in caught):
            click.echo(f"warning: {message}", err=True)
    except (ValueError, OSError, LakeError) as err:
        raise click.ClickException(str(err).splitlines()[0]) from err


@dataclasses.dataclass(frozen=True)
class _Window:
    """What ``--cluster``, ``--since``, ``--until`` and ``--mixed-policies`` ask for."""

    cluster: tuple[str, ...]
    since: str | None
    until: str | None
    mixed: bool

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """``[since, until)``; an end not given is the lake's own (not the clock's), unless
        ``since`` is a duration, which counts back from ``until`` or now."""
        now = dt.datetime.now(dt.UTC)
        until = parse_window("1970-01-01", self.until, now=now).until if self.until else None
        if not self.since:
            return None, until
        if until is None and not _DURATION.match(self.since):
            return parse_window(self.since, "9999-12-31", now=now).since, None
        window = parse_window(self.since, self.until, now=now)
        return window.since, window.until

    def events(self, lake: str) -> pl.LazyFrame:
        """The lake's events in the window, checked fit to replay (``checked_traffic``)."""
        _lake.require_lake(lake)  # one sentence when there is no lake there
        since, until = self.bounds()
        cluster = list(self.cluster) or None
        events = _lake.scan(lake, cluster=cluster, since=since, until=until)
        if events.select(pl.len()).collect().item() == 0:
            held = _policy.observed_span(_lake.scan(lake, cluster=cluster))
            holds = (
                f"it holds {held.start:%Y-%m-%d %H:%M}Z to {held.end:%Y-%m-%d %H:%M}Z"
                if held.start is not None and held.end is not None
                else "it holds no events"
            )
            where = f" of cluster {', '.join(self.cluster)}" if self.cluster else ""
            msg = f"no events{where} in the window in {lake}: {holds}"
            raise click.ClickException(msg)
        return _policy.checked_traffic(events, mixed_policies=self.mixed)


def _window_options(command: F) -> F:
    """``--cluster``, ``--since``, ``--until`` and ``--mixed-policies``."""
    options = [
        click.option(
            "--cluster", multiple=True, help="Only this cluster of the lake (repeatable)."
        ),
        click.option(
            "--since",
            help="Start of the window: a date, a timestamp (UTC) or a duration back from "
            "--until (7d, 24h) [the lake's first event].",
        ),
        click.option(
            "--until",
            help="End of the window (exclusive): a date, a timestamp or a duration back from "
            "now [the lake's last event].",
        ),
        click.option(
            "--mixed-policies",
            "mixed",
            is_flag=True,
            help="Replay clusters whose logs say they were written under different audit "
            "policies as one traffic (refused otherwise).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_RETENTION_OPTIONS = (
    click.option("--price", default="cloudwatch", show_default=True,
                 help="Price list for the cost: a bundled name (" + ", ".join(_policy.PRICES)
                 + "; sources in docs/prices.md) or a CSV/YAML price file of your own."),
    click.option("--maxsize", default=100, show_default=True,
                 help="The apiserver's --audit-log-maxsize (MB): when a log file rotates."),
    click.option("--maxbackup", default=10, show_default=True,
                 help="The apiserver's --audit-log-maxbackup: rotated files kept (0: all)."),
    click.option("--maxage", default=0, show_default=True,
                 help="The apiserver's --audit-log-maxage (days): older files deleted (0: never)."),
)  # fmt: skip


def _retention_options(command: F) -> F:
    for option in reversed(_RETENTION_OPTIONS):
        command = option(command)
    return command


def _span_line(span: _policy.Span) -> None:
    click.echo(f"rates: {span.describe()}")


@click.group("policy")
def policy_group() -> None:
    """Audit policies: lint, simulate on a lake, compare, diff, suggest a quieter one."""


@policy_group.command("catalog")
@json_option("The bundled policies as JSON.")
def catalog_command(as_json: bool) -> None:
    """List the bundled policies (use a name wherever a policy is asked for)."""
    show(_policy.catalog_frame(), as_json=as_json)


@policy_group.command("lint")
@click.argument("policy")
@json_option("Findings as JSON (an empty list when there are none).")
def lint_command(policy: str, as_json: bool) -> None:
    """Check POLICY; exit 1 on an error (for CI). POLICY: a file or a bundled name."""
    with _user_errors():
        findings = _policy.lint_frame({policy: _policy.policy_from(policy)}).drop("policy")
    show(findings, as_json=as_json, empty="no findings")
    if (findings["severity"] == "error").any():
        raise SystemExit(1)


def _estimate(
    candidate: _policy.Policy,
    observed: _policy.Policy | None,
    lake: str,
    window: _Window,
    engine: str,
    master: str,
) -> _policy.VolumeEstimate:
    """The estimate on polars or on Spark."""
    if engine == "spark":
        from kaudit_analytics import spark as _spark

        since, until = window.bounds()
        try:
            session = _spark.session(master, app_name="kaudit policy simulate")
            events = _spark.scan(
                session, lake, cluster=list(window.cluster) or None, since=since, until=until
            )
        except _spark.SparkUnavailableError as err:
            raise click.ClickException(str(err)) from err
        if Path(lake).is_dir():
            window.events(lake)  # the same checks as on polars (local lakes)
        return _spark.estimate_volume(events, candidate, observed_policy=observed)
    return candidate.estimate_volume(window.events(lake), observed_policy=observed)


@policy_group.command("simulate")
@click.argument("policy")
@lake_option(spark=True)
@click.option("--observed", help="The policy the lake was logged under (names what it missed).")
@click.option("--by", type=click.Choice(["rule", "day"]), default="rule", show_default=True,
              help="Break the estimate down per rule × level × stage, or per day.")  # fmt: skip
@_window_options
@_retention_options
@engine_options
@json_option("Totals, the breakdown and the notes as JSON.")
def simulate_command(
    policy: str, lake: str, observed: str | None, by: str, cluster: tuple[str, ...],
    since: str | None, until: str | None, mixed: bool, price: str, maxsize: int,
    maxbackup: int, maxage: int, engine: str, master: str, as_json: bool,
) -> None:  # fmt: skip
    """What POLICY would write for the traffic in the lake: events, bytes, retention, cost."""
    with _user_errors():
        rate = _policy.price(price)
        candidate, before = (
            _policy.policy_from(policy),
            _policy.policy_from(observed) if observed else None,
        )
        window = _Window(cluster, since, until, mixed)
        with working(f"Replaying the traffic under {policy}…"):
            est = _estimate(candidate, before, lake, window, engine, master)
        cost = _policy.costs(
            est.bytes, est.span.hours, _policy.Retention(maxsize, maxbackup, maxage), rate
        )
    table = est.by_rule if by == "rule" else est.by_day
    names = ("events", "bytes", "exact_bytes", "modelled_bytes", "observed_events",
             "observed_bytes", "delta_events", "delta_bytes")  # fmt: skip
    totals: dict[str, Any] = {k: getattr(est, k) for k in names} | dataclasses.asdict(cost)
    span = {"observed_seconds": est.span.seconds, "extrapolated": est.span.extrapolated,
            "span": est.span.describe()}  # fmt: skip
    if as_json:
        extra = {"never_logged": est.never_logged, "notes": est.notes, by: table.to_dicts()}
        echo_json({**totals, **span, **extra})
        return
    # The columns that fit a terminal; --json has them all.
    show(table.select(pl.exclude("exact_bytes", "synthesized_events")))
    shown = {k: bytes_text(v) if "bytes" in k else v for k, v in totals.items()}
    shown["gb_per_day"] = number(cost.gb_per_day)
    shown["usd_per_month"] = f"${cost.usd_per_month:,.2f}"
    show_totals(shown)
    _span_line(est.span)
    for note in est.notes:
        click.echo(f"note: {note}")
    if est.never_logged:
        click.echo(f"never logged by the observed policy: {', '.join(est.never_logged)}")


@policy_group.command("compare")
@click.argument("policies", nargs=-1, required=True)
@lake_option()
@_window_options
@_retention_options
@json_option("One object per policy (and the span) as JSON.")
def compare_command(
    policies: tuple[str, ...], lake: str, cluster: tuple[str, ...], since: str | None,
    until: str | None, mixed: bool, price: str, maxsize: int, maxbackup: int, maxage: int,
    as_json: bool,
) -> None:  # fmt: skip
    """POLICIES side by side on the same traffic: events, bytes, retention, cost."""
    with _user_errors():
        rate = _policy.price(price)
        loaded = {p: _policy.policy_from(p) for p in policies}
        events = _Window(cluster, since, until, mixed).events(lake)
        retention = _policy.Retention(maxsize, maxbackup, maxage)
        with working(f"Replaying the traffic under {len(loaded)} policies…"):
            table = _policy.compare(loaded, events, retention=retention, price=rate)
    if as_json:
        show(table, as_json=True)
        return
    shown = table.select(
        "policy", "events", "bytes", "delta_bytes", "modelled_bytes", "gb_per_day",
        "retention_hours", pl.col("usd_per_month").round(2),
    )  # fmt: skip
    show(shown)
    _span_line(_policy.observed_span(events))


@policy_group.command("diff")
@click.argument("old")
@click.argument("new")
@lake_option()
@_window_options
@click.option("--top", default=30, show_default=True, help="Rows to show (biggest change first).")
@json_option("The changed traffic as JSON.")
def diff_command(
    old: str, new: str, lake: str, cluster: tuple[str, ...], since: str | None,
    until: str | None, mixed: bool, top: int, as_json: bool,
) -> None:  # fmt: skip
    """Traffic whose level, events or bytes change from OLD to NEW (policies: files or names)."""
    with _user_errors():
        events = _Window(cluster, since, until, mixed).events(lake)
        with working(f"Replaying the traffic under {old} and {new}…"):
            table = _policy.diff(_policy.policy_from(old), _policy.policy_from(new), events).head(
                top
            )
    show(table, as_json=as_json, empty="no traffic changes")


@policy_group.command("suggest")
@lake_option()
@click.option("--base", help="Policy to start from: a file or a bundled name [cis-minimal].")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the tuned policy here.")
@click.option("--top", default=50, show_default=True,
              help="Noisiest traffic groups (actor kind, verb, target) to consider.")  # fmt: skip
@click.option("--controls/--no-controls", default=True, show_default=True,
              help="Keep every compliance control the base supports assessable.")  # fmt: skip
@_window_options
@json_option("The policy, the tables and the totals as JSON.")
def suggest_command(
    lake: str, base: str | None, out: str | None, top: int, controls: bool,
    cluster: tuple[str, ...], since: str | None, until: str | None, mixed: bool, as_json: bool,
) -> None:  # fmt: skip
    """Rank the noisiest traffic and write a quieter policy that still passes lint.

    Without --out the policy goes to stdout alone (``> tuned.yaml``) and the tables to stderr.
    """
    with _user_errors():
        from kaudit_analytics.compliance import CONTROLS

        events = _Window(cluster, since, until, mixed).events(lake)
        with working("Ranking the traffic and replaying the suggestion…"):
            found = _policy.suggest(
                events,
                base=_policy.policy_from(base) if base else None,
                top=top,
                requirements=CONTROLS if controls else (),
            )
    if out:
        Path(out).write_text(found.yaml, encoding="utf-8")
    totals = {
        "events_before": found.before.events,
        "bytes_before": found.before.bytes,
        "events_after": found.after.events,
        "bytes_after": found.after.bytes,
        "saved_share": round(found.saved_share, 4),
    }
    if as_json:
        echo_json(
            {
                "policy": found.yaml,
                **totals,
                "span": found.before.span.describe(),
                "fixes": found.fixes,
                "kept_controls": found.kept,
                "noisiest": found.noisiest.to_dicts(),
                "rules": found.rules.to_dicts(),
            }
        )
        return
    err = out is None
    noisiest = found.noisiest.with_columns(
        pl.format("{}%", (pl.col("share") * 100).round(1)).alias("share")
    ).drop("why", "top_user")
    show(noisiest, title="Noisiest traffic under the base", err=err)
    show(found.rules.drop("why"), title="Rules: before and after", err=err)
    for fix in found.fixes:
        click.echo(f"fixed in the base: {fix}", err=err)
    show_totals(
        {
            "before": f"{found.before.events:,} events, {bytes_text(found.before.bytes)}",
            "after": f"{found.after.events:,} events, {bytes_text(found.after.bytes)}",
            "saved": f"{found.saved_share:.1%} of the bytes",
            "controls kept": len(found.kept),
        },
        err=err,
    )
    click.echo(f"rates: {found.before.span.describe()}", err=err)
    if out is None:
        click.echo(found.yaml, nl=False)
    else:
        click.echo(f"wrote {out}")
