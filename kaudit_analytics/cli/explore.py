"""``kaudit top``, ``timeline``, ``history`` and ``sql``: what people look for without a notebook.

Each command reads a window of the lake (``--lake``, ``--cluster``, ``--since``/``--until``),
calls one library function (``activity.busiest``, ``activity.actor_activity``,
``activity.object_history``, ``lake.connect``) and prints a table, or JSON with ``--json``.
The library is imported inside the commands, so that ``kaudit --help`` stays light.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kaudit_analytics.cli import _output
from kaudit_analytics.cli._options import (
    cluster_filter_option,
    json_option,
    lake_option,
    window_options,
)

if TYPE_CHECKING:
    import polars as pl

#: ``--by`` of ``kaudit top`` -> the ``activity.busiest`` dimension and the column's title.
_DIMENSIONS = {
    "user": "actor",
    "verb": "verb",
    "resource": "resource_key",
    "namespace": "namespace",
}
_MEASURES = ("requests", "events", "bytes")
_ROWS_HELP = "Rows to print (0: all) [default: {}]; {} every row."


def _clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Read:
    """The window of the lake a command reads, and how to say that it is empty."""

    def __init__(
        self, lake: str, clusters: tuple[str, ...], since: str | None, until: str | None
    ) -> None:
        from kaudit_analytics.lake import LakeError, require_lake
        from kaudit_analytics.window import WindowError, parse_bounds

        try:
            require_lake(lake)
            self.since, self.until = parse_bounds(since, until, now=_clock())
        except (LakeError, WindowError) as exc:
            raise click.ClickException(str(exc)) from exc
        self.lake = lake
        self.clusters = list(clusters) or None

    def events(self) -> pl.LazyFrame:
        from kaudit_analytics.lake import scan

        return scan(self.lake, cluster=self.clusters, since=self.since, until=self.until)

    def where(self) -> str:
        """``in LAKE (cluster a, b) between … and …``: what the command looked at."""
        text = f"in {self.lake}"
        if self.clusters:
            text += f" (cluster {', '.join(self.clusters)})"
        if self.since or self.until:
            text += f" between {_when(self.since) or 'the start'} and {_when(self.until) or 'now'}"
        return text

    def empty(self, what: str = "no events") -> click.ClickException:
        """The one-sentence error for an empty answer, with the lake's actual span."""
        from kaudit_analytics.lake import LakeError, span

        try:
            held = span(self.lake, cluster=self.clusters)
        except LakeError as exc:
            return click.ClickException(f"{what} {self.where()}: {exc}")
        return click.ClickException(
            f"{what} {self.where()}; the lake holds events from {_when(held.since)} "
            f"to {_when(held.until)}"
        )

    @contextlib.contextmanager
    def working(self, doing: str) -> Iterator[None]:
        with _output.working(f"{doing} {self.where()}…"):
            yield


