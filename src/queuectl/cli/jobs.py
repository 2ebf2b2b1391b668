"""The job commands: enqueue, list, show, log, status, stats and dashboard."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from .. import render
from ..errors import InvalidInput
from ..models import Job
from .context import (
    JSON_OPT,
    command_args,
    command_context,
    display_zone,
    limit_probe,
)
from .progress import Progress

# A --file batch shows its progress every this many jobs (so only long ones show any).
LINES_PER_UPDATE = 10_000


def register(app: typer.Typer) -> None:
    """Add the job commands to the root app, in the order `--help` lists them."""
    app.command()(enqueue)
    app.command()(status)
    app.command("list")(list_jobs)
    app.command()(show)
    app.command()(log)
    app.command()(stats)
    app.command()(dashboard)
    from .control import cancel, wait

    app.command()(cancel)
    app.command()(wait)


# -- enqueue --------------------------------------------------------------------------------
def enqueue(
    ctx: typer.Context,
    words: Optional[List[str]] = typer.Argument(
        None,
        metavar="[SPEC | COMMAND...]",
        help="A JSON object, or a command (several words are joined with spaces).",
        show_default=False,
    ),
    command: Optional[str] = typer.Option(
        None, "--command", "-c", help="The shell command, as one argument."
    ),
    job_id: Optional[str] = typer.Option(None, "--id", help="Job id (default: generated)."),
    priority: Optional[int] = typer.Option(None, help="Higher runs first (default 0)."),
    delay: Optional[float] = typer.Option(None, help="Seconds to wait before it may run."),
    run_at: Optional[str] = typer.Option(
        None, "--run-at", help="ISO 8601 time to run at; no offset = local."
    ),
    max_retries: Optional[int] = typer.Option(
        None, "--max-retries", help="Retries after the first attempt."
    ),
    timeout: Optional[float] = typer.Option(None, help="Seconds before the job is killed."),
    queue: Optional[str] = typer.Option(None, help="Queue name (default: default)."),
    after: Optional[str] = typer.Option(
        None, "--after", metavar="ID[,ID...]", help="Run only once these jobs completed."
    ),
    file: Optional[str] = typer.Option(
        None, "--file", "-f", help="JSON lines file of jobs ('-' = stdin)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the job id(s)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Add a job (or a batch of jobs) to the queue.

    SPEC is a JSON object; anything else is the command, its words joined with spaces. Put a
    command after -- when it has options of its own or starts with {: everything after -- is
    one command, never JSON. Other JSON (an array, a string, null, a number) is refused.

    \b
    Example: queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'
             queuectl enqueue echo hi
             queuectl enqueue --priority 5 -- ls -la
    """
    from .enqueue_input import merge_options, read_words, split_at_dashes

    if quiet and as_json:
        raise InvalidInput("--quiet and --json: give one, not both")
    options = {
        "id": job_id,
        "command": command,
        "priority": priority,
        "delay": delay,
        "run_at": run_at,
        "max_retries": max_retries,
        "timeout": timeout,
        "queue": queue,
        "after": None if after is None else _id_list(after, "--after"),
    }
    before, after_dashes = split_at_dashes(words or [], command_args(ctx))
    if file is not None:
        if before or after_dashes is not None or command is not None or job_id is not None:
            raise InvalidInput("--file takes no SPEC, command words, --command or --id")
        with Progress() as line:
            jobs = command_context(ctx).jobs.enqueue(_read_file(file, options, line))
    else:
        spec = read_words(before, after_dashes, command)
        if spec is None and command is None:
            raise InvalidInput(
                'no command given; e.g. queuectl enqueue "echo hi" or --command "echo hi"'
            )
        jobs = command_context(ctx).jobs.enqueue([(None, merge_options(spec or {}, options))])
    _print_enqueued(jobs, batch=file is not None, quiet=quiet, as_json=as_json)


def _read_file(
    path: str, options: dict[str, Any], line: Progress
) -> list[tuple[str | None, dict[str, Any]]]:
    """The specs of a --file batch. A long one shows `read 20,000 job(s)…` every
    LINES_PER_UPDATE jobs, then `enqueuing 100,000 job(s)…` while they are checked and
    written (one atomic write)."""
    from .enqueue_input import merge_options, read_batch

    specs: list[tuple[str | None, dict[str, Any]]] = []
    for label, spec in read_batch(path):
        specs.append((label, merge_options(spec, options)))
        if len(specs) % LINES_PER_UPDATE == 0:
            line.show(f"read {len(specs):,} job(s)…")
    if len(specs) >= LINES_PER_UPDATE:
        line.show(f"enqueuing {len(specs):,} job(s)…")
    return specs


