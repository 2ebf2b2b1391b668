"""What every command shares: the --json option, the App of this invocation, the arguments a
command was given, the error line."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from .. import text

if TYPE_CHECKING:  # annotations only: older Typer releases have no typer._click
    from typer._click import Context as ClickContext

    from ..app import App
    from ..render import Zone

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document instead of text.")
COMMAND_ARGS = "queuectl.command_args"
LOCAL_TIMES = "queuectl.local_times"  # the root's --local flag
LIMIT_MAX = 2**31 - 2  # both stores hold LIMIT as a 64-bit integer; nobody lists more anyway


class ArgsKeepingGroup(TyperGroup):
    """A command group that keeps the arguments it hands to its subcommand in `ctx.meta`.

    Click tells a command neither where `--` stood among its words nor what surrounded an
    unknown option; `enqueue` needs the first (words after `--` are one command, never a
    SPEC) and the error boundary the second (whether an unknown option is really an id)."""

    def resolve_command(
        self, ctx: ClickContext, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:
        """Click's lookup of the subcommand, recording the arguments that follow its name."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[COMMAND_ARGS] = tuple(rest)
        return name, command, rest


def command_args(ctx: typer.Context) -> tuple[str, ...]:
    """The arguments typed after the command's name, as the user gave them (`--` included)."""
    args: tuple[str, ...] = ctx.meta.get(COMMAND_ARGS, ())
    return args


def command_context(ctx: typer.Context) -> App:
    """The App the root callback attached to this invocation (it opens nothing until used)."""
    return ctx.find_root().obj  # type: ignore[no-any-return]


def limit_probe(limit: int) -> int:
    """How many rows to ask for to learn whether more than `limit` exist (one more)."""
    from ..errors import InvalidInput

    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    return min(limit, LIMIT_MAX) + 1


def display_zone(ctx: typer.Context) -> Zone:
    """The zone times are shown in to people: the machine's with --local, else the one
    QUEUECTL_TZ names (`local`, `UTC` or an IANA name such as Europe/Paris), else UTC.
    JSON output is always UTC."""
    from ..errors import InvalidInput
    from ..render import LOCAL

    if ctx.meta.get(LOCAL_TIMES):
        return LOCAL
    name = os.environ.get("QUEUECTL_TZ", "").strip()
    if name.upper() in ("", "UTC", "Z"):
        return None
    if name.lower() == LOCAL:
        return LOCAL
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise InvalidInput(
            f"QUEUECTL_TZ={text.printable(repr(name), 60)} names no time zone; use local, "
            "UTC or an IANA name such as Europe/Paris"
        ) from None


MAX_ERROR = 1000  # characters: an `Error:` line stays one readable line whatever the input


def write_error(message: str, code: int) -> int:
    """Write one `Error:` line (never longer than MAX_ERROR characters) and return `code`."""
    first = " ".join(str(message).split("\n")).strip()
    sys.stderr.write(f"Error: {text.printable(first, MAX_ERROR)}\n")
    return code
