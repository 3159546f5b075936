"""``kaudit ingest``: load audit logs into a lake.

The library is imported inside the commands: ``kaudit describe --help`` must not load polars.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from kaudit_analytics.cli._options import LazyChoice, json_option, lake_option

if TYPE_CHECKING:
    import polars as pl

    from kaudit_analytics import ingestion as _ingest
    from kaudit_analytics import lake as _lake

#: The loader's line-size limit (``ingestion.lines.MAX_LINE_BYTES``), said here without
#: importing the loader, so that ``--help`` stays light; a test keeps the two equal.
MAX_LINE_BYTES_HELP = 16 * 1024 * 1024


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[_ingest.Progress], None]]:
    """A one-line progress display on a terminal (files, bytes, events/s).

    Waiting for another writer's commit is always said, on a terminal or not, and the wait is
    not counted in the rate.
    """
    began = time.perf_counter()
    said: set[str] = set()

    def update(done: _ingest.Progress) -> None:
        if done.waiting is not None:
            if done.waiting not in said:
                said.add(done.waiting)
                click.echo(("\n" if enabled else "") + f"Waiting: {done.waiting}", err=True)
            return
        if not enabled:
            return
        rate = done.events_read / max(time.perf_counter() - began, 1e-9)
        click.echo(
            f"\r{done.files_done:>5}/{done.files} files  {done.bytes_read / 1e6:10,.1f} MB  "
            f"{done.events_read:>12,} events  {rate:>10,.0f} ev/s",
            nl=False,
            err=True,
        )

    try:
        yield update
    finally:
        if enabled:
            click.echo("", err=True)


def _keep_freed_memory() -> None:
    """Let glibc reuse freed blocks instead of returning each one to the kernel.

    Every 16 MiB block, parse result and write buffer is a fresh allocation; by default glibc
    maps and unmaps each, and the kernel zeroes every page again (about a fifth of a load's
    samples in a profile, 8 % of its CPU time measured in BENCHMARKS.md). Arrow's own pool
    (mimalloc) hands its freed pages back too, so Arrow allocates from glibc here (another 5 %).
    Only this command's process is tuned, never a notebook that imports the library. A no-op
    off glibc.
    """
    import pyarrow as pa

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
        libc.mallopt(m_trim_threshold, 1 << 30)
        pa.set_memory_pool(pa.system_memory_pool())


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@lake_option()
@click.option("--cluster", default="default", show_default=True, help="Cluster partition.")
@click.option(
    "--format", "fmt", type=LazyChoice("kaudit_analytics.ingestion:FORMATS"), help="Skip detection."
)
@click.option("--keep-secrets", is_flag=True, help="Do not redact Secret values and tokens.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any line was quarantined.")
@click.option(
    "--no-wait", is_flag=True, help="Fail at once if another ingest commits at the same moment."
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Cores to use [all]; 1 lets several ingests share a machine.",
)
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1),
    default=MAX_LINE_BYTES_HELP,
    show_default=True,
    help="Quarantine (whole) any line longer than this many bytes.",
)
def ingest_command(
    paths: tuple[str, ...],
    lake: str,
    cluster: str,
    fmt: str | None,
    keep_secrets: bool,
    strict: bool,
    no_wait: bool,
    threads: int | None,
    max_line_bytes: int,
) -> None:
    """Load audit logs (files, folders, globs, .gz, tarballs, s3:// gs:// az://) into a lake."""
    from kaudit_analytics import ingestion as _ingest
    from kaudit_analytics import lake as _lake

    _keep_freed_memory()
    try:
        with _progress(sys.stderr.isatty()) as progress:
            stats = _ingest.ingest(
                paths,
                lake,
                cluster=cluster,
                format=fmt,
                keep_secrets=keep_secrets,
                wait=not no_wait,
                threads=threads,
                max_line_bytes=max_line_bytes,
                progress=progress,
            )
    except (_ingest.IngestError, _lake.LakeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(stats.summary())
    if stats.events_read == 0 and stats.quarantined:
        raise click.ClickException("nothing could be loaded: every line was quarantined")
    if strict and stats.quarantined:
        raise click.ClickException(f"--strict: {stats.quarantined} line(s) were quarantined")


@click.command("describe")
@lake_option()
@json_option()
def describe_command(lake: str, as_json: bool) -> None:
    """Show what a lake holds, per cluster: events, users, time span, files, bytes, quarantine."""
    from kaudit_analytics import lake as _lake
    from kaudit_analytics.cli._output import echo_json, show

    try:
        overview = _lake.describe(lake)
    except _lake.LakeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(overview.to_dict())
        return
    click.echo(overview.summary())
    if overview.by_cluster:
        show(_per_cluster(overview))


def _per_cluster(overview: _lake.LakeOverview) -> pl.DataFrame:
    import polars as pl

    from kaudit_analytics.cli._output import bytes_text

    return pl.DataFrame(
        [
            {
                "cluster": c.cluster,
                "events": c.events,
                "users": c.users,
                "from": None if c.first is None else c.first.date(),
                "to": None if c.last is None else c.last.date(),
                "files": c.files,
                "Parquet": bytes_text(c.parquet_bytes),
                "quarantined": c.quarantined,
            }
            for c in overview.by_cluster
        ]
    )


@click.command("demo")
@lake_option(required=False, default="build/demo-lake")
def demo_command(lake: str) -> None:
    """Load the bundled sample into a lake and show what it holds."""
    from kaudit_analytics import ingestion as _ingest
    from kaudit_analytics import lake as _lake
    from kaudit_analytics.testing import SAMPLE_DIR

    try:
        stats = _ingest.ingest(SAMPLE_DIR, lake)
        click.echo(stats.summary())
        click.echo(_lake.describe(lake).summary())
    except (_ingest.IngestError, _lake.LakeError) as exc:
        raise click.ClickException(str(exc)) from exc
