"""Which store to use: --db, then QUEUECTL_DB, then MONGODB_URI, then the default file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from .errors import QueuectlError

FIX_HOME = "set QUEUECTL_HOME to a directory you can write"


def load_dotenv_file() -> None:
    """Read ./.env if present; real environment variables win over it."""
    path = Path.cwd() / ".env"
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def home_path() -> Path:
    """$QUEUECTL_HOME (default ~/.queuectl), checked but not created. Raises a QueuectlError
    naming the setting when it cannot be a directory."""
    value = os.environ.get("QUEUECTL_HOME")
    if value:
        home = Path(value).expanduser()
    else:
        # An empty HOME would put the store in /.queuectl (or the current directory):
        # never guess where a queue lives.
        user_home = os.environ.get("HOME")
        if user_home is not None and not user_home.strip():
            raise QueuectlError(f"HOME is empty, so there is no default store: {FIX_HOME}")
        try:
            home = Path.home() / ".queuectl"
        except RuntimeError:  # no HOME and no password entry
            raise QueuectlError(f"no home directory is known: {FIX_HOME}") from None
    _check_can_be_directory(home)
    return home


def _check_can_be_directory(home: Path) -> None:
    """Raise when `home`, or the nearest part of it that exists, is not a directory."""
    for part in (home, *home.absolute().parents):
        if part.exists():
            if not part.is_dir():
                where = "is" if part == home else f"cannot be created: {part} is"
                raise QueuectlError(
                    f"QUEUECTL_HOME {home} {where} not a directory; "
                    "set QUEUECTL_HOME to a directory (or move that file away)"
                )
            return


def home_dir(create: bool = True) -> Path:
    """$QUEUECTL_HOME (default ~/.queuectl), created with mode 0700 on first use."""
    home = home_path()
    if create and not home.is_dir():
        try:
            home.mkdir(parents=True, exist_ok=True)
            os.chmod(home, 0o700)  # mkdir's mode is filtered by the umask; chmod is not
        except OSError as exc:
            reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else None
            raise QueuectlError(
                f"cannot create QUEUECTL_HOME {home}: {reason or exc.strerror or exc}; {FIX_HOME}"
            ) from None
    return home


def resolve_url(db_option: str | None) -> str:
    """The store URL by SPEC §2 precedence. Creates nothing: a store is created by its first
    write, so a read of a queue that does not exist yet leaves no file behind."""
    if db_option is not None and not db_option.strip():
        from .errors import InvalidInput

        raise InvalidInput("--db needs a URL: mongodb://…, sqlite:///file.db or a file path")
    for candidate in (db_option, os.environ.get("QUEUECTL_DB"), os.environ.get("MONGODB_URI")):
        if candidate and candidate.strip():
            return candidate.strip()
    return str(home_path() / "queue.db")


def home_maker(path: str) -> Callable[[], object] | None:
    """For the default SQLite file in QUEUECTL_HOME, what creates the home on the first
    write. Any other missing directory is an error: a mistyped path is not a new empty
    queue. Handed to `open_store`, which knows nothing of the settings."""
    try:
        home = home_path()
    except QueuectlError:
        return None  # a path given outright needs no home
    if os.path.abspath(os.path.dirname(path)) != os.path.abspath(home):
        return None
    return home_dir
