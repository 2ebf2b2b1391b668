"""WorkerManager: the registry of workers, stop requests, liveness and the reaper."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from typing import Any, Callable, List, Sequence

from .config import Config, ConfigManager
from .errors import QueuectlError
from .jobs import JobManager
from .localproc import (
    WAKE_SIGNAL,
    hostname,
    is_neighbour,
    kill_orphaned_commands,
    machine_key,
    pid_alive,
    signal_worker,
)
from .models import LIVE_WORKER_STATUSES, PROCESSING, WorkerInfo, WorkerStatus
from .store.base import Store

# Rows of stopped and lost workers are kept this long for `worker list --all`, then dropped.
IDLE, BUSY, LOST = WorkerStatus.IDLE, WorkerStatus.BUSY, WorkerStatus.LOST
FORGET_WORKERS_AFTER = 7 * 24 * 3600
MAX_LISTED_JOBS = 100_000


def new_worker_id(index: int) -> str:
    """`<host>:<pid>:<n>-<suffix>`: the suffix makes an id unique across restarts."""
    return f"{hostname()}:{os.getpid()}:{index}-{os.urandom(2).hex()}"


class WorkerManager:
    """Registers workers, reports on them, asks them to stop, and reaps the lost."""

    def __init__(
        self,
        store: Store,
        configs: ConfigManager,
        jobs: JobManager,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.configs = configs
        self.jobs = jobs
        self.clock = clock

    def settings(self) -> Config:
        """The shared configuration as it is now in the store (workers re-read it often,
        so `config set` reaches them)."""
        return self.configs.load()

    def register(self, index: int) -> WorkerInfo:
        """Add a new worker row for this process."""
        now = self.clock()
        worker = WorkerInfo(
            id=new_worker_id(index),
            host=hostname(),
            pid=os.getpid(),
            machine=machine_key(),
            started_at=now,
            last_heartbeat=now,
        )
        self.store.register_worker(worker)
        return worker

    def update(
        self, worker_id: str, changes: dict[str, Any], increments: dict[str, int] | None = None
    ) -> None:
        """Write a worker's own row: set fields (status, heartbeat, current job) and add to
        its counters, in one store write."""
        self.store.update_worker(worker_id, changes, increments)

    def stop_requested(self, worker_id: str) -> bool:
        """Whether a stop was asked for that worker through the store (any machine)."""
        worker = self.store.get_worker(worker_id)
        return worker is not None and worker.stop_requested

    def list(self, include_stopped: bool = False) -> List[WorkerInfo]:
        """Workers as users see them: live and lost ones (stopped too with
        include_stopped); `busy` with its job when it holds one; `lost` once silent for
        stale_after seconds, even before a reaper has marked it."""
        stale_after = self.settings().stale_after
        now = self.clock()
        statuses = None if include_stopped else (*LIVE_WORKER_STATUSES, LOST)
        holders = {
            job.locked_by: job.id for job in self.store.list_jobs(PROCESSING, MAX_LISTED_JOBS)
        }
        shown = []
        for worker in self.store.list_workers(statuses=statuses):
            if worker.status in LIVE_WORKER_STATUSES:
                if now - worker.last_heartbeat > stale_after:
                    worker = replace(worker, status=LOST, current_job=None)
                else:
                    job = holders.get(worker.id)
                    status = BUSY if job and worker.status == IDLE else worker.status
                    worker = replace(worker, current_job=job, status=status)
            shown.append(worker)
        return shown

    def active(self) -> List[WorkerInfo]:
        """Workers that are idle, busy or stopping and heartbeated within stale_after."""
        cutoff = self.clock() - self.settings().stale_after
        return [
            w
            for w in self.store.list_workers(statuses=LIVE_WORKER_STATUSES)
            if w.last_heartbeat >= cutoff
        ]

    def wake_idle(self) -> None:
        """Nudge idle workers on this machine so they claim at once instead of at their next
        poll. Best effort: workers elsewhere still find the job by polling."""
        try:
            idle = self.store.list_workers(statuses=(IDLE,))
        except QueuectlError:
            return  # the caller's change is stored; failing its command now would be a lie
        for worker in idle:
            signal_worker(worker, WAKE_SIGNAL)

    def request_stop(self) -> List[WorkerInfo]:
        """Ask every active worker to stop: through the store for every machine, and by
        SIGTERM to the ones on this machine so they react at once."""
        workers = self.active()
        self.store.request_stop([w.id for w in workers])
        for worker in workers:
            # A second signal means "stop at once" to a worker, so one already stopping
            # is left to finish its job.
            if worker.status != WorkerStatus.STOPPING:
                signal_worker(worker, signal.SIGTERM)
        return workers

    def wait_stopped(
        self, workers: Sequence[WorkerInfo], timeout: float, poll: float = 0.2
    ) -> None:
        """Block until none of `workers` is active any more; QueuectlError after `timeout`
        seconds."""
        deadline = time.monotonic() + timeout
        ids = {w.id for w in workers}
        while any(w.id in ids for w in self.active()):
            if time.monotonic() > deadline:
                raise QueuectlError(f"workers still running after {timeout:g}s")
            time.sleep(poll)

    def reap(self, config: Config) -> List[str]:
        """Release jobs whose lease went silent, at once for workers on this machine whose
        process is gone; mark silent workers lost. Returns the ids of released jobs."""
        now = self.clock()
        cutoff = now - config.stale_after
        released: List[str] = []
        for worker in self.store.list_workers(statuses=LIVE_WORKER_STATUSES):
            if is_neighbour(worker) and not pid_alive(worker.pid):
                self.store.update_worker(worker.id, {"status": LOST, "current_job": None})
                kill_orphaned_commands(worker.id)
                for job in self.store.jobs_locked_by(worker.id):
                    if self.jobs.release(job, f"worker {worker.id} exited", config, now=now):
                        released.append(job.id)
        self.store.mark_workers_lost(cutoff)
        self.store.delete_workers(now - FORGET_WORKERS_AFTER)
        for job in self.store.stale_jobs(cutoff):
            reason = f"worker {job.locked_by} stopped heartbeating"
            if self.jobs.release(job, reason, config, now=now):
                released.append(job.id)
        return released
