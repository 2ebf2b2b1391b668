"""Jobs finished per minute over the last hour (the overview's chart, read from the store),
and the counts and durations of the jobs this process saw finish (/metrics).

The chart's minutes are counted by the store over its indexes (JobManager.finished_per_minute),
at most once per `min_interval` however many pages ask. The totals and the duration histogram
for /metrics count only jobs seen finishing after the process started, as a Prometheus counter
does (it starts at zero and only grows): the web process follows finished jobs in the order of
their last update, a page at a time until it has caught up, reading only their ids, times and
durations (JobManager.finished_after), never their commands or outputs.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

from ..jobs import JobManager
from ..models import COMPLETED, DEAD
from ..store.base import FinishedRow

OUTCOMES = (COMPLETED, DEAD)
# Upper bounds of the duration histogram, in seconds (Prometheus adds +Inf).
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
MINUTES = 60
# A job's updated_at is stamped before its write commits, so a job may become visible a
# little after a newer one: every read looks this far back and skips the ids it has counted.
GRACE = 2.0
PAGE = 1000  # finished jobs per read; a read goes on page by page until it has caught up
LOWEST_SEQ = -(2**63)  # before every seq: a page from a time on starts at its first job


@dataclass(frozen=True)
class Minute:
    """One bar of the chart: jobs finished in the minute that starts at `start`."""

    start: float
    completed: int
    dead: int


class FinishedJobs:
    """Follows jobs as they reach `completed` or `dead`, through JobManager.finished_after."""

    def __init__(
        self,
        jobs: JobManager,
        clock: Callable[[], float] = time.time,
        page: int = PAGE,
        min_interval: float = 1.0,
    ) -> None:
        self.jobs = jobs
        self.clock = clock
        self.page = page
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last_read = -math.inf  # time.monotonic() of the last read
        self._minutes: List[Minute] = []
        self._counted_at = -math.inf  # time.monotonic() of the last count of the minutes
        # Per outcome: the newest update followed (never past the clock), and the ids of the
        # jobs followed within GRACE of it, so that a read looking back counts none twice.
        self._high: Dict[str, float] = {}
        self._recent: Dict[str, Dict[str, float]] = {o: {} for o in OUTCOMES}
        self.totals: Dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.duration_counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last one: +Inf
        self.duration_sum = 0.0

    def refresh(self, force: bool = False) -> None:
        """Read what finished since the last read (at most once per `min_interval` unless
        forced, however many pages and scrapes ask)."""
        with self._lock:
            if not force and time.monotonic() - self._last_read < self.min_interval:
                return
            now = self.clock()
            for outcome in OUTCOMES:
                if outcome in self._high:
                    self._follow(outcome, now)
                else:
                    self._fill(outcome, now)
            self._last_read = time.monotonic()

    def minutes(self, force: bool = False) -> List[Minute]:
        """The last hour, oldest minute first; the last one is the current minute. Counted
        by the store (at most once per `min_interval` unless forced)."""
        with self._lock:
            if force or time.monotonic() - self._counted_at >= self.min_interval:
                counted = self.jobs.finished_per_minute(MINUTES, now=self.clock())
                self._minutes = [Minute(start, c, d) for start, c, d in counted]
                self._counted_at = time.monotonic()
            return list(self._minutes)

    def counted(self) -> tuple[Dict[str, int], List[int], float]:
        """Jobs seen finishing since the start, by outcome; the duration histogram of the
        completed ones (a count per bucket of DURATION_BUCKETS, then +Inf) and their sum."""
        with self._lock:
            return dict(self.totals), list(self.duration_counts), self.duration_sum

    # -- reading ------------------------------------------------------------------------
    def _fill(self, outcome: str, now: float) -> None:
        """The first read: what finished before the start is remembered, not counted."""
        self._high[outcome] = now
        self._read(outcome, now, count=False)

    def _follow(self, outcome: str, now: float) -> None:
        """Every job finished since the last read (and within GRACE before it)."""
        self._read(outcome, now, count=True)

    def _read(self, outcome: str, now: float, count: bool) -> None:
        """Pages of jobs updated from GRACE before the newest followed on, oldest first,
        until a page is not full: however many finished meanwhile, none is left out."""
        high = self._high[outcome]
        recent = self._recent[outcome]
        updated_at, seq = high - GRACE, LOWEST_SEQ
        while True:
            rows = self.jobs.finished_after(outcome, updated_at, seq, self.page)
            for row in rows:
                if row.id not in recent:
                    if count:
                        self._count(row, outcome)
                    recent[row.id] = row.updated_at
            if rows:
                updated_at, seq = rows[-1].updated_at, rows[-1].seq
                high = max(high, min(updated_at, now))
                self._forget(outcome, high - GRACE)
            if len(rows) < self.page:
                break
        self._high[outcome] = high
        self._forget(outcome, high - GRACE)

    def _forget(self, outcome: str, floor: float) -> None:
        """Drop the ids no later read can meet again (updated before `floor`)."""
        recent = self._recent[outcome]
        for job_id in [i for i, t in recent.items() if t < floor]:
            del recent[job_id]

    def _count(self, row: FinishedRow, outcome: str) -> None:
        self.totals[outcome] += 1
        if outcome == COMPLETED and row.duration is not None:
            self.duration_sum += row.duration
            index = next(
                (i for i, bound in enumerate(DURATION_BUCKETS) if row.duration <= bound),
                len(DURATION_BUCKETS),
            )
            self.duration_counts[index] += 1
