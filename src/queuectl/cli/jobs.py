"""The job commands: enqueue, list, show, log, status, stats and dashboard."""

from __future__ import annotations

from typing import Any, Optional

import typer

from .. import render
from ..errors import InvalidInput
from ..models import Job
from .context import JSON_OPT, command_context


def register(app: typer.Typer) -> None:
    """Add the job commands to the root app, in the order `--help` lists them."""
    app.command()(enqueue)
    app.command()(status)
    app.command("list")(list_jobs)
    app.command()(show)
    app.command()(log)
    app.command()(stats)
    app.command()(dashboard)


# -- enqueue --------------------------------------------------------------------------------
def enqueue(
    ctx: typer.Context,
    spec: Optional[str] = typer.Argument(None, help="A JSON object, or a plain command."),
    command: Optional[str] = typer.Option(None, "--command", "-c", help="The shell command."),
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
    file: Optional[str] = typer.Option(
        None, "--file", "-f", help="JSON lines file of jobs ('-' = stdin)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the job id(s)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Add a job (or a batch of jobs) to the queue.

    \b
    Example: queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'
    """
    from .enqueue_input import merge_options, read_batch, read_spec

    options = {
        "id": job_id,
        "command": command,
        "priority": priority,
        "delay": delay,
        "run_at": run_at,
        "max_retries": max_retries,
        "timeout": timeout,
    }
    specs: list[tuple[str | None, dict[str, Any]]]
    if file is not None:
        if spec is not None or command is not None or job_id is not None:
            raise InvalidInput("--file takes no SPEC, --command or --id")
        specs = [(label, merge_options(s, options)) for label, s in read_batch(file)]
    elif spec is None and command is None:
        raise InvalidInput(
            'no command given; e.g. queuectl enqueue "echo hi" or --command "echo hi"'
        )
    else:
        specs = [(None, merge_options(read_spec(spec), options))]
    jobs = command_context(ctx).jobs.enqueue(specs)
    _print_enqueued(jobs, batch=file is not None, quiet=quiet, as_json=as_json)


def _print_enqueued(jobs: list[Job], *, batch: bool, quiet: bool, as_json: bool) -> None:
    if as_json:  # an object for one job, an array for a batch (even of one)
        docs = [render.job_json(j) for j in jobs]
        render.emit_json(docs if batch else docs[0])
    elif quiet:
        typer.echo("\n".join(j.id for j in jobs))
    elif batch:
        # Always "jobs": SPEC §5 fixes this line for scripts that parse it.
        typer.echo(f"Enqueued {len(jobs)} jobs")
    else:
        typer.echo(f"Enqueued job {jobs[0].id}")


# -- read commands --------------------------------------------------------------------------
def status(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Count jobs by state, and active workers.

    \b
    Example: queuectl status --json
    """

    app = command_context(ctx)
    counts = app.jobs.counts()
    active = len(app.workers.active())
    if as_json:
        render.emit_json({"jobs": counts, "workers": {"active": active}})
    else:
        typer.echo(render.status_text(counts, active))


def list_jobs(
    ctx: typer.Context,
    state: Optional[str] = typer.Option(None, help="pending|processing|completed|failed|dead"),
    limit: int = typer.Option(50, help="At most this many jobs."),
    as_json: bool = JSON_OPT,
) -> None:
    """List jobs: pending and failed in claim order, others most recently updated first.

    \b
    Example: queuectl list --state pending --limit 10
    """

    # Both stores hold LIMIT as a 64-bit integer; nobody lists more rows than this anyway.
    jobs = command_context(ctx).jobs.list(state, min(limit, 2**31 - 1))
    if as_json:
        render.emit_json([render.job_json(j) for j in jobs])
    elif jobs:
        typer.echo(render.jobs_table(jobs, state))
    else:
        typer.echo(f"No {state + ' ' if state else ''}jobs.")


def show(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT
) -> None:
    """Print every field of one job.

    \b
    Example: queuectl show job1
    """

    job = command_context(ctx).jobs.get(job_id)
    if as_json:
        render.emit_json(render.job_json(job))
    else:
        typer.echo(render.show_job(job))


def log(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT
) -> None:
    """Print the captured stdout and stderr of a job's latest attempt.

    \b
    Example: queuectl log job1
    """
    from .logview import log_json, log_text

    job = command_context(ctx).jobs.get(job_id)
    if as_json:
        render.emit_json(log_json(job))
    else:
        typer.echo(log_text(job))


def stats(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Counts, durations (mean, p50, p95), success rate, retries and throughput.

    \b
    Example: queuectl stats --json
    """
    from .logview import stats_text

    data = command_context(ctx).jobs.stats()
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
