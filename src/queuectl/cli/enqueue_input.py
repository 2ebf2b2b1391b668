"""Turn what the user typed (SPEC argument, options, a JSON lines file) into job specs."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterator

from ..errors import InvalidInput


def read_spec(spec: str | None) -> dict[str, Any]:
    """A SPEC that starts with `{` is a JSON object; anything else is a plain command."""
    if spec is None:
        return {}
    if spec.lstrip().startswith("{"):
        return _parse_object(spec, "SPEC")
    return {"command": spec}


def _parse_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for every line: json.loads with options builds a new one per call, which was
# a third of the time of a 100,000-line batch.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


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
    """Yield (label, spec) for every non-blank line of a JSON lines file ('-' = stdin)."""
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
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 and other
    # characters that JSON allows raw inside a string. A "\r" left by CRLF is JSON whitespace.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield f"line {number}", _parse_object(line, f"line {number}")