def _id_list(text: str, option: str) -> list[str]:
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise InvalidInput(f"{option} takes job ids separated by commas, e.g. {option} a,b")
    return ids


def _print_enqueued(jobs: list[Job], *, batch: bool, quiet: bool, as_json: bool) -> None:
    if as_json:  # an object for one job, an array for a batch (even of one)
        docs = [render.job_json(j) for j in jobs]
        render.emit_json(docs if batch else docs[0])
    elif quiet:
        typer.echo("\n".join(j.id for j in jobs))
    elif batch:
        # SPEC §5: "Enqueued N jobs", and "Enqueued 1 job" for a batch of one.
        typer.echo(f"Enqueued {len(jobs)} job{'' if len(jobs) == 1 else 's'}")
    else:
        typer.echo(f"Enqueued job {jobs[0].id}")


# -- read commands --------------------------------------------------------------------------
QUEUE_OPT = typer.Option(None, "--queue", help="Only jobs of this queue.")


def status(ctx: typer.Context, queue: Optional[str] = QUEUE_OPT, as_json: bool = JSON_OPT) -> None:
    """Count jobs by state, and active workers (of one queue with --queue).

    \b
    Example: queuectl status --json
    """

    app = command_context(ctx)
    counts = app.jobs.counts(queue)
    active = len(app.workers.active(queue))
    if as_json:
        render.emit_json({"jobs": counts, "workers": {"active": active}})
    else:
        typer.echo(render.status_text(counts, active))


def list_jobs(
    ctx: typer.Context,
    state: Optional[str] = typer.Option(None, help="pending|processing|completed|failed|dead"),
    limit: int = typer.Option(50, help="At most this many jobs."),
    queue: Optional[str] = QUEUE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List jobs, pending and failed ones in the order workers will take them.

    Pending and failed: the jobs ready now in claim order, then those waiting for their
    run_at, soonest first (the Ready column says how long). Other states, and all jobs: most
    recently updated first. A note under the table says when --limit left some out.

    \b
    Example: queuectl list --state pending --limit 10
    """

    zone = None if as_json else display_zone(ctx)
    app = command_context(ctx)
    now = app.clock()
    jobs = app.jobs.list(state, limit_probe(limit), queue, now=now)
    more, jobs = len(jobs) > limit, jobs[:limit]
    if as_json:
        render.emit_json([render.job_json(j) for j in jobs])
    elif jobs:
        blocked = app.jobs.waiting_for(jobs)
        typer.echo(render.jobs_table(jobs, state, blocked, now=now, zone=zone))
        if more:
            typer.echo(render.more_rows_note(limit))
    else:
        typer.echo(f"No {state + ' ' if state else ''}jobs.")


def show(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT
) -> None:
    """Print every field of one job. Times are UTC unless --local or QUEUECTL_TZ says
    otherwise (--json: always UTC).

    \b
    Example: queuectl show job1
    """

    zone = None if as_json else display_zone(ctx)
    manager = command_context(ctx).jobs
    job = manager.get(job_id)
    if as_json:
        render.emit_json(render.job_json(job))
    else:
        typer.echo(render.show_job(job, manager.waiting_for([job]).get(job.id), zone))


def log(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID"),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Print new output as it comes, until the attempt ends."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Print the captured stdout and stderr of a job's latest attempt.

    \b
    Example: queuectl log job1      (or: queuectl log -f job1)
    """
    from .logview import log_json, log_text

    if follow and as_json:
        raise InvalidInput("--follow prints output as it comes; it does not take --json")
    manager = command_context(ctx).jobs
    job = manager.get(job_id)
    if follow:
        from .follow import follow_job

        follow_job(manager, job)
        return
    if as_json:
        render.emit_json(log_json(job))
    else:
        typer.echo(log_text(job))


def stats(ctx: typer.Context, queue: Optional[str] = QUEUE_OPT, as_json: bool = JSON_OPT) -> None:
    """Counts, durations (mean, p50, p95), success rate, retries and throughput.

    \b
    Example: queuectl stats --json
    """
    from .logview import stats_text

    data = command_context(ctx).jobs.stats(queue)
    if as_json:
        render.emit_json(data)
    else:
        typer.echo(stats_text(data))


def dashboard(
    ctx: typer.Context,
    interval: float = typer.Option(2.0, help="Seconds between refreshes."),
) -> None:
    """A live view of jobs and workers, refreshed until Ctrl+C.

    \b
    Example: queuectl dashboard --interval 1
    """
    from ..dashboard import run_dashboard

    if not 0.1 <= interval <= 3600:
        raise InvalidInput(f"--interval must be between 0.1 and 3600 seconds, got {interval}")
    run_dashboard(lambda: command_context(ctx), interval)
