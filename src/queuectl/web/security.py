"""Who may use the server and how: the token (bearer header or login cookie), CSRF tokens on
forms, same-origin checks on every change, and headers that keep job text inert."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Callable, Sequence
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

SESSION_COOKIE = "queuectl_session"
CSRF_COOKIE = "queuectl_csrf"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_PATH = "/login"

Respond = Callable[[Request, int, str], Response]
Unauthorised = Callable[[Request], Response]


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


class Guard:
    """The server's secrets and the checks made with them."""

    def __init__(self, token: str | None, allowed_hosts: Sequence[str] | None = None) -> None:
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        # With a token, both secrets derive from it: cookies and open forms survive a
        # restart, and changing the token revokes every login.
        if token is None:
            self._csrf_key = secrets.token_bytes(32)
            self._session = ""
        else:
            self._csrf_key = hmac.new(token.encode(), b"queuectl web csrf", "sha256").digest()
            self._session = _mac(token.encode(), "queuectl web session")

    def host_allowed(self, request: Request) -> bool:
        """Without a token only loopback names may be asked for (no DNS rebinding)."""
        if self.allowed_hosts is None:
            return True
        return host_name(request.headers.get("host", "")) in self.allowed_hosts

    def authorised(self, request: Request) -> bool:
        """No token set, or the request carries it (bearer header or login cookie)."""
        if self.token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _equal(value.strip(), self.token):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and _equal(cookie, self._session)

    def token_matches(self, given: str) -> bool:
        """What the login form checks."""
        return self.token is not None and _equal(given, self.token)

    def session_cookie(self) -> str:
        """The login cookie's value: derived from the token, never the token itself."""
        return self._session

    def csrf_token(self, cookie: str) -> str:
        """The token forms carry: the browser's CSRF cookie signed with the server's key,
        so a cookie planted by another site cannot be paired with a forged form."""
        return _mac(self._csrf_key, cookie)

    def csrf_ok(self, request: Request, given: str | None) -> bool:
        """Whether a form's token matches this browser's CSRF cookie."""
        cookie = request.cookies.get(CSRF_COOKIE)
        return bool(cookie and given) and _equal(given or "", self.csrf_token(cookie or ""))


def host_name(host: str) -> str:
    """The name in a Host header, without the port (IPv6 brackets removed), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


DEFAULT_PORTS = {"http": "80", "https": "443"}


def _authority(netloc: str, scheme: str | None = None) -> str:
    """host[:port] in lower case, without the scheme's default port (either default when
    the scheme is unknown, as in a Host header)."""
    netloc = netloc.strip().lower()
    host, colon, port = netloc.rpartition(":")
    defaults = {DEFAULT_PORTS[scheme]} if scheme else set(DEFAULT_PORTS.values())
    if colon and "]" not in port and port in defaults:
        return host
    return netloc


def same_origin(request: Request) -> bool:
    """A change may come only from this server's own pages (or from a client that is no
    browser and sends no Origin). Behind a proxy, it must pass the Host header on."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed frame, a file:// page) names no server
    host = request.headers.get("host", "")
    return _authority(parts.netloc, parts.scheme) == _authority(host)


def is_json(request: Request) -> bool:
    """Content-Type application/json (any parameters): a cross-site form cannot send it
    without a CORS preflight, which this server never grants."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def content_security_policy(nonce: str) -> str:
    """Scripts only from our own files; the one inline style block (the login page) by nonce."""
    return (
        "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


class SecurityMiddleware(BaseHTTPMiddleware):
    """Runs before every route: host, token, origin and content-type checks; the CSRF
    cookie; security headers on every response."""

    def __init__(
        self, app: ASGIApp, guard: Guard, respond: Respond, unauthorised: Unauthorised
    ) -> None:
        super().__init__(app)
        self.guard = guard
        self.respond = respond
        self.unauthorised = unauthorised

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        nonce = secrets.token_urlsafe(16)
        request.state.nonce = nonce
        cookie = request.cookies.get(CSRF_COOKIE, "")
        new_cookie = None
        if len(cookie) < 32:
            cookie = new_cookie = secrets.token_urlsafe(32)
        request.state.csrf = self.guard.csrf_token(cookie)
        response = await self._checked(request, call_next)
        if new_cookie and response.headers.get("content-type", "").startswith("text/html"):
            response.set_cookie(
                CSRF_COOKIE,
                new_cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        headers = response.headers
        headers["Content-Security-Policy"] = content_security_policy(nonce)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "same-origin"
        headers.setdefault("Cache-Control", "no-store")
        return response

    async def _checked(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        changes = request.method not in SAFE_METHODS
        if not self.guard.host_allowed(request):
            return self.respond(request, 400, "this server answers only to a loopback host name")
        if not self.guard.authorised(request) and not (changes and request.url.path == LOGIN_PATH):
            return self.unauthorised(request)
        if changes and not same_origin(request):
            return self.respond(request, 403, "cross-site request refused")
        if changes and request.url.path.startswith("/api/") and not is_json(request):
            return self.respond(
                request, 403, "a POST to /api/ needs Content-Type: application/json"
            )
        return await call_next(request)
