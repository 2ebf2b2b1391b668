"""WorkerManager: the registry of workers, stop requests, liveness and the reaper.

Liveness is judged by two clocks that must both have run out, so that no live change of
`heartbeat_interval` or `stale_after` (in any order) makes a live worker look lost or
releases its job: the deadline the worker itself wrote with its last heartbeat or lease
renewal (that time + stale_after as it knew it then), and the reader's own stale_after since
that heartbeat or renewal. Rows of older releases have no deadline: the second rule alone.
"""

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
    CANCEL_SIGNAL,
    WAKE_SIGNAL,
    hostname,
    is_neighbour,
    kill_orphaned_commands,
    machine_key,
    pid_alive,
    signal_worker,
)
from .models import LIVE_WORKER_STATUSES, PROCESSING, WorkerInfo, WorkerStatus
from .sight import Sight
from .store.base import Poll, Store

# Rows of stopped and lost workers are kept this long for `worker list --all`, then dropped.
IDLE, BUSY, LOST = WorkerStatus.IDLE, WorkerStatus.BUSY, WorkerStatus.LOST
FORGET_WORKERS_AFTER = 7 * 24 * 3600
MAX_LISTED_JOBS = 100_000


def silent(worker: WorkerInfo, now: float, stale_after: float) -> bool:
    """Whether a worker row has gone silent: past its own deadline (if it wrote one) and
    not heard from for the reader's stale_after."""
    past_deadline = worker.expires_at is None or worker.expires_at < now
    return past_deadline and worker.last_heartbeat < now - stale_after


def max_gap(config: Config) -> float:
    """The longest quiet spell between a live worker's store calls (it calls at least every
    poll_interval or heartbeat_interval); a longer one means it could not see the store."""
    return 2 * max(config.poll_interval, config.heartbeat_interval) + 1.0


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
        sight: Sight | None = None,
    ) -> None:
        self.store = store
        self.configs = configs
        self.jobs = jobs
        self.clock = clock
        # How long this process has seen the store (None: a manager that trusts every lease
        # deadline as it reads it, for tools that do not run a reaper loop).
        self.sight = sight

    def settings(self) -> Config:
        """The shared configuration as it is now in the store (workers re-read it often,
        so `config set` reaches them)."""
        config = self.configs.load()
        if self.sight is not None:
            self.sight.max_gap = max_gap(config)
        return config

    def register(
        self, index: int, queues: Sequence[str] = (), stale_after: float | None = None
    ) -> WorkerInfo:
        """Add a new worker row for this process, serving those queues (every queue if
        none), alive for `stale_after` seconds (default: the configured value) unless it
        heartbeats."""
        if stale_after is None:
            stale_after = self.settings().stale_after
        now = self.clock()
        worker = WorkerInfo(
            id=new_worker_id(index),
            host=hostname(),
            pid=os.getpid(),
            machine=machine_key(),
            started_at=now,
            last_heartbeat=now,
            expires_at=now + stale_after,
            queues=list(queues),
        )
        self.store.register_worker(worker)
        return worker

    def update(self, worker_id: str, changes: dict[str, Any]) -> None:
        """Write a worker's own row: status, heartbeat and its deadline, current job."""
        self.store.update_worker(worker_id, changes)

    def poll(self, queues: Sequence[str] = ()) -> Poll:
        """What an idle worker reads each poll_interval, in one store operation: the control
        version (moved by config changes and stop requests), when the next job of those
        queues is due and when the next schedule is."""
        return self.store.poll(queues)

    def first_poll(self, queues: Sequence[str] = ()) -> Poll:
        """`poll`, for a worker that starts: the control version is created first if the
        store has none yet (so every later poll finds the record it reads)."""
        self.store.ensure_control()
        return self.store.poll(queues)

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
                if silent(worker, now, stale_after):
                    worker = replace(worker, status=LOST, current_job=None)
                else:
                    job = holders.get(worker.id)
                    status = BUSY if job and worker.status == IDLE else worker.status
                    worker = replace(worker, current_job=job, status=status)
            shown.append(worker)
        return shown

    def active(self, queue: str | None = None) -> List[WorkerInfo]:
        """Workers that are idle, busy or stopping and have not gone silent (those serving
        `queue`, when given: it or every queue)."""
        stale_after = self.settings().stale_after
        now = self.clock()
        return [
            w
            for w in self.store.list_workers(statuses=LIVE_WORKER_STATUSES)
            if not silent(w, now, stale_after)
            and (queue is None or not w.queues or queue in w.queues)
        ]

    def nudge_cancel(self, worker_id: str) -> None:
        """Make a worker on this machine look for its job's cancel at once (workers
        elsewhere find it within about poll_interval). Best effort."""
        try:
            worker = self.store.get_worker(worker_id)
        except QueuectlError:
            return
        if worker is not None:
            signal_worker(worker, CANCEL_SIGNAL)

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
        # Idle workers elsewhere read only the control version each poll_interval.
        self.store.bump_control()
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

    def reap(self, config: Config, chores: bool = True) -> List[str]:
        """Release jobs whose lease went silent, at once for workers on this machine whose
        process is gone; mark silent workers lost. Returns the ids of released jobs. With
        `chores`, also forget long-gone worker rows and finish what a crash left undone
        for dependents (a worker does those rarely).

        Silence is counted only over time this process saw the store: right after an
        outage or a freeze every lease looks old, so nothing is released until the store
        has been in sight for stale_after (dead local processes excepted)."""
        if self.sight is not None:
            self.sight.max_gap = max_gap(config)
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
        if chores:
            self.store.delete_workers(now - FORGET_WORKERS_AFTER)
        since = self.sight.since() if self.sight is not None else None
        if self.sight is not None and (since is None or since + config.stale_after >= now):
            return released  # not in sight for long enough to call anyone silent
        self.store.mark_workers_lost(cutoff, now)
        for job in self.store.stale_jobs(cutoff, now):
            reason = f"worker {job.locked_by} stopped heartbeating"
            if self.jobs.release(job, reason, config, now=now, stale_before=cutoff):
                released.append(job.id)
        if chores:
            self.jobs.repair_dependents()
        return released
