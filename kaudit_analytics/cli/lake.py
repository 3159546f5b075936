"""``kaudit lake …`` (compaction, retention, history, upgrade) and ``kaudit quarantine …``."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import Any

import click
import polars as pl

from kaudit_analytics import ingestion as _ingest
from kaudit_analytics import lake as _lake
from kaudit_analytics.cli._options import json_option, lake_option
from kaudit_analytics.cli._output import bytes_text, echo_json, show, show_totals
from kaudit_analytics.ingestion.lines import MAX_LINE_BYTES

_DURATION = re.compile(r"^\s*(\d+)\s*([hdwy])\s*$")
_UNIT_DAYS = {"h": 1 / 24, "d": 1, "w": 7, "y": 365}


class _Duration(click.ParamType):  # type: ignore[type-arg]
    """``400d``, ``52w``, ``1y``, ``36h``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration such as 400d, 52w, 1y or 36h", param, ctx)
        return dt.timedelta(days=int(match.group(1)) * _UNIT_DAYS[match.group(2)])


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("lake")
def lake_group() -> None:
    """The lake's table: compact files, apply retention, show its history, upgrade old lakes."""


@lake_group.command("compact")
@lake_option()
@click.option("--cluster", multiple=True, help="Only this cluster (repeatable) [all].")
@json_option()
def compact_command(lake: str, cluster: tuple[str, ...], as_json: bool) -> None:
    """Merge each partition's small files (left by frequent loads) into large ones."""
    try:
        done = _lake.compact(lake, cluster=list(cluster) or None)
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    if as_json:
        echo_json(done.__dict__)
        return
    if not done.files_before:
        click.echo("Nothing to compact: no partition holds several small files.")
        return
    click.echo(
        f"Compacted {done.files_before:,} files ({bytes_text(done.bytes_before)}) of "
        f"{done.partitions:,} partition(s) into {done.files_after:,} "
        f"({bytes_text(done.bytes_after)}), {done.rows:,} events; table version {done.version}."
    )


