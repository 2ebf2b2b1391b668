"""Jobs finished per minute, and the counts and durations of those this process saw finish.

JobManager offers counts and two throughput windows, not a per-minute history, so the web
process builds one: at its first read it fills the last hour from the newest finished jobs
(at most `backfill` of each outcome), then it reads only what finished since (newest first,
in growing pages). Minutes it could not fully see are marked unknown, never drawn as zero.
The totals and the duration histogram for /metrics count only jobs seen finishing after the
process started, as a Prometheus counter does (it starts at zero and only grows).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

from ..jobs import JobManager
from ..models import COMPLETED, DEAD, Job

OUTCOMES = (COMPLETED, DEAD)
# Upper bounds of the duration histogram, in seconds (Prometheus adds +Inf).
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
MINUTES = 60
# A job's updated_at is stamped before its write commits, so a job may become visible a
# little after a newer one: every read looks this far back and skips the ids it has counted.
GRACE = 2.0
FIRST_PAGE = 100


@dataclass(frozen=True)
class Minute:
    """One bar of the chart: jobs finished in the minute that starts at `start`."""

    start: float
    completed: int
    dead: int
    known: bool  # False: the process could not see every job that finished in it


class FinishedJobs:
    """Follows jobs as they reach `completed` or `dead`, through JobManager.list only."""

    def __init__(
        self,
        jobs: JobManager,
        clock: Callable[[], float] = time.time,
        backfill: int = 1000,
        cap: int = 5000,
        min_interval: float = 1.0,
    ) -> None:
        self.jobs = jobs
        self.clock = clock
        self.backfill = backfill
        self.cap = cap
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last_read = -math.inf  # time.monotonic() of the last read
        self._per_minute: Dict[int, List[int]] = {}
        self._unknown: set[int] = set()  # minutes some finished job was missed in
        self._known_from = -math.inf  # minutes before this were not seen whole
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
            oldest = _minute(now) - MINUTES
            for key in [k for k in self._per_minute if k < oldest]:
                del self._per_minute[key]
            self._unknown = {k for k in self._unknown if k >= oldest}

    def minutes(self) -> List[Minute]:
        """The last hour, oldest minute first; the last one is the current minute."""
        with self._lock:
            current = _minute(self.clock())
            bars = []
            for key in range(current - MINUTES + 1, current + 1):
                completed, dead = self._per_minute.get(key, (0, 0))
                known = key * 60 >= self._known_from and key not in self._unknown
                bars.append(Minute(key * 60.0, completed, dead, known))
            return bars

    def counted(self) -> tuple[Dict[str, int], List[int], float]:
        """Jobs seen finishing since the start, by outcome; the duration histogram of the
        completed ones (a count per bucket of DURATION_BUCKETS, then +Inf) and their sum."""
        with self._lock:
            return dict(self.totals), list(self.duration_counts), self.duration_sum

    # -- reading ------------------------------------------------------------------------
    def _fill(self, outcome: str, now: float) -> None:
        """The first read: the chart's past from the newest jobs; nothing counted."""
        jobs = self.jobs.list(outcome, self.backfill)
        for job in jobs:
            if _finished(job) >= now - MINUTES * 60:
                self._bucket(job, outcome)
        # A full page may have left older jobs of the hour unread.
        seen_from = jobs[-1].updated_at if len(jobs) == self.backfill else -math.inf
        self._known_from = max(self._known_from, seen_from)
        self._high[outcome] = now
        self._remember(outcome, jobs)

    def _follow(self, outcome: str, now: float) -> None:
        """Every job finished since the last read, newest first, in growing pages."""
        floor = self._high[outcome] - GRACE
        size = min(FIRST_PAGE, self.cap)
        while True:
            jobs = self.jobs.list(outcome, size)
            if len(jobs) < size or jobs[-1].updated_at < floor or size >= self.cap:
                break
            size = min(size * 4, self.cap)
        recent = self._recent[outcome]
        for job in jobs:
            if job.updated_at >= floor and job.id not in recent:
                self._bucket(job, outcome)
                self._count(job, outcome)
        if len(jobs) == self.cap and jobs[-1].updated_at >= floor:
            # More finished than one read takes: the minutes in between are not whole.
            self._unknown.update(range(_minute(floor), _minute(jobs[-1].updated_at) + 1))
        newest = max((j.updated_at for j in jobs), default=floor)
        self._high[outcome] = min(max(self._high[outcome], newest), now)
        self._remember(outcome, jobs)

    def _remember(self, outcome: str, jobs: Sequence[Job]) -> None:
        floor = self._high[outcome] - GRACE
        recent = self._recent[outcome]
        recent.update((j.id, j.updated_at) for j in jobs if j.updated_at >= floor)
        for job_id in [i for i, t in recent.items() if t < floor]:
            del recent[job_id]

    def _bucket(self, job: Job, outcome: str) -> None:
        counts = self._per_minute.setdefault(_minute(_finished(job)), [0, 0])
        counts[OUTCOMES.index(outcome)] += 1

    def _count(self, job: Job, outcome: str) -> None:
        self.totals[outcome] += 1
        if outcome == COMPLETED and job.duration is not None:
            self.duration_sum += job.duration
            index = next(
                (i for i, bound in enumerate(DURATION_BUCKETS) if job.duration <= bound),
                len(DURATION_BUCKETS),
            )
            self.duration_counts[index] += 1


def _finished(job: Job) -> float:
    return job.finished_at if job.finished_at is not None else job.updated_at


def _minute(ts: float) -> int:
    return int(ts // 60)
