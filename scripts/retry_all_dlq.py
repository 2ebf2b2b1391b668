#!/usr/bin/env python3
"""Put every job of the dead letter queue back to pending: `queuectl dlq retry --all`.

Example: python scripts/retry_all_dlq.py --db sqlite:///queue.db --list
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/retry_all_dlq.py")

from queuectl.cli import main as queuectl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """List the DLQ (when asked), then retry everything in it; queuectl's exit code."""
    parser = argparse.ArgumentParser(
        description="Retry every dead job: each goes back to pending with attempts reset "
        "(its last_error is kept). Prints how many were retried.",
    )
    parser.add_argument("--db", metavar="URL", help="store URL (default: as queuectl chooses)")
    parser.add_argument("--list", action="store_true", help="list the DLQ before retrying")
    args = parser.parse_args(argv)
    prefix = ["--db", args.db] if args.db else []
    if args.list:
        code = queuectl(prefix + ["dlq", "list"])
        if code:
            return code
    return queuectl(prefix + ["dlq", "retry", "--all"])


if __name__ == "__main__":
    sys.exit(main())
