"""Which store to use: --db, then QUEUECTL_DB, then MONGODB_URI, then the default file."""

from __future__ import annotations

import os
from pathlib import Path


def load_dotenv_file() -> None:
    """Read ./.env if present; real environment variables win over it."""
    path = Path.cwd() / ".env"
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def home_dir(create: bool = True) -> Path:
    """$QUEUECTL_HOME (default ~/.queuectl), created with mode 0700 on first use."""
    home = Path(os.environ.get("QUEUECTL_HOME") or Path.home() / ".queuectl").expanduser()
    if create and not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)  # mkdir's mode is filtered by the umask; chmod is not
    return home


def resolve_url(db_option: str | None) -> str:
    """The store URL by SPEC §2 precedence."""
    if db_option is not None and not db_option.strip():
        from .errors import InvalidInput

        raise InvalidInput("--db needs a URL: mongodb://…, sqlite:///file.db or a file path")
    for candidate in (db_option, os.environ.get("QUEUECTL_DB"), os.environ.get("MONGODB_URI")):
        if candidate and candidate.strip():
            return candidate.strip()
    return str(home_dir() / "queue.db")
