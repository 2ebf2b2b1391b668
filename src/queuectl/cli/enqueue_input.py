"""Turn what the user typed (SPEC argument or command words, options, a JSON lines file) into
job specs.

The rule, in full: words after `--` are one command, joined by spaces (as Pueue's `add` joins
them). Otherwise a SPEC that starts with `{` is one JSON object; any other JSON (an array, a
string, null, a number) is refused; anything else is a command, its words joined by spaces.
`true` and `false` are the shell's commands, not JSON. Wherever a guess fails, the error says
to use `-c 'COMMAND'` or `--`.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, Iterator, Sequence

from ..errors import InvalidInput
from ..models import shown

HINT = "for a shell command use -c 'COMMAND' or put the command after --"
BOM = "\ufeff"


def split_at_dashes(
    words: Sequence[str], args: Sequence[str]
) -> tuple[list[str], list[str] | None]:
    """The words typed before `--` and those after it (None when there was no `--`).

    Click hands the command both in one list; `args` (what was typed after the command's name)
    tells where `--` stood."""
    if "--" not in args:
        return list(words), None
    after = list(args[args.index("--") + 1 :])
    if len(after) > len(words) or list(words[len(words) - len(after) :]) != after:
        return list(words), None  # that `--` was an option's value (`--id --`), no separator
    return list(words[: len(words) - len(after)]), after


def read_words(
    before: list[str], after: list[str] | None, command: str | None
) -> dict[str, Any] | None:
    """The spec the positional words give (None when there are none); see the module's rule.
    `command` is the -c option, which may only override the command of a JSON SPEC."""
    if after is not None:
        if before:
            raise InvalidInput(
                "words before -- and after it: put the whole command after --, e.g. "
                f"queuectl enqueue -- {_quoted(before + after)}"
            )
        if command is not None and after:
            raise InvalidInput("a command after -- and -c: give the command once")
        return {"command": " ".join(after)} if after else None
    if not before:
        return None
    text = " ".join(before)
    if text.lstrip().startswith("{"):
        if len(before) > 1:
            raise InvalidInput(
                f"a JSON SPEC is one argument, but {len(before) - 1} more word(s) followed "
                f"it: quote the SPEC; {HINT}"
            )
        return parse_object(text, "SPEC", hint=True)
    if command is not None:
        raise InvalidInput(
            f"-c takes the whole command as one argument; {shown(text, 40)} was left over: "
            f"write -c {shlex.quote(command + ' ' + text)} or "
            f"queuectl enqueue -- {command} {_quoted(before)}"
        )
    kind = _json_kind(text)
    if kind:
        raise InvalidInput(f"SPEC is {kind}, not an object; {HINT}")
    return {"command": text}


def _quoted(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _json_kind(text: str) -> str | None:
    """What JSON value other than an object the text is, or None if it is no JSON at all."""
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, bool):
        return None  # `true` and `false`: the shell's commands
    if value is None:
        return "JSON null"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    return "a JSON number" if isinstance(value, (int, float)) else None


def parse_object(text: str, where: str, *, hint: bool = False) -> dict[str, Any]:
    """One JSON object, no key repeated. `where` names it in errors ("SPEC", "line 3");
    `hint` adds how to give a shell command instead."""
    try:
        value = _DECODER.decode(text)
    except _RepeatedKey as exc:
        raise InvalidInput(f"{where} has the key {shown(exc.key, 40)} twice") from None
    except (ValueError, RecursionError) as exc:
        if hint:
            raise InvalidInput(
                f"{where} starts with {{ but is not valid JSON ({exc}); {HINT}"
            ) from None
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice")
        self.key = key


def _without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json keeps the last of repeated keys: `{"command":"echo","command":"rm"}` would run rm."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for every line: json.loads with options builds a new one per call, which was
# a third of the time of a 100,000-line batch.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_without_repeats)


def merge_options(spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Options given on the command line override the same fields of the spec."""
    merged = dict(spec)
    merged.update({k: v for k, v in options.items() if v is not None})
    if options.get("run_at") is not None and options.get("delay") is None:
        merged.pop("delay", None)
    if options.get("delay") is not None and options.get("run_at") is None:
        merged.pop("run_at", None)
    return merged


def read_batch(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (label, spec) for every non-blank line of a JSON lines file ('-' = stdin).
    A UTF-8 byte order mark at the start (Windows editors write one) is skipped."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"line {line}: not valid UTF-8") from None
    text = text[len(BOM) :] if text.startswith(BOM) else text
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 and other
    # characters that JSON allows raw inside a string. A "\r" left by CRLF is JSON whitespace.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield f"line {number}", parse_object(line, f"line {number}")
