"""WorkerManager: the registry of workers, stop requests, liveness and the reaper."""

from __future__ import annotations

import functools
import os
import signal
import socket
import time
from dataclasses import replace
from typing import Callable, List

from . import attempts
from .config import Config, ConfigManager
from .errors import QueuectlError
from .models import LIVE_WORKER_STATUSES, WorkerInfo
from .store.base import Store

WAKE_SIGNAL = signal.SIGUSR1
# Rows of stopped and lost workers are kept this long for `worker list --all`, then dropped.
FORGET_WORKERS_AFTER = 7 * 24 * 3600
MAX_LISTED_JOBS = 100_000


def hostname() -> str:
    """This machine's name, as worker ids and rows use it."""
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def machine_key() -> str:
    """Who can see our pids: the host name plus, where Linux tells, the boot id and the pid
    namespace. Two containers with one hostname get different keys."""
    parts = [hostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            parts.append(handle.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return "/".join(parts)


def is_neighbour(worker: WorkerInfo) -> bool:
    """Whether that worker's pid is a pid of this machine and namespace (and not us)."""
    return worker.machine == machine_key() and worker.pid != os.getpid()


def pid_alive(pid: int) -> bool:
    """Whether a local process with that pid exists and, where /proc tells, is a worker
    (a pid reused by another program does not keep a dead worker's job locked)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"queuectl.worker_process" in handle.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_worker(worker: WorkerInfo, signum: int) -> None:
    """Signal a local worker process, never a process that merely reuses its pid."""
    if is_neighbour(worker) and pid_alive(worker.pid):
        try:
            os.kill(worker.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def new_worker_id(index: int) -> str:
    """`<host>:<pid>:<n>-<suffix>`: the suffix makes an id unique across restarts."""
    return f"{hostname()}:{os.getpid()}:{index}-{os.urandom(2).hex()}"


def wake_local_workers(store: Store) -> None:
    """Nudge idle workers on this machine so they claim at once instead of at their next
    poll. Best effort: workers elsewhere still find the job by polling."""
    try:
        idle = store.list_workers(statuses=("idle",))
    except QueuectlError:
        return  # the caller's change is stored; failing its command now would be a lie
    for worker in idle:
        signal_worker(worker, WAKE_SIGNAL)


def kill_orphaned_commands(worker_id: str) -> int:
    """Kill the process groups of commands a dead local worker left running (found by the
    QUEUECTL_WORKER_ID their environment carries), so a released job never runs twice at
    once on this machine. Linux only (/proc); elsewhere a no-op. Returns groups killed."""
    marker = f"QUEUECTL_WORKER_ID={worker_id}".encode()
    groups = set()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    groups.add(os.getpgid(pid))
        except OSError:
            continue  # gone, or another user's process
    for group in groups - {os.getpgid(0)}:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    return len(groups)


class WorkerManager:
    """Registers workers, reports on them, asks them to stop, and reaps the lost."""

    def __init__(
        self, store: Store, configs: ConfigManager, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.configs = configs
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

    def list(self, include_stopped: bool = False) -> List[WorkerInfo]:
        """Workers as users see them: live and lost ones (stopped too with
        include_stopped); `busy` with its job when it holds one; `lost` once silent for
        stale_after seconds, even before a reaper has marked it."""
        stale_after = self.settings().stale_after
        now = self.clock()
        statuses = None if include_stopped else (*LIVE_WORKER_STATUSES, "lost")
        holders = {
            job.locked_by: job.id for job in self.store.list_jobs("processing", MAX_LISTED_JOBS)
        }
        shown = []
        for worker in self.store.list_workers(statuses=statuses):
            if worker.status in LIVE_WORKER_STATUSES:
                if now - worker.last_heartbeat > stale_after:
                    worker = replace(worker, status="lost", current_job=None)
                else:
                    job = holders.get(worker.id)
                    status = "busy" if job and worker.status == "idle" else worker.status
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

    def request_stop(self) -> List[WorkerInfo]:
        """Ask every active worker to stop: through the store for every machine, and by
        SIGTERM to the ones on this machine so they react at once."""
        workers = self.active()
        self.store.request_stop([w.id for w in workers])
        for worker in workers:
            # A second signal means "stop at once" to a worker, so one already stopping
            # is left to finish its job.
            if worker.status != "stopping":
                signal_worker(worker, signal.SIGTERM)
        return workers

    def reap(self, config: Config) -> List[str]:
        """Release jobs whose lease went silent, at once for workers on this machine whose
        process is gone; mark silent workers lost. Returns the ids of released jobs."""
        now = self.clock()
        cutoff = now - config.stale_after
        released: List[str] = []
        for worker in self.store.list_workers(statuses=LIVE_WORKER_STATUSES):
            if is_neighbour(worker) and not pid_alive(worker.pid):
                self.store.update_worker(worker.id, {"status": "lost", "current_job": None})
                kill_orphaned_commands(worker.id)
                for job in self.store.jobs_locked_by(worker.id):
                    ok, _ = attempts.fail(
                        self.store, job, f"worker {worker.id} exited", config, now
                    )
                    if ok:
                        released.append(job.id)
        self.store.mark_workers_lost(cutoff)
        self.store.delete_workers(now - FORGET_WORKERS_AFTER)
        for job in self.store.stale_jobs(cutoff):
            ok, _ = attempts.fail(
                self.store, job, f"worker {job.locked_by} stopped heartbeating", config, now
            )
            if ok:
                released.append(job.id)
        return released
