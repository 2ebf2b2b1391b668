"""A worker's retention sweeps (SPEC §7.2), each in a thread of its own.

The heartbeat starts a sweep and goes on: the heartbeat renews the running job's lease, and
a sweep that met a slow store must never hold that renewal back. At most one sweep runs per
worker; the store's compare-and-set lets one worker of the whole fleet sweep per
heartbeat_interval, and a sweep stops after half an interval, so sweeps never pile up.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from .config import Config
from .jobs import JobManager


class RetentionSweeper:
    """Runs `JobManager.sweep_retention` off the heartbeat thread and logs what it did."""

    def __init__(self, jobs: JobManager, log: Callable[[str], None]) -> None:
        self.jobs = jobs
        self.log = log
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def kick(self, config: Config) -> bool:
        """Start a sweep with this config unless one is still running, retention is off,
        or the worker is stopping. Returns whether one was started."""
        if not config.retention or self._stop.is_set():
            return False
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(
                target=self._sweep, args=(config,), name="retention", daemon=True
            )
            self._thread.start()
        return True

    def _sweep(self, config: Config) -> None:
        deadline = time.monotonic() + float(config.heartbeat_interval) / 2

        def keep_going() -> bool:
            """Whether the sweep may delete one more batch: the worker is not stopping and
            half a heartbeat_interval has not passed."""
            return not self._stop.is_set() and time.monotonic() < deadline

        try:
            deleted = self.jobs.sweep_retention(config, keep_going=keep_going)
        except Exception as exc:  # a sweep is housekeeping: it must never stop the worker
            self.log(f"retention sweep failed: {exc}")
            return
        if deleted:
            self.log(
                f"retention: deleted {deleted} completed job(s) older than {config.retention:g}s"
            )

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a running sweep; whether none is running."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def stop(self, timeout: float = 2.0) -> None:
        """Let a running sweep end after its current batch, and start no more."""
        self._stop.set()
        self.wait(timeout)
