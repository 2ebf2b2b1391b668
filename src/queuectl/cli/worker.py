"""`queuectl worker …`: start, stop and list workers."""

from __future__ import annotations

import time
from typing import Optional

import typer

from .. import render
from ..errors import InvalidInput
from .context import JSON_OPT, ArgsKeepingGroup, command_context

DEFAULT_STOP_WAIT = 60.0

worker_app = typer.Typer(
    help="Start, stop and list workers.", no_args_is_help=True, cls=ArgsKeepingGroup
)


@worker_app.command("start")
def worker_start(
    ctx: typer.Context,
    count: int = typer.Option(1, "--count", "-n", help="How many workers (processes)."),
    burst: bool = typer.Option(False, help="Exit once no job is pending or failed."),
    detach: bool = typer.Option(False, help="Run in the background, logging to a file."),
    queue: Optional[str] = typer.Option(
        None, "--queue", metavar="NAME[,NAME...]", help="Serve only these queues (default: all)."
    ),
) -> None:
    """Run workers in the foreground until Ctrl+C (or `queuectl worker stop`).

    \b
    Example: queuectl worker start --count 4 --queue default,emails
    """
    from .. import supervisor
    from ..models import validate_queue

    if not 1 <= count <= 256:
        raise InvalidInput(f"--count must be between 1 and 256, got {count}")
    queues: list[str] = []
    if queue is not None:
        queues = [validate_queue(q.strip()) for q in queue.split(",")]
        queues = list(dict.fromkeys(queues))
    app = command_context(ctx)
    url = app.url
    # Touch the store now: a bad URL or path is one error here, not one per worker.
    app.configs.all()
    if detach:
        supervisor.detach(url, count, burst, queues)
    else:
        raise typer.Exit(supervisor.run(url, count, burst, queues))


@worker_app.command("stop")
def worker_stop(
    ctx: typer.Context,
    wait: bool = typer.Option(False, help="Block until every worker has stopped."),
    timeout: Optional[float] = typer.Option(
        None, help="With --wait: give up after this many seconds (default 60)."
    ),
) -> None:
    """Ask every running worker of this store, on every machine, to stop gracefully.

    \b
    Example: queuectl worker stop --wait --timeout 30
    """

    if timeout is not None and not wait:
        raise InvalidInput("--timeout only applies with --wait")
    timeout = DEFAULT_STOP_WAIT if timeout is None else timeout
    if not 0 < timeout <= 10**6:  # also refuses nan, which would make --wait endless
        raise InvalidInput(f"--timeout must be > 0 and at most 1000000 seconds, got {timeout}")
    manager = command_context(ctx).workers
    asked = manager.request_stop()
    typer.echo(f"Stop requested for {len(asked)} worker(s)")
    if wait and asked:
        manager.wait_stopped(asked, timeout)
        typer.echo("All workers stopped")


@worker_app.command("list")
def worker_list(
    ctx: typer.Context,
    include_all: bool = typer.Option(False, "--all", help="Include stopped workers."),
    as_json: bool = JSON_OPT,
) -> None:
    """List workers with their status, current job and heartbeat age.

    \b
    Example: queuectl worker list --all
    """

    workers = command_context(ctx).workers.list(include_stopped=include_all)
    now = time.time()
    if as_json:
        render.emit_json([render.worker_json(w, now) for w in workers])
    elif workers:
        typer.echo(render.workers_table(workers, now))
    else:
        typer.echo("No workers." if include_all else "No running workers.")