@lake_group.command("retain")
@lake_option()
@click.option(
    "--older-than",
    type=_Duration(),
    required=True,
    help="Delete days that ended longer ago than this (400d, 52w, 1y).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@json_option()
def retain_command(lake: str, older_than: dt.timedelta, dry_run: bool, as_json: bool) -> None:
    """Delete events (and quarantined lines) past retention, and their files from storage."""
    try:
        done = _lake.retain(lake, older_than, dry_run=dry_run)
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    if as_json:
        echo_json(done.__dict__)
        return
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(
        f"{verb} {done.events:,} events in {done.files:,} file(s) ({bytes_text(done.bytes)}) of "
        f"{done.partitions:,} day partition(s) before {done.cutoff}, and {done.quarantined:,} "
        f"quarantined line(s)"
        + ("." if dry_run else f"; {done.vacuumed:,} file(s) removed from storage.")
    )


@lake_group.command("history")
@lake_option()
@click.option("--limit", type=click.IntRange(min=1), help="Only the latest N versions.")
@click.option("--version", "version", type=int, help="Everything one commit recorded.")
@json_option()
def history_command(lake: str, limit: int | None, version: int | None, as_json: bool) -> None:
    """The lake's own audit trail: which ingest added what, when, from which sources."""
    try:
        if version is not None:
            echo_json({"version": version, **_lake.commit_info(lake, version)})
            return
        frame = _lake.history(lake, limit=limit)
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    if as_json:
        echo_json([{**row, "detail": json.loads(row["detail"])} for row in frame.to_dicts()])
        return
    show(
        frame.select(
            "version",
            pl.col("time").dt.strftime("%Y-%m-%d %H:%M"),
            "operation",
            "cluster",
            pl.col("files_added").alias("+files"),
            pl.col("files_removed").alias("-files"),
            pl.col("events_added").alias("+events"),
            "sources",
        ),
        title=f"History of {lake}",
    )


@lake_group.command("upgrade")
@lake_option()
def upgrade_command(lake: str) -> None:
    """Make a lake written by an earlier kaudit a Delta table, in place (files are kept)."""
    try:
        done = _lake.upgrade(lake)
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    if not done.files and not done.quarantined:
        click.echo(f"{lake} is a Delta lake already (version {done.version}): nothing to do.")
        return
    click.echo(
        f"Upgraded {lake}: {done.files:,} file(s) with {done.events:,} events and "
        f"{done.sources:,} source(s) registered in version {done.version}; "
        f"{done.quarantined:,} quarantined line(s) moved into the quarantine table."
    )


@lake_group.command("vacuum")
@lake_option()
@click.option(
    "--retain-hours",
    type=click.IntRange(min=0),
    default=_lake.RETENTION_HOURS,
    show_default=True,
    help="Keep files removed less than this long ago (older versions stay readable that long).",
)
@click.option(
    "--orphan-hours",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="Keep uncommitted files younger than this: longer than any ingest runs.",
)
def vacuum_command(lake: str, retain_hours: int, orphan_hours: int) -> None:
    """Delete files no recent version reads (replaced by compaction, or left by crashes)."""
    try:
        deleted = _lake.vacuum(
            _lake.require_lake(lake), retention_hours=retain_hours, orphan_hours=orphan_hours
        )
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    click.echo(f"Deleted {deleted:,} file(s) that no version within {retain_hours} hours reads.")


# --- the quarantine ------------------------------------------------------------------------------


@click.group("quarantine")
def quarantine_group() -> None:
    """Lines that could not be loaded: list them, show one, load them again after a fix."""


def _filtered(lake: str, cluster: str | None, reason: str | None) -> pl.LazyFrame:
    rows = _lake.scan_quarantine(lake)
    if cluster is not None:
        rows = rows.filter(pl.col("cluster") == cluster)
    if reason is not None:
        rows = rows.filter(pl.col("reason") == reason)
    return rows


@quarantine_group.command("list")
@lake_option()
@click.option("--cluster", help="Only this cluster.")
@click.option("--reason", help="Only this reason (invalid-json, line-too-long, …).")
@json_option()
def quarantine_list_command(
    lake: str, cluster: str | None, reason: str | None, as_json: bool
) -> None:
    """One row per quarantined line: where it is, why, how big."""
    try:
        rows = (
            _filtered(lake, cluster, reason)
            .select(
                "cluster",
                "source",
                "line",
                "reason",
                "detail",
                pl.col("raw").bin.size().alias("bytes"),
                "quarantined_at",
            )
            .sort("cluster", "source", "line", nulls_last=True)
            .collect()
        )
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    show(rows, as_json=as_json, title="Quarantine", empty="The quarantine is empty.")


@quarantine_group.command("show")
@click.argument("where", metavar="SOURCE:LINE")
@lake_option()
@click.option("--raw", is_flag=True, help="Write the line's bytes exactly, and nothing else.")
def quarantine_show_command(where: str, lake: str, raw: bool) -> None:
    """Show quarantined lines of a source (SOURCE, or SOURCE:LINE as the summaries print)."""
    source, _, line = where.rpartition(":")
    if not line.isdigit():
        source, line = where, ""
    try:
        rows = _lake.scan_quarantine(lake).filter(pl.col("source") == source)
        if line:
            rows = rows.filter(pl.col("line") == int(line))
        found = rows.sort("line").collect()
    except _lake.LakeError as exc:
        raise _fail(exc) from exc
    if found.is_empty():
        msg = f"nothing from {where} is in the quarantine of {lake}"
        raise click.ClickException(msg)
    if raw:
        for data in found["raw"]:
            sys.stdout.buffer.write(data + b"\n")
        return
    for row in found.iter_rows(named=True):
        show_totals(
            {
                "where": f"{row['source']}:{row['line']} (byte {row['offset']:,})"
                if row["offset"] is not None
                else f"{row['source']}:{row['line']}",
                "cluster": row["cluster"],
                "reason": row["reason"],
                "detail": row["detail"],
                "quarantined": row["quarantined_at"],
                "bytes": len(row["raw"]),
            }
        )
        text = row["raw"].decode("utf-8", errors="replace")
        click.echo(text if len(text) <= 2000 else f"{text[:2000]}… (--raw for all)")
        click.echo("")


@quarantine_group.command("retry")
@lake_option()
@click.option("--cluster", help="Only this cluster.")
@click.option("--reason", help="Only this reason.")
@click.option("--source", help="Only lines of this source file.")
@click.option("--format", "fmt", type=click.Choice(_ingest.FORMATS), help="Read them as this.")
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1),
    default=MAX_LINE_BYTES,
    show_default=True,
    help="Line-size limit for this retry.",
)
def quarantine_retry_command(
    lake: str,
    cluster: str | None,
    reason: str | None,
    source: str | None,
    fmt: str | None,
    max_line_bytes: int,
) -> None:
    """Load quarantined lines again (after a fix); those that load leave the quarantine."""
    try:
        stats = _ingest.retry(
            lake,
            cluster=cluster,
            reason=reason,
            source=source,
            format=fmt,
            max_line_bytes=max_line_bytes,
        )
    except (_ingest.IngestError, _lake.LakeError) as exc:
        raise _fail(exc) from exc
    click.echo(
        f"Retried quarantined lines: {stats.events_written:,} event(s) loaded, "
        f"{stats.duplicates:,} already in the lake, {stats.quarantined:,} line(s) still "
        "quarantined."
    )
