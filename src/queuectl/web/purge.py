"""The DLQ page's purge, run apart from the request that asks for it.

With millions of dead jobs a purge takes minutes (bounded batches with pauses, so that
workers' claims never wait long). Run inside the request, a proxy would time out and a
second click would start a second purge beside the first. Here the web process runs it in a
thread of its own, one at a time: the button answers at once, a second click while it runs is
told so, and the DLQ page shows how many jobs it has deleted so far, then in all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import QueuectlError
from ..jobs import JobManager
from ..models import DEAD


@dataclass(frozen=True)
class PurgeStatus:
    """What the DLQ page says of the purge: none yet, running, or done."""

    started: bool = False
    running: bool = False
    deleted: int = 0
    error: str | None = None


class DeadPurge:
    """`purge --state dead`, at most one at a time per web process, in a daemon thread."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self._lock = threading.Lock()
        self._status = PurgeStatus()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start a purge of every dead job; False (and nothing started) when one runs."""
        with self._lock:
            if self._status.running:
                return False
            self._status = PurgeStatus(started=True, running=True)
            self._thread = threading.Thread(target=self._run, name="dlq-purge", daemon=True)
            self._thread.start()
        return True

    def status(self) -> PurgeStatus:
        """The purge's progress (a snapshot)."""
        with self._lock:
            return self._status

    def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the running purge; whether none runs now."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.status().running

    def _progress(self, deleted: int) -> None:
        with self._lock:
            self._status = PurgeStatus(started=True, running=True, deleted=deleted)

    def _run(self) -> None:
        deleted, error = 0, None
        try:
            deleted = self.jobs.purge(DEAD, progress=self._progress)
        except QueuectlError as exc:  # the store went away: say so; a new click goes on
            deleted, error = self.status().deleted, str(exc)
        except Exception as exc:  # noqa: BLE001 (a thread's error would be lost unsaid)
            deleted, error = self.status().deleted, f"the purge stopped: {exc}"
        with self._lock:
            self._status = PurgeStatus(started=True, running=False, deleted=deleted, error=error)
