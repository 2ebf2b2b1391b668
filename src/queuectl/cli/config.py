"""`queuectl config …`: read and change the settings every worker shares."""

from __future__ import annotations

import typer

from .. import render
from .context import JSON_OPT, ArgsKeepingGroup, command_context

config_app = typer.Typer(
    help="Settings shared by every worker of the store.", no_args_is_help=True, cls=ArgsKeepingGroup
)


@config_app.command("list")
def config_list(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Print every key with its value (defaults included) and its allowed range.

    \b
    Example: queuectl config list
    """
    from ..config import KEYS

    values = command_context(ctx).configs.all()
    if as_json:
        render.emit_json(values)
    else:
        rows = [(k, values[k], KEYS[k].default, KEYS[k].span, KEYS[k].help) for k in KEYS]
        typer.echo(render.table(rows, ["Key", "Value", "Default", "Range", "Meaning"]))


@config_app.command("get")
def config_get(ctx: typer.Context, key: str, as_json: bool = JSON_OPT) -> None:
    """Print one value.

    \b
    Example: queuectl config get max-retries
    """
    from ..config import canonical_key

    value = command_context(ctx).configs.get(key)
    if as_json:
        render.emit_json({canonical_key(key): value})
    else:
        typer.echo(value)


# A VALUE such as -1 must reach the rule check, not be taken for an unknown option.
@config_app.command("set", context_settings={"ignore_unknown_options": True})
def config_set(ctx: typer.Context, key: str, value: str, as_json: bool = JSON_OPT) -> None:
    """Set a value within the key's range (`config list` shows them, inf and nan are
    refused); running workers apply it within poll_interval.

    \b
    Example: queuectl config set max_retries 5
    """
    name, parsed = command_context(ctx).configs.set(key, value)
    if as_json:
        render.emit_json({name: parsed})
    else:
        typer.echo(f"{name} = {parsed}")


@config_app.command("unset")
def config_unset(ctx: typer.Context, key: str, as_json: bool = JSON_OPT) -> None:
    """Go back to the default value.

    \b
    Example: queuectl config unset backoff_base
    """
    from ..config import KEYS

    name = command_context(ctx).configs.unset(key)
    if as_json:
        render.emit_json({name: KEYS[name].default})
    else:
        typer.echo(f"{name} = {KEYS[name].default} (default)")
