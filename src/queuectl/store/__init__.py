"""Open the store a URL names (SPEC §2)."""

from __future__ import annotations

import os
import re
from typing import Callable

from ..errors import InvalidInput
from .base import Store

# Given the SQLite file's path, what creates its directory on the first write (None: a
# missing directory is an error). The caller knows the settings; the store does not.
HomeMaker = Callable[[str], Callable[[], object] | None]

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# Query options whose value is a secret (compared in lower case): passwords and tokens of
# every kind, and authMechanismProperties, which may carry an AWS session token.
SECRET_OPTION_WORDS = ("password", "secret", "token")
SECRET_OPTIONS = ("authmechanismproperties",)
MEMORY_HINT = (
    "is an in-memory SQLite database: every queuectl command and every worker is a process "
    "of its own, so its jobs would vanish when the command ends; give a file path instead"
)


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


def _is_secret_option(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_OPTIONS or any(word in lowered for word in SECRET_OPTION_WORDS)


def _split_query(url: str) -> tuple[str, list[str]]:
    """(everything before the options, the options as `key=value` strings). The options
    start at the first '?' after the user-info, so a '?' in a password is not one."""
    parts = _split_userinfo(url)
    head, tail = (parts[0] + parts[1], parts[2]) if parts else ("", url)
    base, mark, query = tail.partition("?")
    if not mark:
        return url, []
    return head + base + "?", re.split(r"([&;])", query)


def _mask_query(url: str) -> str:
    base, pieces = _split_query(url)
    if not pieces:
        return url
    masked = []
    for piece in pieces:
        key, eq, _value = piece.partition("=")
        masked.append(f"{key}=***" if eq and _is_secret_option(key) else piece)
    return base + "".join(masked)


def mask_url(url: str) -> str:
    """The URL with its password and every secret option replaced by ***, safe to print."""
    parts = _split_userinfo(url)
    if parts is not None:
        scheme, userinfo, rest = parts
        user, has_password, _ = userinfo.partition(":")
        url = f"{scheme}{user}{':***' if has_password else ''}{rest}"
    return _mask_query(url)


def url_password(url: str) -> str | None:
    """The URL's password, so messages from a driver can be scrubbed of it."""
    parts = _split_userinfo(url)
    if parts is None or ":" not in parts[1]:
        return None
    return parts[1].split(":", 1)[1] or None


def url_secrets(url: str) -> list[str]:
    """Every secret the URL holds (its password, the values of secret options and their
    parts), so messages from a driver can be scrubbed of each."""
    found = [p for p in [url_password(url)] if p]
    for piece in _split_query(url)[1]:
        key, eq, value = piece.partition("=")
        if eq and value and _is_secret_option(key):
            found.append(value)
            # AWS_SESSION_TOKEN:abc,SERVICE_NAME:x -> a driver may quote "abc" alone.
            found += [v for item in value.split(",") for v in item.split(":")[1:] if v]
    return found


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, or a bare path, to a file path.
    Refuses what cannot hold a shared queue (in-memory databases) and SQLite's own URI
    filenames, which would otherwise be taken for odd file names."""
    lowered = url.lower()
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if not rest.startswith("///") or rest == "///":
            raise InvalidInput(
                f"bad SQLite URL {url!r}; use sqlite:///relative.db or sqlite:////absolute.db"
            )
        path = rest[3:]
        if "?" in path:
            raise InvalidInput(f"bad SQLite URL {url!r}: queuectl's SQLite URLs take no options")
    elif lowered.startswith("file:"):
        if ":memory:" in lowered or "mode=memory" in lowered:
            raise InvalidInput(f"store {url!r} {MEMORY_HINT}")
        raise InvalidInput(
            f"store {url!r} looks like an SQLite URI filename, which queuectl does not take; "
            "give a file path, or sqlite:///path"
        )
    elif lowered.startswith(("mongodb:", "mongodb+srv:")):
        raise InvalidInput(f"bad MongoDB URL {mask_url(url)!r}; it starts mongodb://host/…")
    else:
        path = url
    if path == ":memory:":
        raise InvalidInput(f"store {url!r} {MEMORY_HINT}")
    return os.path.expanduser(path)


def open_store(url: str, home_maker: HomeMaker | None = None) -> Store:
    """Build the store for `url`. Connects lazily: nothing is touched until first use, and
    an SQLite file is created only by the first write."""
    if url.startswith(MONGO_SCHEMES):
        from .mongo import connect

        return connect(url, mask_url(url), url_secrets(url))
    if SCHEME.match(url) and not url.startswith("sqlite://"):
        raise InvalidInput(
            f"unsupported store URL {mask_url(url)!r}; use mongodb://, mongodb+srv://, "
            "sqlite:/// or a file path"
        )
    from .sqlite import SqliteStore

    path = sqlite_path(url)
    return SqliteStore(path, make_directory=home_maker(path) if home_maker else None)
