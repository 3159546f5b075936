"""The ``kaudit`` command: a click group whose commands live one family per module.

Commands are imported when they run, not when ``kaudit`` starts: ``kaudit ingest`` never
pays for altair, jinja2 or pyspark, which only reports, charts and Spark need.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

#: Command name -> "module:attribute" of the click command, in the order ``--help`` lists them.
_COMMANDS: dict[str, str] = {
    "ingest": "kaudit_analytics.cli.ingest:ingest_command",
    "describe": "kaudit_analytics.cli.ingest:describe_command",
    "demo": "kaudit_analytics.cli.ingest:demo_command",
    "lake": "kaudit_analytics.cli.lake:lake_group",
    "quarantine": "kaudit_analytics.cli.lake:quarantine_group",
    "report": "kaudit_analytics.cli.report:report_command",
    "policy": "kaudit_analytics.cli.policy:policy_group",
    "generate": "kaudit_analytics.cli.generate:generate_command",
}


class _LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kaudit-analytics")
def main() -> None:
    """Turn Kubernetes audit logs into answers."""
