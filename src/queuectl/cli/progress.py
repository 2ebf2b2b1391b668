"""The progress line of long commands (SPEC §7): one line on stderr, rewritten in place,
only when stderr is a terminal; silent otherwise, so pipes and logs never see it."""

from __future__ import annotations

import sys
from types import TracebackType

ERASE = "\r\x1b[K"  # back to the start of the line, and clear it


class Progress:
    """`with Progress() as line: ... line.show("purged 500 job(s)…")`; the line is erased
    when the block ends, however it ends. `line.on` says whether anything will be shown,
    so a caller can skip work (a count) that only the line needs."""

    def __init__(self) -> None:
        self._stream = sys.stderr
        self.on = _is_terminal(self._stream)
        self._written = False

    def show(self, text: str) -> None:
        """Replace the line with `text` (nothing happens off a terminal)."""
        if self.on:
            self._stream.write(f"\r{text}")
            self._stream.flush()
            self._written = True

    def clear(self) -> None:
        """Erase the line, if one was shown."""
        if self._written:
            self._stream.write(ERASE)
            self._stream.flush()
            self._written = False

    def __enter__(self) -> Progress:
        """The line, to show progress on."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Erase the line, whether the block ended or raised (the error is not swallowed)."""
        self.clear()


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False
