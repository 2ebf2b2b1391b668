"""`queuectl dlq …`: list the dead letter queue and put jobs back."""

from __future__ import annotations

from typing import List, Optional

import typer

from .. import render, text
from ..errors import InvalidInput, NotInDlq
from .context import JSON_OPT, ArgsKeepingGroup, command_context, limit_probe
from .progress import Progress

dlq_app = typer.Typer(
    help="The dead letter queue: jobs that used up their retries.",
    no_args_is_help=True,
    cls=ArgsKeepingGroup,
)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: int = typer.Option(50, help="At most this many jobs."),
    as_json: bool = JSON_OPT,
) -> None:
    """List the jobs in the dead letter queue, most recently failed first.

    \b
    Example: queuectl dlq list --limit 20
    """

    jobs = command_context(ctx).jobs.dead(limit_probe(limit))
    more, jobs = len(jobs) > limit, jobs[:limit]
    if as_json:
        render.emit_json([render.job_json(j) for j in jobs])
    elif jobs:
        rows = [
            (
                text.printable(j.id, 40),
                j.attempts,
                text.printable(j.command, 40),
                text.printable(j.last_error, 50),
            )
            for j in jobs
        ]
        typer.echo(render.table(rows, ["ID", "Attempts", "Command", "Last Error"]))
        if more:
            typer.echo(render.more_rows_note(limit))
    else:
        typer.echo("The DLQ is empty.")


@dlq_app.command("retry")
def dlq_retry(
    ctx: typer.Context,
    job_ids: Optional[List[str]] = typer.Argument(None, metavar="ID...", help="Dead job ids."),
    all_jobs: bool = typer.Option(False, "--all", help="Retry every dead job."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"retried": [ids], "not_in_dlq": [ids]} instead of text.'
    ),
) -> None:
    """Put dead jobs back to pending with their attempts reset.

    \b
    Example: queuectl dlq retry job1 job2   (or: queuectl dlq retry --all)
    """

    if bool(job_ids) == all_jobs:
        raise InvalidInput("give one or more job ids, or --all (not both)")
    manager = command_context(ctx).jobs
    with Progress() as line:
        shown = (lambda total: line.show(f"retried {total:,} job(s)…")) if line.on else None
        retried, missing = manager.retry_dead(None if all_jobs else job_ids, progress=shown)
    if as_json:
        render.emit_json({"retried": retried, "not_in_dlq": missing})
    else:
        typer.echo(f"Retried {len(retried)} job(s)")
    if missing:
        raise NotInDlq(missing)
