"""What every command shares: the --json option, the App of this invocation, the error line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from .. import text

if TYPE_CHECKING:
    from ..app import App

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document instead of text.")


def command_context(ctx: typer.Context) -> App:
    """The App the root callback attached to this invocation (it opens nothing until used)."""
    return ctx.find_root().obj  # type: ignore[no-any-return]


MAX_ERROR = 1000  # characters: an `Error:` line stays one readable line whatever the input


def write_error(message: str, code: int) -> int:
    """Write one `Error:` line (never longer than MAX_ERROR characters) and return `code`."""
    first = " ".join(str(message).split("\n")).strip()
    sys.stderr.write(f"Error: {text.printable(first, MAX_ERROR)}\n")
    return code
