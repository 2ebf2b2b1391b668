#!/usr/bin/env python3
"""Add one job to the queue: a thin wrapper over `queuectl enqueue`.

Example: python scripts/add_job.py --priority 5 --max-retries 2 echo hello
         python scripts/add_job.py '{"id":"job1","command":"sleep 2"}'
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/add_job.py")

from queuectl.cli import main as queuectl  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options of `queuectl enqueue` that a single job needs."""
    parser = argparse.ArgumentParser(
        description="Add a job to the queue. COMMAND is a shell command (its words are joined "
        'with spaces) or one JSON object such as \'{"command": "echo hi"}\'. Put -- before '
        "a command whose words start with a dash: add_job.py -- ls -la",
    )
    parser.add_argument("--db", metavar="URL", help="store URL (default: as queuectl chooses)")
    parser.add_argument("--id", help="job id (default: generated)")
    parser.add_argument("--priority", type=int, help="higher runs first (default 0)")
    parser.add_argument("--delay", type=float, help="seconds to wait before it may run")
    parser.add_argument("--max-retries", type=int, help="retries after the first attempt")
    parser.add_argument("--timeout", type=float, help="seconds before the job is killed")
    parser.add_argument("--json", action="store_true", help="print the job as JSON")
    parser.add_argument("command", nargs="+", metavar="COMMAND", help="the shell command")
    return parser.parse_args(argv)


def to_queuectl(args: argparse.Namespace) -> list[str]:
    """The equivalent queuectl command line."""
    argv = (["--db", args.db] if args.db else []) + ["enqueue"]
    for option in ("id", "priority", "delay", "max_retries", "timeout"):
        value = getattr(args, option)
        if value is not None:
            argv += ["--" + option.replace("_", "-"), str(value)]
    argv += ["--json"] if args.json else []
    text = " ".join(args.command)
    if text.lstrip().startswith("{"):
        return argv + [text]  # a JSON SPEC: enqueue reads it only before "--"
    # After "--" the words are the command, even one that starts with a dash.
    return argv + ["--", *args.command]


if __name__ == "__main__":
    sys.exit(queuectl(to_queuectl(parse_args(None))))
