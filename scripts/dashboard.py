#!/usr/bin/env python3
"""The live terminal view of jobs and workers: `queuectl dashboard`. Ctrl+C quits.

Example: python scripts/dashboard.py --interval 1
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/dashboard.py")

from queuectl.cli import main as queuectl  # noqa: E402


def to_queuectl(argv: list[str] | None) -> list[str]:
    """Parse this script's options into the equivalent queuectl command line."""
    parser = argparse.ArgumentParser(
        description="Show counts by state, workers and recent jobs, refreshed until Ctrl+C.",
    )
    parser.add_argument("--db", metavar="URL", help="store URL (default: as queuectl chooses)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )
    args = parser.parse_args(argv)
    prefix = ["--db", args.db] if args.db else []
    return prefix + ["dashboard", "--interval", str(args.interval)]


if __name__ == "__main__":
    sys.exit(queuectl(to_queuectl(None)))
