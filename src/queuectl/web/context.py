"""What every route shares: the store, the managers over it, templates and secrets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import jinja2
from starlette.requests import Request

from ..jobs import JobManager
from ..store.base import Store
from ..workers import WorkerManager
from .finished import FinishedJobs
from .security import Guard


@dataclass
class Web:
    """The application's state (one per process, shared by every request thread)."""

    store: Store
    guard: Guard
    templates: jinja2.Environment
    clock: Callable[[], float] = time.time
    finished: FinishedJobs = field(init=False)

    def __post_init__(self) -> None:
        self.finished = FinishedJobs(self.jobs(), self.clock)

    def jobs(self) -> JobManager:
        """A JobManager over the store (cheap: build one per request)."""
        return JobManager(self.store, self.clock)

    def workers(self) -> WorkerManager:
        """A WorkerManager over the store."""
        return WorkerManager(self.store, self.clock)


def web_of(request: Request) -> Web:
    """The Web of the application serving this request."""
    web: Web = request.app.state.web
    return web
