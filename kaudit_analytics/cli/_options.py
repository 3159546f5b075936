"""Options several commands share, defined once: the lake, the window, the engine, JSON output.

Nothing here imports the library at module level: ``kaudit CMD --help`` must not load polars.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

__all__ = [
    "LazyChoice",
    "cluster_filter_option",
    "engine_options",
    "json_option",
    "lake_option",
    "window_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The environment variable every ``--lake`` falls back to.
LAKE_ENVVAR = "KAUDIT_LAKE"


if TYPE_CHECKING:
    _Choice = click.Choice[str]
else:  # click.Choice is generic from click 8.4 only
    _Choice = click.Choice


class LazyChoice(_Choice):
    """A choice among a library constant's values, read only when the option is used.

    ``LazyChoice("kaudit_analytics.ingestion:FORMATS")`` lets a command declare its choices
    without importing the library when another command's ``--help`` imports its module.
    """

    def __init__(self, target: str, *, case_sensitive: bool = True) -> None:
        # No super().__init__: it would read the choices now. __getattr__ reads them later.
        self._target = target
        self.case_sensitive = case_sensitive

    def __getattr__(self, name: str) -> Any:
        if name != "choices":
            raise AttributeError(name)
        module, _, attribute = self._target.partition(":")
        self.choices = tuple(getattr(importlib.import_module(module), attribute))
        return self.choices


def lake_option(
    *, required: bool = True, default: str | None = None, spark: bool = False
) -> Callable[[F], F]:
    """``--lake``: the lake, a folder or an object-store URL, or ``$KAUDIT_LAKE``.

    One type for every command: a string, since a lake may be ``s3://``, ``gs://`` or
    ``az://`` (``s3a://`` where Spark reads it); whether it is a lake is for the library to say.
    """
    where = (
        "Lake folder or s3:// gs:// az:// URL (s3a:// with --engine spark)"
        if spark
        else "Lake folder or s3:// gs:// az:// URL"
    )
    return click.option(
        "--lake",
        required=required and default is None,
        default=default,
        envvar=LAKE_ENVVAR,
        show_envvar=True,
        show_default=default is not None,
        type=str,
        help=f"{where}, as made by kaudit ingest.",
    )


def cluster_filter_option(command: F) -> F:
    """``--cluster``: read only these clusters of the lake (repeatable); all by default."""
    option = click.option(
        "--cluster",
        "clusters",
        multiple=True,
        metavar="NAME",
        help="Only this cluster (repeatable); every cluster by default.",
    )
    return option(command)


def window_options(*, since: str | None = None) -> Callable[[F], F]:
    """``--since``/``--until``: the time window, ``[since, until)`` in UTC."""

    def decorate(command: F) -> F:
        command = click.option(
            "--until",
            metavar="WHEN",
            help="End of the window (exclusive): a date, a timestamp (UTC unless it says "
            "otherwise) or a duration back from now [default: now].",
        )(command)
        return click.option(
            "--since",
            metavar="WHEN",
            default=since,
            show_default=since is not None,
            help="Start of the window: a date (2024-09-11), a timestamp "
            "(2024-09-11T08:00:00Z) or a duration back from --until (7d, 24h, 30m)"
            + ("." if since else " [default: the lake's first event]."),
        )(command)

    return decorate


def engine_options(command: F) -> F:
    """``--engine`` (polars here, or Apache Spark) and ``--master`` (where Spark runs)."""
    command = click.option(
        "--master",
        default="local[*]",
        show_default=True,
        help="With --engine spark: the Spark master (local[N], spark://…, yarn, k8s://…).",
    )(command)
    return click.option(
        "--engine",
        type=click.Choice(["polars", "spark"]),
        default="polars",
        show_default=True,
        help="polars on this machine, or Apache Spark.",
    )(command)


def json_option(help_text: str = "Print JSON instead of a table.") -> Callable[[F], F]:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)
