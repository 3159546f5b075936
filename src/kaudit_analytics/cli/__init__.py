"""The ``kaudit`` command: a click group; each family of commands lives in its own module."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kaudit-analytics")
def main() -> None:
    """Turn Kubernetes audit logs into answers."""


# Command modules register themselves on ``main``; import them last so they can.
from kaudit_analytics.cli import generate as _generate  # noqa: E402, F401
from kaudit_analytics.cli import ingest as _ingest  # noqa: E402, F401
from kaudit_analytics.cli import policy as _policy  # noqa: E402, F401
from kaudit_analytics.cli import report as _report  # noqa: E402, F401
