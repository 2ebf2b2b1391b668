"""Errors as the API and the pages answer them: JSON `{"error": …}` for /api/ and /metrics,
an HTML page elsewhere; the status code follows the CLI's error type."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidInput, JobNotFound, QueuectlError, StoreUnavailable
from .templating import page

MACHINE_PATHS = ("/api/", "/metrics", "/static/")


class BodyTooLarge(InvalidInput):
    """A request body past the limit (HTTP 413)."""

    http_status = 413


def status_of(exc: QueuectlError) -> int:
    """400 invalid input, 404 unknown id, 409 duplicate id or wrong state, 503 store down."""
    special = getattr(exc, "http_status", None)
    if isinstance(special, int):
        return special
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, StoreUnavailable):
        return 503
    return 409  # DuplicateJob, NotInDlq and any other "valid but could not be done"


def wants_json(request: Request) -> bool:
    """API clients and scrapers get JSON errors; browsers on pages get HTML."""
    return request.url.path.startswith(MACHINE_PATHS)


def error_response(request: Request, status: int, message: str) -> Response:
    """One error, in the form the caller reads."""
    if wants_json(request):
        return JSONResponse({"error": message}, status)
    return page(request, "error.html", {"status": status, "message": message}, status, live=False)


def on_queuectl_error(request: Request, exc: Exception) -> Response:
    """Exception handler for every typed error a manager raises."""
    assert isinstance(exc, QueuectlError)
    return error_response(request, status_of(exc), str(exc))


def on_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer like every other error."""
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def unauthorised(request: Request) -> Response:
    """401: the login form for a browser asking for a page, JSON for everything else."""
    if wants_json(request) or request.method != "GET":
        response: Response = JSONResponse(
            {
                "error": "authentication required: send the server's token as "
                "'Authorization: Bearer <token>'"
            },
            401,
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="queuectl"'
        return response
    return login_page(request, 401, None)


def login_page(
    request: Request, status: int, error: str | None, target: str | None = None
) -> Response:
    """The login form; it sends the browser back to the page it asked for."""
    if target is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/" if request.url.path == "/login" else wanted
    return page(
        request,
        "login.html",
        {"error": error, "next": target},
        status,
        live=False,
    )
