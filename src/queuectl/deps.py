"""What queuectl needs installed, checked by the checkout's launchers (bin/queuectl and
scripts/) before they import it: a Python without these gets one line saying what to do,
not a traceback. Uses only the standard library."""

from __future__ import annotations

import sys
from importlib.util import find_spec

# import name -> the package that provides it
REQUIRED = {
    "typer": "typer",
    "pymongo": "pymongo",
    "dotenv": "python-dotenv",
    "tabulate": "tabulate",
}


def require_dependencies(prog: str = "queuectl") -> None:
    """Exit 1 with one `Error:` line when this Python lacks a runtime dependency."""
    missing = [package for module, package in REQUIRED.items() if find_spec(module) is None]
    if missing:
        sys.stderr.write(
            f"Error: {prog} needs {', '.join(missing)}, which {sys.executable} does not have: "
            "run 'make demo' (it builds .venv; then use .venv/bin/queuectl) "
            "or pip install -e .\n"
        )
        sys.exit(1)
