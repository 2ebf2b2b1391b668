"""The words of a usage error: Click's message, then either the `--` hint (where the unknown
option is most likely an id, or an option of the command being enqueued) or a pointer to
the command's help."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Sequence

try:  # newer Typer releases carry their own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer depends on Click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

if TYPE_CHECKING:  # annotations only: older Typer releases have no typer._click
    from typer._click import Context as ClickContext

from .context import COMMAND_ARGS

# Commands whose arguments are job ids: how many each takes (None: any number).
ID_COMMANDS: dict[str, int | None] = {
    "show": 1,
    "log": 1,
    "retry": None,
    "cancel": None,
    "wait": None,
}


def usage_message(exc: click_errors.UsageError) -> str:
    """Click's message with the hint that fits, on one line."""
    message = exc.format_message()
    ctx = exc.ctx
    if ctx is None:
        return message
    if isinstance(exc, click_errors.NoSuchOption):
        hint = _option_hint(ctx, exc.option_name or "")
        if hint:
            return f"{message}; {hint}"
    return f"{message} (see: {ctx.command_path} --help)"


def _option_hint(ctx: ClickContext, name: str) -> str | None:
    args: Sequence[str] = ctx.meta.get(COMMAND_ARGS, ())
    index = _token_index(args, name)
    if index is None:
        return None
    words = _positional(ctx, args, index)
    command = ctx.command.name or ""
    if command in ID_COMMANDS and _looks_like_an_id(args[index], name):
        # An id's slot is free (or the command takes many): `show -j8` meant the job -j8.
        takes = ID_COMMANDS[command]
        if takes is None or len(words) < takes:
            return f"an id starting with '-' goes after --, e.g. {ctx.command_path} -- -job7"
    if command == "enqueue" and words and words[0] < index:
        first = words[0]
        example = [*args[:first], "--", *args[first:]]
        return (
            "if it belongs to the command, put the command after --, e.g. "
            f"{ctx.command_path} {' '.join(shlex.quote(a) for a in example)}"
        )
    return None


def _token_index(args: Sequence[str], name: str) -> int | None:
    """Where the unknown option stood: `-j` came from `-j8`, `--bogus` from `--bogus=1`."""
    for index, arg in enumerate(args):
        if arg == "--":
            return None
        if arg == name or arg.startswith(name if not name.startswith("--") else name + "="):
            return index
    return None


def _positional(ctx: ClickContext, args: Sequence[str], skip: int) -> list[int]:
    """Where the positional words stand among `args` (not options, nor the values options
    take); the token at `skip` is left out."""
    # Typer's options are no longer Click's Option class: read what an option declares.
    takes_value = {
        opt
        for param in ctx.command.params
        if param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and not getattr(param, "count", False)
        for opt in param.opts
    }
    words: list[int] = []
    expect_value = False
    for index, arg in enumerate(args):
        if expect_value:
            expect_value = False
        elif arg == "--":
            words.extend(range(index + 1, len(args)))
            break
        elif arg.startswith("-") and len(arg) > 1:
            expect_value = arg in takes_value  # `--id x`, not `--id=x` nor `-cx`
        elif index != skip:
            words.append(index)
    return words


def _looks_like_an_id(token: str, name: str) -> bool:
    from ..models import ID_PATTERN

    return not name.startswith("--") and ID_PATTERN.fullmatch(token) is not None
