"""The command line: parse, call a manager, render. Errors become one `Error:` line in main()."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, List, Optional

import typer

try:  # newer Typer releases carry their own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer depends on Click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from . import __version__, render
from .cli_config import config_app
from .cli_context import JSON_OPT, Context, command_context
from .cli_web import register_web
from .cli_workers import worker_app
from .errors import InvalidInput, QueuectlError
from .models import Job, shown

app = typer.Typer(
    help="queuectl: a background job queue for shell commands, on SQLite or MongoDB.\n\n"
    "Store: --db URL, else $QUEUECTL_DB, else $MONGODB_URI, else $QUEUECTL_HOME/queue.db "
    "(QUEUECTL_HOME defaults to ~/.queuectl).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
dlq_app = typer.Typer(
    help="The dead letter queue: jobs that used up their retries.", no_args_is_help=True
)
app.add_typer(worker_app, name="worker")
app.add_typer(dlq_app, name="dlq")
app.add_typer(config_app, name="config")
register_web(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"queuectl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Optional[str] = typer.Option(
        None, "--db", metavar="URL", help="Store URL: mongodb://…, sqlite:///file.db or a path."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """queuectl: a background job queue for shell commands, on SQLite or MongoDB."""
    ctx.obj = Context(db)


# -- enqueue --------------------------------------------------------------------------------
@app.command()
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
    from .jobs import JobManager

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
    jobs = JobManager(command_context(ctx).store).enqueue(specs)
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
@app.command()
def status(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Count jobs by state, and active workers.

    \b
    Example: queuectl status --json
    """
    from .jobs import JobManager
    from .workers import WorkerManager

    store = command_context(ctx).store
    counts = JobManager(store).counts()
    active = len(WorkerManager(store).active())
    if as_json:
        render.emit_json({"jobs": counts, "workers": {"active": active}})
    else:
        typer.echo(render.status_text(counts, active))


@app.command("list")
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
    from .jobs import JobManager

    # Both stores hold LIMIT as a 64-bit integer; nobody lists more rows than this anyway.
    jobs = JobManager(command_context(ctx).store).list(state, min(limit, 2**31 - 1))
    if as_json:
        render.emit_json([render.job_json(j) for j in jobs])
    elif jobs:
        typer.echo(render.jobs_table(jobs, state))
    else:
        typer.echo(f"No {state + ' ' if state else ''}jobs.")


@app.command()
def show(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT
) -> None:
    """Print every field of one job.

    \b
    Example: queuectl show job1
    """
    from .jobs import JobManager

    job = JobManager(command_context(ctx).store).get(job_id)
    if as_json:
        render.emit_json(render.job_json(job))
    else:
        typer.echo(render.show_job(job))


@app.command()
def log(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT
) -> None:
    """Print the captured stdout and stderr of a job's latest attempt.

    \b
    Example: queuectl log job1
    """
    from .jobs import JobManager
    from .logview import log_json, log_text

    job = JobManager(command_context(ctx).store).get(job_id)
    if as_json:
        render.emit_json(log_json(job))
    else:
        typer.echo(log_text(job))


@app.command()
def stats(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Counts, durations (mean, p50, p95), success rate, retries and throughput.

    \b
    Example: queuectl stats --json
    """
    from .jobs import JobManager
    from .logview import stats_text

    data = JobManager(command_context(ctx).store).stats()
    if as_json:
        render.emit_json(data)
    else:
        typer.echo(stats_text(data))


@app.command()
def dashboard(
    ctx: typer.Context,
    interval: float = typer.Option(2.0, help="Seconds between refreshes."),
) -> None:
    """A live view of jobs and workers, refreshed until Ctrl+C.

    \b
    Example: queuectl dashboard --interval 1
    """
    from .dashboard import run_dashboard

    if not 0.1 <= interval <= 3600:
        raise InvalidInput(f"--interval must be between 0.1 and 3600 seconds, got {interval}")
    run_dashboard(lambda: command_context(ctx).store, interval)


# -- dlq ------------------------------------------------------------------------------------
@dlq_app.command("list")
def dlq_list(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the jobs in the dead letter queue.

    \b
    Example: queuectl dlq list
    """
    from .jobs import JobManager

    jobs = JobManager(command_context(ctx).store).dead()
    if as_json:
        render.emit_json([render.job_json(j) for j in jobs])
    elif jobs:
        rows = [
            (
                render.printable(j.id, 40),
                j.attempts,
                render.printable(j.command, 40),
                render.printable(j.last_error, 50),
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
    from .jobs import JobManager

    if bool(job_ids) == all_jobs:
        raise InvalidInput("give one or more job ids, or --all (not both)")
    manager = JobManager(command_context(ctx).store)
    retried, missing = manager.retry_dead(None if all_jobs else job_ids)
    typer.echo(f"Retried {len(retried)} job(s)")
    if missing:
        listed = ", ".join(shown(job_id, 60) for job_id in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        subject = "job {} is" if len(missing) == 1 else "jobs {} are"
        _fail(f"{subject.format(listed + more)} not in the DLQ (left unchanged)", 1)
        raise typer.Exit(1)


# -- config ---------------------------------------------------------------------------------
# -- entry point ----------------------------------------------------------------------------
# Click 8.2+ raises this UsageError subclass, whose message is the help, for a bare group.
NO_ARGS_IS_HELP = getattr(click_errors, "NoArgsIsHelpError", None)
MAX_ERROR = 1000  # characters: an `Error:` line stays one readable line whatever the input


def _usage_message(exc: click_errors.UsageError) -> str:
    message = exc.format_message()
    name = getattr(exc, "option_name", "") or ""
    takes_ids = exc.ctx is not None and exc.ctx.command.name in ("show", "log", "retry")
    if isinstance(exc, click_errors.NoSuchOption) and takes_ids and not name.startswith("--"):
        # Most likely an id that starts with '-', e.g. `show -j8`.
        path = exc.ctx.command_path if exc.ctx else "queuectl show"
        message += f"; an id starting with '-' goes after --, e.g. {path} -- -job7"
    elif exc.ctx is not None:
        message += f" (see: {exc.ctx.command_path} --help)"
    return message


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected error becomes one `Error:` line and an exit code."""
    from .settings import load_dotenv_file

    load_dotenv_file()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="queuectl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click_errors.UsageError as exc:
        if NO_ARGS_IS_HELP is not None and isinstance(exc, NO_ARGS_IS_HELP):
            typer.echo(exc.format_message())  # `queuectl` or `queuectl worker` alone: the help
            return 0
        return _fail(_usage_message(exc), 2)
    except click_errors.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return _fail("aborted", 130)
    except QueuectlError as exc:
        if os.environ.get("QUEUECTL_DEBUG"):
            traceback.print_exc()
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # an unexpected error: still one line, unless debugging
        if os.environ.get("QUEUECTL_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (QUEUECTL_DEBUG=1 shows more)", 1)


def _fail(message: str, code: int) -> int:
    """Write one `Error:` line (never longer than MAX_ERROR characters) and return `code`."""
    first = " ".join(str(message).split("\n")).strip()
    sys.stderr.write(f"Error: {render.printable(first, MAX_ERROR)}\n")
    return code
