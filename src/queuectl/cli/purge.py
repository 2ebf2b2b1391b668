"""`queuectl purge`: delete finished jobs, in bounded batches (SPEC §7.2)."""

from __future__ import annotations

from typing import Optional

import typer

from ..models import parse_duration
from .context import command_context
from .progress import Progress


def purge(
    ctx: typer.Context,
    state: str = typer.Option(
        "completed", "--state", metavar="completed|dead", help="Which finished jobs to delete."
    ),
    older_than: str = typer.Option(
        "0",
        "--older-than",
        metavar="DURATION",
        help="Only jobs that ended longer ago than this: 90s, 30m, 12h, 7d or a number of "
        "seconds (completed: by finished_at, dead: by last update). Default 0: all of them.",
    ),
    queue: Optional[str] = typer.Option(
        None, "--queue", metavar="QUEUE", help="Only jobs of this queue."
    ),
) -> None:
    """Delete completed (or dead) jobs, oldest first, in small batches that never hold
    workers up for long. Pending, processing and failed jobs are never touched. Workers
    also delete completed jobs older than the `retention` config key on their own.

    \b
    Example: queuectl purge --older-than 7d   (or: queuectl purge --state dead --queue emails)
    """
    seconds = parse_duration(older_than)
    manager = command_context(ctx).jobs
    with Progress() as line:
        shown = (lambda total: line.show(f"purged {total:,} job(s)…")) if line.on else None
        purged = manager.purge(state, seconds, queue, progress=shown)
    typer.echo(f"Purged {purged} job(s)")


def register(app: typer.Typer) -> None:
    """Add `purge` to the root app."""
    app.command()(purge)