def _when(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else None


def _did_you_mean(wanted: str, known: list[str]) -> str:
    close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _cut(frame: pl.DataFrame, rows: int, noun: str) -> pl.DataFrame:
    """The first ``rows`` rows (all with 0), saying on stderr how many were left out."""
    if rows and frame.height > rows:
        click.echo(
            f"showing the first {rows:,} of {frame.height:,} {noun}: narrow the window or "
            "raise --rows (0: all)",
            err=True,
        )
        return frame.head(rows)
    return frame


def _without_empty_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Leave out columns that are null throughout: a terminal has no room to spare."""
    return frame.select(name for name in frame.columns if frame[name].null_count() < frame.height)


# --------------------------------------------------------------------------- kaudit top


@click.command("top")
@lake_option()
@cluster_filter_option
@window_options()
@click.option(
    "--by",
    "dimensions",
    type=click.Choice(list(_DIMENSIONS)),
    multiple=True,
    help="What to rank (repeatable) [default: user, verb and resource].",
)
@click.option(
    "--measure",
    type=click.Choice(_MEASURES),
    default="requests",
    show_default=True,
    help="Rank by requests, by logged events (one per stage) or by bytes of audit log.",
)
@click.option(
    "-n",
    "--top",
    "top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many to show before the rest is summed as (other).",
)
@json_option("Print JSON (an object of lists, one per --by) instead of tables.")
def top_command(
    lake: str,
    clusters: tuple[str, ...],
    since: str | None,
    until: str | None,
    dimensions: tuple[str, ...],
    measure: str,
    top: int,
    as_json: bool,
) -> None:
    """The busiest users, verbs, resources or namespaces of a window.

    Counts requests (one per audit ID), logged events and bytes, with each one's share of
    the whole; everything past the top N is one (other) row.
    """
    from kaudit_analytics import activity

    read = _Read(lake, clusters, since, until)
    with read.working("Counting"):
        cube = activity.activity_cube(read.events()).collect()
    if cube.is_empty():
        raise read.empty()
    tables = {
        name: activity.busiest(
            cube.lazy(),
            by=_DIMENSIONS[name],  # type: ignore[arg-type]  # the dict's values are Dimensions
            measure=measure,  # type: ignore[arg-type]  # click.Choice of _MEASURES
            top=top,
        )
        .collect()
        .rename({_DIMENSIONS[name]: name})
        for name in dimensions or ("user", "verb", "resource")
    }
    if as_json:
        _output.echo_json({name: frame.to_dicts() for name, frame in tables.items()})
        return
    for name, frame in tables.items():
        _output.show(
            frame,
            title=f"Top {name}s by {measure} {read.where()}",
            formats={"bytes": _output.bytes_text, "share": _output.percent},
        )


# --------------------------------------------------------------------------- kaudit timeline

#: What a terminal timeline shows of ``activity.actor_activity``; --json gives every column.
_TIMELINE = (
    "request_ts",
    "actor",
    "impersonated_user",
    "verb",
    "resource_key",
    "namespace",
    "name",
    "code",
    "outcome",
    "latency_ms",
    "source_ips",
)


@click.command("timeline")
@lake_option()
@cluster_filter_option
@window_options()
@click.option(
    "--user",
    required=True,
    help="The user: as authenticated, or as impersonated (both people's timelines show it).",
)
@click.option(
    "--rows", type=click.IntRange(min=0), default=200, help=_ROWS_HELP.format(200, "--json prints")
)
@json_option("Print every request as JSON (all columns, no --rows cut).")
def timeline_command(
    lake: str,
    clusters: tuple[str, ...],
    since: str | None,
    until: str | None,
    user: str,
    rows: int,
    as_json: bool,
) -> None:
    """One user's requests, oldest first, directly or by impersonation.

    One row per request: when, what on which object, the response and how long it took.
    """
    from kaudit_analytics import activity

    read = _Read(lake, clusters, since, until)
    with read.working(f"Finding {user}'s requests"):
        requests = activity.actor_activity(read.events(), user=user).collect()
    if requests.is_empty():
        import polars as pl

        users = read.events().select(pl.col("user").drop_nulls().unique()).collect()
        raise read.empty(f"no requests by {user}{_did_you_mean(user, users['user'].to_list())}")
    if as_json:
        _output.echo_json(requests.to_dicts())
        return
    shown = _without_empty_columns(_cut(requests, rows, "requests").select(_TIMELINE))
    _output.show(shown, title=f"{requests.height:,} requests by {user} {read.where()}")


# --------------------------------------------------------------------------- kaudit history

_HISTORY = ("request_ts", "actor", "verb", "subresource", "code", "outcome", "latency_ms")


def _object(text: str, namespace: str | None) -> tuple[str | None, str, str | None, str]:
    """``[NAMESPACE/]RESOURCE[.GROUP]/NAME`` -> (namespace, resource, group, name)."""
    parts = text.split("/")
    if len(parts) == 3 and namespace is None:
        namespace, kind, name = parts
    elif len(parts) == 2:
        kind, name = parts
    else:
        msg = (
            f"cannot read {text!r} as an object: write RESOURCE/NAME (pods/web-1, "
            "deployments.apps/web) with -n NAMESPACE, or NAMESPACE/RESOURCE/NAME"
        )
        raise click.BadParameter(msg, param_hint="OBJECT")
    resource, _, group = kind.partition(".")
    if not resource or not name:
        msg = f"cannot read {text!r} as an object: the resource or the name is empty"
        raise click.BadParameter(msg, param_hint="OBJECT")
    return namespace, resource, group or None, name


@click.command("history")
@click.argument("object_ref", metavar="OBJECT")
@click.option(
    "-n",
    "--namespace",
    help="The object's namespace (or write OBJECT as NAMESPACE/RESOURCE/NAME); none for a "
    "cluster-scoped object.",
)
@lake_option()
@cluster_filter_option
@window_options()
@click.option(
    "--rows", type=click.IntRange(min=0), default=200, help=_ROWS_HELP.format(200, "--json prints")
)
@json_option("Print the requests (with their logged bodies) and the changes as JSON.")
def history_command(
    object_ref: str,
    namespace: str | None,
    lake: str,
    clusters: tuple[str, ...],
    since: str | None,
    until: str | None,
    rows: int,
    as_json: bool,
) -> None:
    """One object's requests, oldest first, and what changed in it.

    OBJECT is written as kubectl does: RESOURCE[.GROUP]/NAME, e.g. pods/web-1 or
    deployments.apps/web, with -n NAMESPACE; or NAMESPACE/RESOURCE/NAME. The changes are
    field by field between the object's logged states (as far as the audit policy logged
    bodies); a Secret's values stay redacted.
    """
    from kaudit_analytics import activity

    space, resource, group, name = _object(object_ref, namespace)
    read = _Read(lake, clusters, since, until)
    with read.working(f"Finding the requests on {object_ref}"):
        history = activity.object_history(
            read.events(), resource=resource, name=name, namespace=space, api_group=group
        ).collect()
    if history.is_empty():
        raise read.empty(f"no requests on {object_ref}{_known_names(read, resource, space, name)}")
    changes = activity.object_changes(history)
    if as_json:
        _output.echo_json({"requests": history.to_dicts(), "changes": changes.to_dicts()})
        return
    _output.show(
        _without_empty_columns(_cut(history, rows, "requests").select(_HISTORY)),
        title=f"{history.height:,} requests on {object_ref} {read.where()}",
    )
    _output.show(
        _cut(changes, rows, "changes").drop("audit_id"),
        title="What changed between its logged states",
        empty="nothing logged that could be compared (the policy logged no bodies, or only one)",
    )


def _known_names(read: _Read, resource: str, namespace: str | None, name: str) -> str:
    import polars as pl

    where = pl.col("resource") == resource
    if namespace is not None:
        where &= pl.col("namespace") == namespace
    names = read.events().filter(where).select(pl.col("name").drop_nulls().unique()).collect()
    return _did_you_mean(name, names["name"].to_list())


# --------------------------------------------------------------------------- kaudit sql


def _sql_error(exc: Exception) -> click.ClickException:
    """DuckDB's message in one sentence: its first lines, without the caret diagram."""
    lines = []
    for line in str(exc).splitlines():
        if line.startswith("LINE ") or not line.strip():
            break
        lines.append(line.strip())
    return click.ClickException(f"the SQL failed: {' '.join(lines) or exc}")


