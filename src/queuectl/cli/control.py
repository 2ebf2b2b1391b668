"""`queuectl cancel` and `queuectl wait`: stop jobs, and block until jobs are done."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, List, Optional

import typer

from ..errors import InvalidInput, JobNotFound, NotCancelable, QueuectlError
from ..models import COMPLETED, DEAD
from .context import command_context
from .progress import Progress

if TYPE_CHECKING:
    from ..jobs import JobManager

# wait polls often at first (a short job is seen at once), then backs off to this.
WAIT_POLL_FIRST, WAIT_POLL_MAX = 0.1, 1.0
MAX_WAIT = 10**9


def cancel(
    ctx: typer.Context,
    job_ids: Optional[List[str]] = typer.Argument(None, metavar="ID...", help="Job ids."),
    all_pending: bool = typer.Option(
        False, "--all-pending", help="Every pending job and every failed one awaiting a retry."
    ),
    queue: Optional[str] = typer.Option(None, "--queue", help="With --all-pending: one queue."),
) -> None:
    """Cancel jobs: waiting ones go to the DLQ at once, running ones are killed first.

    \b
    Example: queuectl cancel job1 job2   (or: queuectl cancel --all-pending --queue emails)
    """
    if bool(job_ids) == all_pending:
        raise InvalidInput("give one or more job ids, or --all-pending (not both)")
    if queue is not None and not all_pending:
        raise InvalidInput("--queue only applies with --all-pending")
    manager = command_context(ctx).jobs
    canceled, problems = manager.cancel(None if all_pending else job_ids, queue)
    typer.echo(f"Canceled {len(canceled)} job(s)")
    if problems:
        raise NotCancelable(problems)


def wait(
    ctx: typer.Context,
    job_ids: List[str] = typer.Argument(..., metavar="ID...", help="Job ids."),
    timeout: Optional[float] = typer.Option(
        None, help="Give up after this many seconds (default: wait as long as it takes)."
    ),
) -> None:
    """Block until every job is completed or dead: exit 0 if all completed, else 1.

    \b
    Example: queuectl wait job1 job2 --timeout 600
    """
    if timeout is not None and not 0 < timeout <= MAX_WAIT:  # nan fails this too
        raise InvalidInput(f"--timeout must be > 0 and at most {MAX_WAIT} seconds, got {timeout}")
    manager = command_context(ctx).jobs
    wanted = list(dict.fromkeys(job_ids))
    with Progress() as line:
        dead = _wait_for(manager, wanted, timeout, line)
    if dead:
        subject = "job {} is" if len(dead) == 1 else "jobs {} are"
        raise QueuectlError(f"{subject.format(_names(dead))} dead (see: queuectl dlq list)")


def _wait_for(
    manager: JobManager, wanted: List[str], timeout: Optional[float], line: Progress
) -> List[str]:
    """Poll until every job ended (returns the dead ones) or `timeout` passed (raises);
    `12/40 done` on the progress line when there is more than one job."""
    deadline = None if timeout is None else time.monotonic() + timeout
    open_ids, dead = wanted, []
    poll = WAIT_POLL_FIRST
    first = True
    while True:
        states = manager.states(open_ids)  # one pass over the ids still open
        if first:
            missing = [i for i in open_ids if i not in states]
            if missing:
                raise JobNotFound(missing[0])
            first = False
        dead += [i for i in open_ids if states.get(i) == DEAD]
        open_ids = [i for i in open_ids if states.get(i) not in (COMPLETED, DEAD)]
        if len(wanted) > 1:
            line.show(f"{len(wanted) - len(open_ids)}/{len(wanted)} done")
        if not open_ids:
            return dead
        if deadline is not None and time.monotonic() >= deadline:
            raise QueuectlError(
                f"timed out after {timeout:g}s; not finished: {_names(open_ids)}"
                + (f"; dead: {_names(dead)}" if dead else "")
            )
        pause = poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0))
        time.sleep(pause)
        poll = min(poll * 1.5, WAIT_POLL_MAX)


def _names(job_ids: List[str], shown: int = 20) -> str:
    listed = ", ".join(repr(i) for i in job_ids[:shown])
    return listed + (f" and {len(job_ids) - shown} more" if len(job_ids) > shown else "")
