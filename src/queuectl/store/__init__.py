"""Open the store a URL names (SPEC §2)."""

from __future__ import annotations

import os
import re

from ..errors import InvalidInput
from .base import Store

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, or a bare path, to a file path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise InvalidInput(
                f"bad SQLite URL {url!r}; use sqlite:///relative.db or sqlite:////absolute.db"
            )
        path = rest[1:]
    else:
        path = url
    return os.path.expanduser(path)


def open_store(url: str) -> Store:
    """Build the store for `url`. Connects lazily: nothing is touched until first use."""
    if url.startswith(MONGO_SCHEMES):
        from .mongo import connect

        return connect(url, mask_url(url))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url) and not url.startswith("sqlite://"):
        raise InvalidInput(
            f"unsupported store URL {mask_url(url)!r}; use mongodb://, mongodb+srv://, "
            "sqlite:/// or a file path"
        )
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url))
