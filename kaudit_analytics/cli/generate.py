"""``kaudit generate``: write a synthetic, deterministic kube-apiserver audit log."""

from __future__ import annotations

import sys

import click

from kaudit_analytics import sample as _sample
from kaudit_analytics.policy import PolicyError


@click.command("generate")
@click.option("--events", required=True, type=click.IntRange(min=0), help="Lines to write.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the request stream.")
@click.option(
    "--policy", type=click.Path(dir_okay=False), help="Audit policy file (default: the profile's)."
)
@click.option(
    "--profile",
    type=click.Choice(sorted(_sample.PROFILES)),
    default="metadata",
    show_default=True,
    help="Traffic mix and bundled policy.",
)
@click.option(
    "--start", help="When the traffic starts (ISO 8601, UTC) [default: 2024-09-10T00:00:00Z]."
)
@click.option("--out", default="-", show_default=True, help="Output file, or - for stdout.")
@click.option(
    "--gzip", "compress", is_flag=True, help="Gzip the output (with rotation: the backups)."
)
@click.option("--rotate-bytes", type=click.IntRange(min=1), help="Rotate the file at this size.")
def generate_command(
    events: int,
    seed: int,
    policy: str | None,
    profile: str,
    start: str | None,
    out: str,
    compress: bool,
    rotate_bytes: int | None,
) -> None:
    """Write a synthetic cluster's audit log (audit.k8s.io/v1 JSON lines, as the apiserver does)."""
    target = sys.stdout.buffer if out == "-" else out
    try:
        stats = _sample.generate(
            target,
            events=events,
            seed=seed,
            policy=policy,
            profile=profile,
            start=start,
            compress=compress,
            rotate_bytes=rotate_bytes,
        )
    except (_sample.SampleError, PolicyError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out != "-":
        click.echo(
            f"wrote {stats.events:,} events ({stats.bytes:,} bytes, {stats.first} to {stats.last})"
            f" to {', '.join(stats.files)}",
            err=True,
        )
