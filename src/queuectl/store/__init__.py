"""Open the store a URL names (SPEC §2)."""

from __future__ import annotations

import os
import re

from ..errors import InvalidInput
from .base import Store

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://, user-info, rest) of a URL that has user-info, else None. The user-info
    ends at the URL's last '@', so a password with an unescaped '@', '/' or '?' is still
    masked whole (an '@' in the options can only make the mask wider, never leak)."""
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)(.*)$", url, re.DOTALL)
    if not match:
        return None
    scheme, rest = match.groups()
    at = rest.rfind("@")
    if at == -1:
        return None
    return scheme, rest[:at], rest[at:]


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    parts = _split_userinfo(url)
    if parts is None:
        return url
    scheme, userinfo, rest = parts
    user, has_password, _ = userinfo.partition(":")
    return f"{scheme}{user}{':***' if has_password else ''}{rest}"


def url_password(url: str) -> str | None:
    """The URL's password, so messages from a driver can be scrubbed of it."""
    parts = _split_userinfo(url)
    if parts is None or ":" not in parts[1]:
        return None
    return parts[1].split(":", 1)[1] or None


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, or a bare path, to a file path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
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

        return connect(url, mask_url(url), url_password(url))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url) and not url.startswith("sqlite://"):
        raise InvalidInput(
            f"unsupported store URL {mask_url(url)!r}; use mongodb://, mongodb+srv://, "
            "sqlite:/// or a file path"
        )
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url))
