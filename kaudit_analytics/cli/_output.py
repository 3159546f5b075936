"""How every command prints: one number format, terminal tables that never wrap mid-word, JSON.

Tables go through rich (columns shrink and fold at word boundaries to fit the terminal; plain
text when the output is not a terminal), numbers through ``number`` (``1,996``; ``0.12``), and
``--json`` prints the same rows as a JSON list. Commands call ``show`` and never format a
frame themselves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the commands hand frames in; printing them needs no polars import here
    import polars as pl

__all__ = [
    "bytes_text",
    "echo_json",
    "number",
    "percent",
    "progress_bar",
    "show",
    "show_totals",
    "working",
]

#: What a missing value prints as in a table.
MISSING = "-"
#: The width of a table printed to a pipe or a file: wide enough that no cell wraps.
_PIPE_WIDTH = 4096


def number(value: float | None, *, digits: int = 2) -> str:
    """One format for every count and measure: thousands separators, ``digits`` decimals.

    Examples
    --------
    >>> number(1996), number(1234.5678), number(0.0004), number(None)
    ('1,996', '1,234.57', '0.0004', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.{digits}g}"  # a small rate keeps its significant digits
    return f"{value:,.{digits}f}"


def bytes_text(value: float | None) -> str:
    """A byte count for people: ``1.5 MB`` (decimal units, as the cloud price lists use).

    Examples
    --------
    >>> bytes_text(999), bytes_text(1_500_000), bytes_text(2.5e9)
    ('999 B', '1.5 MB', '2.5 GB')
    """
    if value is None:
        return MISSING
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{int(value)} B"


def percent(value: float | None) -> str:
    """A share for people: ``12.5 %`` (one decimal; below 0.1 % it says so).

    Examples
    --------
    >>> percent(0.125), percent(0.0004), percent(1), percent(None)
    ('12.5 %', '<0.1 %', '100.0 %', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if 0 < value < 0.001:
        return "<0.1 %"
    return f"{value * 100:.1f} %"


@contextlib.contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner with ``message`` on standard error while a long step runs, on a terminal only.

    Scripts and pipes get nothing, so ``--json`` output stays clean.
    """
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message, spinner="dots"):
        yield


@contextlib.contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per stage on standard error, fed ``(stage, done, total)``; on a
    terminal only, and gone when the work is done (scripts and pipes get nothing)."""
    if not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slices"),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(f"Assessing the {stage}", total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _cell(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, decimal.Decimal):  # SQL sums of integers come back as decimals
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(item) for item in value)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)  # dates, durations, and anything else JSON has no type for


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON (datetimes in ISO 8601, UTC as ``Z``)."""
    click.echo(json.dumps(value, default=_jsonable, indent=2, ensure_ascii=False))


def show(
    frame: pl.DataFrame,
    *,
    as_json: bool = False,
    title: str | None = None,
    empty: str = "(none)",
    err: bool = False,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """Print a frame as a table (or, with ``as_json``, as a JSON list of rows).

    Numbers are right-aligned and formatted with ``number``, or with ``formats[column]``
    (``bytes_text``, ``percent``) where given; JSON keeps the raw values. An empty frame
    prints ``empty`` instead of a header with no rows.
    """
    if as_json:
        echo_json(frame.to_dicts())
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=err, soft_wrap=False, highlight=False)
    if not console.is_terminal:
        # A pipe or a file has no width to fit: print each row on one line, for grep and diff.
        console = Console(stderr=err, soft_wrap=False, highlight=False, width=_PIPE_WIDTH)
    if frame.is_empty():
        console.print(f"{title}: {empty}" if title else empty)
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    cells = [(formats or {}).get(name, _cell) for name in frame.columns]
    rows = [
        [cell(value) for cell, value in zip(cells, row, strict=True)] for row in frame.iter_rows()
    ]
    for index, (name, dtype) in enumerate(frame.schema.items()):
        numeric = dtype.is_numeric()
        # A number is never cut, and a text column never shrinks below a short word: the
        # text columns fold at word boundaries to make room.
        widest = max((len(row[index]) for row in rows), default=0)
        table.add_column(
            name,
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=numeric,
            min_width=widest if numeric else min(widest, 10),
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)


def show_totals(totals: Mapping[str, Any], *, order: Sequence[str] = (), err: bool = False) -> None:
    """Print ``name: value`` lines, numbers in the one format, aligned on the colon."""
    names = [*order, *(name for name in totals if name not in order)]
    width = max((len(name) for name in names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {_cell(totals[name])}", err=err)
