"""App: builds the store, the typed config and the managers once per process, lazily.

Nothing is opened until a command needs it, so `queuectl --help` never touches a store.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Sequence

from .config import Config, ConfigManager
from .jobs import JobManager
from .sight import Sight, sighted
from .store.base import Store
from .workers import WorkerManager

if TYPE_CHECKING:
    from .schedules import ScheduleManager
    from .worker import Worker


class App:
    """The store a URL names (or one given), and the managers over it.

    `db` is the --db option (None: the environment decides, SPEC §2); `store` a store already
    open (tests, the supervisor); `clock` the time every manager reads.
    """

    def __init__(
        self,
        db: str | None = None,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.clock = clock
        self._store = store
        # Every store call of this process reports here: the reaper trusts only time in
        # which it saw the store (SPEC §8).
        self.sight = Sight(clock)
        self._sighted: Store | None = None

    @cached_property
    def url(self) -> str:
        """The store URL by SPEC §2 precedence (the given store's, when one was given)."""
        if self._store is not None:
            return self._store.url
        from .settings import resolve_url

        return resolve_url(self.db)

    @property
    def store(self) -> Store:
        """The store, opened on first use (every call reporting to `sight`)."""
        if self._sighted is None:
            if self._store is None:
                from .settings import home_maker
                from .store import open_store

                self._store = open_store(self.url, home_maker)
            self._sighted = sighted(self._store, self.sight)
        return self._sighted

    @cached_property
    def configs(self) -> ConfigManager:
        """Reads and writes the shared configuration."""
        return ConfigManager(self.store)

    @cached_property
    def config(self) -> Config:
        """The configuration as first read in this process (long-lived code re-reads it
        through `configs.load()`)."""
        return self.configs.load()

    @cached_property
    def jobs(self) -> JobManager:
        """Every job transition."""
        return JobManager(
            self.store,
            self.configs,
            clock=self.clock,
            wake=self._wake_workers,
            nudge_cancel=self._nudge_cancel,
        )

    @cached_property
    def workers(self) -> WorkerManager:
        """The registry of workers, stop requests, liveness and the reaper."""
        return WorkerManager(
            self.store, self.configs, self.jobs, clock=self.clock, sight=self.sight
        )

    @cached_property
    def schedules(self) -> ScheduleManager:
        """Recurring jobs: add, list, pause, remove, and the ticks that enqueue them."""
        from .schedules import ScheduleManager

        return ScheduleManager(self.jobs, clock=self.clock)

    def _wake_workers(self) -> None:
        # Late-bound: the job manager is built before the worker manager it wakes through.
        self.workers.wake_idle()

    def _nudge_cancel(self, worker_id: str) -> None:
        self.workers.nudge_cancel(worker_id)

    def worker(
        self,
        index: int = 1,
        *,
        burst: bool = False,
        log: Callable[[str], None] | None = None,
        queues: Sequence[str] = (),
    ) -> Worker:
        """A worker over this app's managers, serving those queues (every queue if none)."""
        from .worker import Worker

        return Worker(
            self.jobs, self.workers, index, burst=burst, clock=self.clock, log=log, queues=queues
        )

    def close(self) -> None:
        """Release the store's connections, if it was opened."""
        if self._store is not None:
            self._store.close()
