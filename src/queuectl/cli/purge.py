"""`queuectl purge`: delete finished jobs, in bounded batches (SPEC §7.2)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..models import parse_duration
from .context import command_context


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
    shown = _Progress() if sys.stderr.isatty() else None
    try:
        purged = manager.purge(state, seconds, queue, progress=shown)
    finally:
        if shown is not None:
            shown.clear()
    typer.echo(f"Purged {purged} job(s)")


class _Progress:
    """`purged 12,000 job(s)…` on stderr (a terminal), rewritten after each batch."""

    written = False

    def __call__(self, total: int) -> None:
        sys.stderr.write(f"\rpurged {total:,} job(s)…")
        sys.stderr.flush()
        self.written = True

    def clear(self) -> None:
        if self.written:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def register(app: typer.Typer) -> None:
    """Add `purge` to the root app."""
    app.command()(purge)
