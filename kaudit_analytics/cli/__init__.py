"""The ``kaudit`` command: a click group whose commands live one family per module.

Commands are imported when they run, not when ``kaudit`` starts: ``kaudit --help`` lists
them from the table below without importing any (so it loads neither polars nor pyarrow),
and ``kaudit ingest`` never pays for altair, jinja2 or pyspark, which only reports, charts
and Spark need. ``tests/cli/test_startup.py`` keeps the table's short help equal to each
command's own.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click

__all__ = ["main"]


class _Entry(NamedTuple):
    target: str  # "module:attribute" of the click command
    short_help: str  # what ``kaudit --help`` shows, without importing the module


#: Command name -> where it lives and its one-line help, in the order ``--help`` lists them.
_COMMANDS: dict[str, _Entry] = {
    "ingest": _Entry(
        "kaudit_analytics.cli.ingest:ingest_command",
        "Load audit logs (files, folders, globs, .gz, tarballs, s3:// gs:// az://) into a lake.",
    ),
    "describe": _Entry(
        "kaudit_analytics.cli.ingest:describe_command",
        "Show what a lake holds, per cluster: events, users, time span, files, bytes, quarantine.",
    ),
    "top": _Entry(
        "kaudit_analytics.cli.explore:top_command",
        "The busiest users, verbs, resources or namespaces of a window.",
    ),
    "timeline": _Entry(
        "kaudit_analytics.cli.explore:timeline_command",
        "One user's requests, oldest first, directly or by impersonation.",
    ),
    "history": _Entry(
        "kaudit_analytics.cli.explore:history_command",
        "One object's requests, oldest first, and what changed in it.",
    ),
    "sql": _Entry(
        "kaudit_analytics.cli.explore:sql_command",
        "Run SQL (DuckDB) over the lake's events, a view named events.",
    ),
    "lake": _Entry(
        "kaudit_analytics.cli.lake:lake_group",
        "The lake's table: compact files, apply retention, show its history, upgrade old lakes.",
    ),
    "quarantine": _Entry(
        "kaudit_analytics.cli.lake:quarantine_group",
        "Lines that could not be loaded: list them, show one, load them again after a fix.",
    ),
    "report": _Entry(
        "kaudit_analytics.cli.report:report_command",
        "Assess the compliance controls over a window and write the report and its evidence.",
    ),
    "policy": _Entry(
        "kaudit_analytics.cli.policy:policy_group",
        "Audit policies: lint, simulate on a lake, compare, diff, suggest a quieter one.",
    ),
    "demo": _Entry(
        "kaudit_analytics.cli.ingest:demo_command",
        "Load the bundled sample into a lake and show what it holds.",
    ),
    "generate": _Entry(
        "kaudit_analytics.cli.generate:generate_command",
        "Write a synthetic cluster's audit log (audit.k8s.io/v1 JSON lines, as the apiserver "
        "does).",
    ),
}


def _shorten(text: str, width: int) -> str:
    """``text`` cut at a word to fit ``width``, as click shortens a command's help."""
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)].rsplit(" ", 1)[0].rstrip(",;:") + "..."


class _LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, from the table: listing commands must not import them."""
        width = formatter.width - 6 - max(len(name) for name in _COMMANDS)
        rows = [(name, _shorten(entry.short_help, width)) for name, entry in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kaudit-analytics")
def main() -> None:
    """Turn Kubernetes audit logs into answers.

    \b
    First steps:
      kaudit demo                          load the bundled sample into build/demo-lake
      kaudit ingest LOGS... --lake LAKE    load your own audit logs
      kaudit describe --lake LAKE          what the lake holds
      kaudit top --lake LAKE               who and what is busiest
      kaudit report --lake LAKE --out DIR  the compliance report

    Every command that reads a lake takes --lake, or the KAUDIT_LAKE environment variable.
    """
