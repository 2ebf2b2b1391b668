"""`queuectl dlq …`: list the dead letter queue and put jobs back."""

from __future__ import annotations

from typing import List, Optional

import typer

from .. import render, text
from ..errors import InvalidInput, NotInDlq
from .context import JSON_OPT, command_context

dlq_app = typer.Typer(
    help="The dead letter queue: jobs that used up their retries.", no_args_is_help=True
)


@dlq_app.command("list")
def dlq_list(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the jobs in the dead letter queue.

    \b
    Example: queuectl dlq list
    """

    jobs = command_context(ctx).jobs.dead()
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
    else:
        typer.echo("The DLQ is empty.")


@dlq_app.command("retry")
def dlq_retry(
    ctx: typer.Context,
    job_ids: Optional[List[str]] = typer.Argument(None, metavar="ID...", help="Dead job ids."),
    all_jobs: bool = typer.Option(False, "--all", help="Retry every dead job."),
) -> None:
    """Put dead jobs back to pending with their attempts reset.

    \b
    Example: queuectl dlq retry job1 job2   (or: queuectl dlq retry --all)
    """

    if bool(job_ids) == all_jobs:
        raise InvalidInput("give one or more job ids, or --all (not both)")
    manager = command_context(ctx).jobs
    retried, missing = manager.retry_dead(None if all_jobs else job_ids)
    typer.echo(f"Retried {len(retried)} job(s)")
    if missing:
        raise NotInDlq(missing)