@click.command("sql")
@click.argument("query")
@lake_option()
@cluster_filter_option
@window_options()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every row to this file instead: .csv, .parquet, .json (a list) or .jsonl.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=0),
    default=100,
    help=_ROWS_HELP.format(100, "--out and --json write"),
)
@json_option("Print the rows as a JSON list instead of a table.")
def sql_command(
    query: str,
    lake: str,
    clusters: tuple[str, ...],
    since: str | None,
    until: str | None,
    out: Path | None,
    rows: int,
    as_json: bool,
) -> None:
    """Run SQL (DuckDB) over the lake's events, a view named events.

    The view holds the events table's columns (kaudit describe, or DESCRIBE events),
    limited to --cluster and --since/--until. For example:

    \b
      kaudit sql "SELECT user, count(*) AS n FROM events GROUP BY user ORDER BY n DESC"
      kaudit sql "SELECT * FROM events WHERE verb = 'delete'" --out deletes.parquet
    """
    import duckdb

    from kaudit_analytics import lake as _lake

    read = _Read(lake, clusters, since, until)
    connection = _lake.connect(lake, cluster=read.clusters, since=read.since, until=read.until)
    if not connection.sql("SELECT 1 FROM events LIMIT 1").fetchall():
        raise read.empty()
    try:
        with read.working("Running the query"):
            if out is not None:
                written = _lake.export(connection, query, out)
            else:
                result = _fetch(connection, query, rows if not as_json else 0)
    except duckdb.Error as exc:
        raise _sql_error(exc) from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None:
        click.echo(f"wrote {written:,} rows to {out}", err=True)
        return
    frame, more = result
    if as_json:
        _output.echo_json(frame.to_dicts())
        return
    _output.show(frame, empty="(no rows)")
    if more:
        click.echo(
            f"showing the first {rows:,} rows: raise --rows (0: all), or write them all with --out",
            err=True,
        )


def _fetch(connection: Any, query: str, rows: int) -> tuple[pl.DataFrame, bool]:
    """The first ``rows`` rows of the result (all with 0), and whether there were more.

    Reads Arrow batches as DuckDB produces them, so a large result is not built whole only
    to print its first lines; any statement works (SELECT, DESCRIBE, SHOW, PRAGMA …).
    """
    import polars as pl
    import pyarrow as pa

    relation = connection.sql(query)
    if relation is None:  # a statement with no result (SET, CREATE …)
        return pl.DataFrame(), False
    # DuckDB 2 calls it to_arrow_reader, DuckDB 1 fetch_arrow_reader.
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    reader = to_reader(rows + 1 if rows else 100_000)
    batches: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        batches.append(batch)
        count += batch.num_rows
        if rows and count > rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    frame = pl.DataFrame([_series(name, table[name]) for name in table.column_names])
    if rows and frame.height > rows:
        return frame.head(rows), True
    return frame, False


def _series(name: str, column: Any) -> pl.Series:
    """One result column for polars; a type it cannot read (SQL intervals) as text."""
    import polars as pl

    try:
        series = pl.from_arrow(column)
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
        series = pl.Series(values=[None if v is None else str(v) for v in column.to_pylist()])
    assert isinstance(series, pl.Series)
    return series.alias(name)
