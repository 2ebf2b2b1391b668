"""What every route shares: the App (store and managers), templates and secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
from starlette.requests import Request

from ..app import App
from ..jobs import JobManager
from ..schedules import ScheduleManager
from ..store.base import Store
from ..workers import WorkerManager
from .counts import JobCounts
from .finished import FinishedJobs
from .purge import DeadPurge
from .searches import RecentSearches
from .security import Guard


@dataclass
class Web:
    """The application's state (one per process, shared by every request thread)."""

    queue: App
    guard: Guard
    templates: jinja2.Environment
    finished: FinishedJobs = field(init=False)
    purge: DeadPurge = field(init=False)
    counts: JobCounts = field(init=False)
    searches: RecentSearches = field(default_factory=RecentSearches)

    def __post_init__(self) -> None:
        self.finished = FinishedJobs(self.queue.jobs, self.queue.clock)
        self.purge = DeadPurge(self.queue.jobs)
        self.counts = JobCounts(self.queue.jobs)

    @property
    def store(self) -> Store:
        """The store the App opened."""
        return self.queue.store

    def clock(self) -> float:
        """The App's time."""
        return self.queue.clock()

    def jobs(self) -> JobManager:
        """The JobManager (every read and change of jobs goes through it)."""
        return self.queue.jobs

    def workers(self) -> WorkerManager:
        """The WorkerManager."""
        return self.queue.workers

    def schedules(self) -> ScheduleManager:
        """The ScheduleManager."""
        return self.queue.schedules


def web_of(request: Request) -> Web:
    """The Web of the application serving this request."""
    web: Web = request.app.state.web
    return web
