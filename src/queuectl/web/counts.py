"""The counts the overview and /metrics show, read at most once per `min_interval`.

On SQLite they come from counters the store maintains (a few small rows); on MongoDB from one
indexed count per queue and state, each of which walks its index range: at millions of jobs
that is a cost per read. Every open overview refreshes every 2 seconds and every scraper asks
in its turn; here they share one read per `min_interval`, as the chart does.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Dict

from ..jobs import JobManager


class JobCounts:
    """Jobs per state and per queue and state, as JobManager.counts and queue_counts give
    them, shared by every page and scrape for `min_interval` seconds."""

    def __init__(self, jobs: JobManager, min_interval: float = 1.0) -> None:
        self.jobs = jobs
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._read_at = -math.inf  # time.monotonic() of the last read
        self._by_state: Dict[str, int] = {}
        self._by_queue: Dict[str, Dict[str, int]] = {}

    def read(self) -> tuple[Dict[str, int], Dict[str, Dict[str, int]]]:
        """Jobs per state (every state, zeros included) and per queue and state (every queue
        that has jobs), read anew once `min_interval` has passed since the last read."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.min_interval:
                self._by_state = self.jobs.counts()
                self._by_queue = self.jobs.queue_counts()
                self._read_at = time.monotonic()
            return dict(self._by_state), {q: dict(c) for q, c in self._by_queue.items()}
