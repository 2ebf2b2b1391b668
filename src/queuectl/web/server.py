"""Run the application with uvicorn on a socket we bind ourselves, so that a taken port is one
`Error:` line and `--port 0` can say which port it got."""

from __future__ import annotations

import signal
import socket

import uvicorn

from ..app import App
from ..errors import QueuectlError
from .app import create_app
from .binding import is_loopback, local_host_names


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise QueuectlError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def serve(queue: App, host: str, port: int, token: str | None) -> None:
    """Serve until Ctrl+C or SIGTERM (uvicorn finishes the requests in flight)."""
    allowed = local_host_names(host) if token is None and is_loopback(host) else None
    app = create_app(queue, token=token, allowed_hosts=allowed, follow=True)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"queuectl web: http://{shown}:{bound}/ serving {queue.store.url}"
        f"{' (token required)' if token else ''}; Ctrl+C stops",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-Proto from a proxy on 127.0.0.1: Secure cookies
        lifespan="on",
    )
    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again for
    # the previous handler: both become KeyboardInterrupt here, and the command exits 0.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    print("queuectl web: stopped", flush=True)
