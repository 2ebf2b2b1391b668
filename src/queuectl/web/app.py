"""The application: routes, middleware, error handlers, and the follower of finished jobs."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..app import App
from ..errors import QueuectlError
from . import api, pages
from .context import Web
from .metrics import metrics, registry_for
from .responses import error_response, on_http_error, on_queuectl_error, unauthorised
from .security import Guard, SecurityMiddleware
from .templating import environment

STATIC = Path(__file__).with_name("static")
FOLLOW_EVERY = 5.0  # seconds between background reads of finished jobs


def routes() -> list[BaseRoute]:
    """Every route; SPEC §7.7 names the pages and API paths."""
    return [
        Route("/", pages.overview),
        Route("/jobs", pages.jobs_page),
        Route("/jobs/{id}", pages.job_page),
        Route("/jobs/{id}/retry", pages.retry_form, methods=["POST"]),
        Route("/jobs/{id}/cancel", pages.cancel_form, methods=["POST"]),
        Route("/dlq", pages.dlq_page),
        Route("/dlq/retry-all", pages.retry_all_form, methods=["POST"]),
        Route("/dlq/purge", pages.purge_dead_form, methods=["POST"]),
        Route("/workers", pages.workers_page),
        Route("/schedules", pages.schedules_page),
        Route("/login", pages.login_done),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/api/status", api.api_status),
        Route("/api/stats", api.api_stats),
        Route("/api/jobs", api.api_jobs),
        Route("/api/jobs", api.api_enqueue, methods=["POST"]),
        Route("/api/jobs/{id}", api.api_job),
        Route("/api/jobs/{id}/retry", api.api_retry, methods=["POST"]),
        Route("/api/jobs/{id}/cancel", api.api_cancel, methods=["POST"]),
        Route("/api/workers", api.api_workers),
        Route("/api/schedules", api.api_schedules),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(
    queue: App,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    follow: bool = False,
) -> Starlette:
    """The web application over the App's store and managers. With `token`, every request
    must carry it; with `allowed_hosts`, other Host headers are refused; `follow` reads
    finished jobs in the background so /metrics misses none between scrapes (the chart is
    counted by the store and needs no following)."""
    web = Web(queue, Guard(token, allowed_hosts), environment())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=_follow, args=(web, stop), daemon=True)
        if follow:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if follow:
                thread.join(timeout=10)

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(
                SecurityMiddleware,
                guard=web.guard,
                respond=error_response,
                unauthorised=unauthorised,
            )
        ],
        exception_handlers={QueuectlError: on_queuectl_error, HTTPException: on_http_error},
        lifespan=lifespan,
    )
    app.state.web = web
    app.state.registry = registry_for(web)
    return app


def _follow(web: Web, stop: threading.Event) -> None:
    while not stop.wait(FOLLOW_EVERY):
        try:
            web.finished.refresh()
        except QueuectlError:
            pass  # the store is away: pages say so; the next read catches up
