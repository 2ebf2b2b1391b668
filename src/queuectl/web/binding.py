"""Where `queuectl web` may listen, and what makes a token. Pure: no web library needed, so
the CLI checks its options before importing any."""

from __future__ import annotations

import ipaddress
import re

from ..errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "QUEUECTL_WEB_TOKEN"
# Printable ASCII without spaces: it travels in an HTTP header (Authorization: Bearer …).
TOKEN_PATTERN = re.compile(r"[!-~]{16,512}")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether `host` is `localhost` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, token: str | None) -> None:
    """Refuse a port out of range, a malformed token, and any address but loopback without a
    token: anyone who can reach that address could otherwise run commands through enqueue."""
    if not 0 <= port <= 65535:
        raise InvalidInput(f"--port must be between 0 and 65535 (0 = any free port), got {port}")
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise InvalidInput(
            "--token must be 16-512 printable ASCII characters without spaces; make one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if token is None and not is_loopback(host):
        raise InvalidInput(
            f"refusing to listen on {host!r} without a token: give --token or set {TOKEN_ENV} "
            "(without one, only a loopback address such as 127.0.0.1 is allowed)"
        )


def local_host_names(host: str) -> list[str]:
    """Host names a browser may send to a loopback server without a token. Any other name
    (a DNS rebinding attack: evil.example resolving to 127.0.0.1) is refused."""
    return sorted({*LOOPBACK_NAMES, host.strip("[]").lower()})
