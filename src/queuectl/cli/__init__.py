"""The command line: parse, call a manager, render. Errors become one `Error:` line in main().

One module per command group (jobs, dlq, worker, config); this one holds the app, `main(argv)`
and the one error boundary.
"""

from __future__ import annotations

import os
import traceback
from typing import Optional

import typer

try:  # newer Typer releases carry their own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer depends on Click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from .. import __version__
from ..errors import QueuectlError
from . import jobs, web
from .config import config_app
from .context import LOCAL_TIMES, ArgsKeepingGroup, write_error
from .dlq import dlq_app
from .importnode import register as register_import_node
from .purge import register as register_purge
from .schedule import register as register_schedule
from .worker import worker_app

app = typer.Typer(
    help="queuectl: a background job queue for shell commands, on SQLite or MongoDB.\n\n"
    "Store: --db URL, else $QUEUECTL_DB, else $MONGODB_URI, else $QUEUECTL_HOME/queue.db "
    "(QUEUECTL_HOME defaults to ~/.queuectl). Times show in UTC; --local or QUEUECTL_TZ "
    "(local, or a zone such as Europe/Paris) changes that, except in --json output.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=ArgsKeepingGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
jobs.register(app)
register_purge(app)
app.add_typer(worker_app, name="worker")
app.add_typer(dlq_app, name="dlq")
app.add_typer(config_app, name="config")
register_schedule(app)
web.register(app)
register_import_node(app)


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
    local: bool = typer.Option(
        False, "--local", help="Show times in local time (JSON stays UTC); see QUEUECTL_TZ."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """queuectl: a background job queue for shell commands, on SQLite or MongoDB."""
    from ..app import App

    ctx.meta[LOCAL_TIMES] = local
    ctx.obj = App(db)


# -- entry point ----------------------------------------------------------------------------
# Click 8.2+ raises this UsageError subclass, whose message is the help, for a bare group.
NO_ARGS_IS_HELP = getattr(click_errors, "NoArgsIsHelpError", None)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected error becomes one `Error:` line and an exit code."""
    from ..settings import load_dotenv_file

    load_dotenv_file()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="queuectl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click_errors.UsageError as exc:
        if NO_ARGS_IS_HELP is not None and isinstance(exc, NO_ARGS_IS_HELP):
            typer.echo(exc.format_message())  # `queuectl` or `queuectl worker` alone: the help
            return 0
        from .hints import usage_message  # only a usage error pays for the hints

        return write_error(usage_message(exc), 2)
    except click_errors.ClickException as exc:
        return write_error(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return write_error("aborted", 130)
    except QueuectlError as exc:
        if os.environ.get("QUEUECTL_DEBUG"):
            traceback.print_exc()
        return write_error(str(exc), exc.exit_code)
    except SystemExit as exc:  # Typer's completion options end with sys.exit()
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # an unexpected error: still one line, unless debugging
        if os.environ.get("QUEUECTL_DEBUG"):
            raise
        return write_error(
            f"unexpected {type(exc).__name__}: {exc} (QUEUECTL_DEBUG=1 shows more)", 1
        )
