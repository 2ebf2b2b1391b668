"""`queuectl web`: the dashboard, JSON API and /metrics. Its libraries load only when it runs."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import QueuectlError
from .context import command_context

WEB_LIBRARIES = ("starlette", "uvicorn", "jinja2", "prometheus_client", "anyio", "h11")


def web(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on; any but loopback needs --token."
    ),
    port: int = typer.Option(8080, help="Port to listen on (0 = any free port)."),
    token: Optional[str] = typer.Option(
        None,
        "--token",
        envvar="QUEUECTL_WEB_TOKEN",
        show_envvar=True,
        help="Require this token on every request (bearer header or login form).",
    ),
) -> None:
    """Serve the web dashboard, JSON API and /metrics until Ctrl+C.

    \b
    Example: queuectl web --port 8080
    """
    from ..web.binding import check_bind

    check_bind(host, port, token)
    try:
        from ..web.server import serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in WEB_LIBRARIES:
            raise
        raise QueuectlError(
            f"queuectl web needs libraries that are not installed ({exc.name}): "
            "pip install 'queuectl[web]'"
        ) from None
    app = command_context(ctx)
    app.config  # noqa: B018 - a bad URL or an unreachable store: one error, now
    serve(app, host, port, token)


def register(app: typer.Typer) -> None:
    """Add the `web` command to the root app."""
    app.command("web")(web)
