"""What every command shares: the per-invocation Context (store URL, lazily opened store)."""

from __future__ import annotations

import sys

import typer

from .. import render
from ..store.base import Store

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document instead of text.")


class Context:
    """Per-invocation state: the store URL, and the store once a command needs it."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self._store: Store | None = None

    @property
    def url(self) -> str:
        from ..settings import resolve_url

        return resolve_url(self.db)

    @property
    def store(self) -> Store:
        if self._store is None:
            from ..store import open_store

            self._store = open_store(self.url)
        return self._store


def command_context(ctx: typer.Context) -> Context:
    """The Context the root callback attached to this invocation."""
    return ctx.find_root().obj  # type: ignore[no-any-return]


MAX_ERROR = 1000  # characters: an `Error:` line stays one readable line whatever the input


def write_error(message: str, code: int) -> int:
    """Write one `Error:` line (never longer than MAX_ERROR characters) and return `code`."""
    first = " ".join(str(message).split("\n")).strip()
    sys.stderr.write(f"Error: {render.printable(first, MAX_ERROR)}\n")
    return code
