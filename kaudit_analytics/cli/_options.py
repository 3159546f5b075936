"""Options several commands share, defined once: the lake, the engine, JSON output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["engine_options", "json_option", "lake_option"]

F = TypeVar("F", bound=Callable[..., Any])


def lake_option(
    *, required: bool = True, default: str | None = None, spark: bool = False
) -> Callable[[F], F]:
    """``--lake``: the lake, a folder or an object-store URL (``s3://``, ``gs://``, ``az://``)."""
    where = (
        "Lake folder or s3:// gs:// az:// URL (s3a:// with --engine spark)."
        if spark
        else ("Lake folder or s3:// gs:// az:// URL.")
    )
    return click.option(
        "--lake",
        required=required,
        default=default,
        show_default=default is not None,
        type=str,
        help=where,
    )


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
