"""Pure text helpers shared by the runtime and the output: safe terminal text, exit words.

No I/O here: the worker's log and the CLI's tables use the same escaping and the same words.
"""

from __future__ import annotations

import re
import signal

# Characters a terminal may act on rather than show: C0/C1 controls, DEL, lone surrogates, line
# and paragraph separators, and bidirectional overrides (which can make text read reversed).
_RISKY = "\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_RISKY}]")
# json.dumps already escapes C0 controls inside strings; outside them it writes only newlines.
UNSAFE_IN_JSON = re.compile(f"[{_RISKY}]")
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f{_RISKY}]")  # keeps \t and \n


def printable(text: str | None, width: int | None = None) -> str:
    """Text safe for one terminal line: control characters escaped, cut to `width`."""
    if text is None:
        return ""
    line = _UNSAFE.sub(_escape, text)
    if width is not None and len(line) > width:
        line = line[: max(width - 1, 0)] + "…"
    return line


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in (0x0A, 0x09):
        return "\\n" if code == 0x0A else "\\t"
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def safe_block(text: str) -> str:
    """Multi-line text with terminal control characters escaped (newlines and tabs kept)."""
    return _UNSAFE_IN_BLOCK.sub(_escape, text)


def describe_exit(code: int | None) -> str:
    """`exit status 3`, or `killed by SIGKILL` for a negative status (the signal), or
    `exit status -` when there is none."""
    if code is None:
        return "exit status -"
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def wait_words(seconds: float) -> str:
    """A wait ahead in the two largest units: `in 45s`, `in 4m 10s`, `in 3h 2m`, `in 2d 4h`."""
    if seconds < 1:
        return "in <1s"
    days, left = divmod(int(seconds), 86_400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next(i for i, (n, _) in enumerate(parts) if n)
    shown = [f"{n}{unit}" for n, unit in parts[first : first + 2] if n]
    return "in " + " ".join(shown)
