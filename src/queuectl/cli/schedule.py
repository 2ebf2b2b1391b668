"""`queuectl schedule …`: recurring jobs (SPEC §7.5). Workers enqueue their ticks."""

from __future__ import annotations

from typing import Optional

import typer

from .. import render, text
from ..render import schedule_json, upcoming_run
from .context import JSON_OPT, ArgsKeepingGroup, command_context, display_zone

schedule_app = typer.Typer(
    help="Recurring jobs: a cron expression and a command; running workers enqueue each tick.",
    no_args_is_help=True,
    cls=ArgsKeepingGroup,
)
NAME_ARG = typer.Argument(..., metavar="NAME", help="The schedule's name.")


def register(app: typer.Typer) -> None:
    """Add the `schedule` command group to the CLI."""
    app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    name: str = NAME_ARG,
    command: str = typer.Argument(..., metavar="COMMAND", help="The shell command to run."),
    cron: str = typer.Option(
        ..., "--cron", metavar="EXPR", help="5-field cron expression, or @hourly, @daily, ..."
    ),
    tz: str = typer.Option("UTC", "--tz", metavar="ZONE", help="IANA time zone of EXPR."),
    priority: Optional[int] = typer.Option(None, help="Higher runs first (default 0)."),
    max_retries: Optional[int] = typer.Option(
        None, "--max-retries", help="Retries after the first attempt."
    ),
    timeout: Optional[float] = typer.Option(None, help="Seconds before a run is killed."),
) -> None:
    """Run COMMAND at every tick of a cron expression (first tick: the next one from now).

    \b
    Example: queuectl schedule add nightly-backup --cron "30 2 * * *" --tz Europe/Paris \\
                 "tar czf /backups/data.tgz /data"
    """
    options = {"priority": priority, "max_retries": max_retries, "timeout": timeout}
    zone = display_zone(ctx)
    added = command_context(ctx).schedules.add(name, cron, command, tz, options)
    when = render.display_time(added.next_run_at, zone)
    typer.echo(f"Added schedule {added.name}; next run at {when}")


@schedule_app.command("list")
def schedule_list(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List schedules with their next and last runs.

    \b
    Example: queuectl schedule list --json
    """
    zone = None if as_json else display_zone(ctx)
    schedules = command_context(ctx).schedules.list()
    if as_json:
        render.emit_json([schedule_json(s) for s in schedules])
    elif schedules:
        rows = [
            (
                text.printable(s.name, 40),
                text.printable(s.cron, 30),
                text.printable(s.tz, 30),
                render.display_time(upcoming_run(s), zone) or "-",
                render.display_time(s.last_run_at, zone) or "-",
                "yes" if s.paused else "no",
                text.printable(s.command, 40),
            )
            for s in schedules
        ]
        headers = ["Name", "Cron", "TZ", "Next Run", "Last Run", "Paused", "Command"]
        typer.echo(render.table(rows, headers))
    else:
        typer.echo("No schedules.")


@schedule_app.command("remove")
def schedule_remove(ctx: typer.Context, name: str = NAME_ARG) -> None:
    """Delete a schedule; jobs it already enqueued stay.

    \b
    Example: queuectl schedule remove nightly-backup
    """
    command_context(ctx).schedules.remove(name)
    typer.echo(f"Removed schedule {name}")


@schedule_app.command("pause")
def schedule_pause(ctx: typer.Context, name: str = NAME_ARG) -> None:
    """Enqueue nothing for this schedule until it is resumed.

    \b
    Example: queuectl schedule pause nightly-backup
    """
    command_context(ctx).schedules.pause(name)
    typer.echo(f"Paused schedule {name}")


@schedule_app.command("resume")
def schedule_resume(ctx: typer.Context, name: str = NAME_ARG) -> None:
    """Enqueue again from the next tick on (ticks missed while paused are skipped).

    \b
    Example: queuectl schedule resume nightly-backup
    """
    resumed = command_context(ctx).schedules.resume(name)
    upcoming = schedule_json(resumed)["next_run_at"] or "never"
    typer.echo(f"Resumed schedule {name}; next run at {upcoming}")
