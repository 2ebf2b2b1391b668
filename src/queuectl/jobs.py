"""JobManager: every job transition, from enqueue to the DLQ and back. Decides; the store keeps.

Where a failed attempt becomes `failed` or `dead`: `JobManager.fail`, by the one rule in
`backoff.after_failure`. Every write that ends an attempt is fenced by the lease token the
attempt was claimed with, so a worker that lost its lease can no longer change the job.

A worker's own end of an attempt keeps the lease token on the job (the fence also needs the
job to be `processing`, so a settled job still refuses stale writers): after a lost reply the
worker can read whether its result was stored. The reaper's release and a DLQ retry clear it.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable, List, Sequence

from .backoff import Outcome, after_failure
from .config import Config, ConfigManager
from .errors import DuplicateJob, InvalidInput, JobNotFound
from .models import (
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    STATES,
    Job,
    build_job,
    check_state,
)
from .store.base import ID_BATCH, Store

if TYPE_CHECKING:  # the executor (subprocess, selectors) is loaded only where jobs run
    from .executor import Result

Clock = Callable[[], float]

# What a worker's own end of an attempt clears: the claim and its lease times (the token
# stays, see above).
SETTLE: dict[str, Any] = {
    "locked_by": None,
    "locked_at": None,
    "lease_renewed_at": None,
    "lease_expires_at": None,
}
# What every other transition out of `processing` (or out of the DLQ) clears: the token too.
UNLOCK: dict[str, Any] = {**SETTLE, "lease_token": None}
# The worker counter each final state of an attempt adds to.
COUNTERS: dict[str, str] = {COMPLETED: "jobs_done", DEAD: "jobs_failed", FAILED: "jobs_failed"}


class JobManager:
    """The operations of SPEC §5 on jobs, and every change of a job's state, over any Store.

    `wake` is called after jobs become ready (enqueue, DLQ retry) so idle workers can start
    them at once; it must not raise.
    """

    def __init__(
        self,
        store: Store,
        configs: ConfigManager,
        *,
        clock: Clock = time.time,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.configs = configs
        self.clock = clock
        self._wake = wake or (lambda: None)
        self.batch_size = ID_BATCH  # ids per write when many jobs change at once

    # -- enqueue and read ---------------------------------------------------------------------
    def build(self, specs: Sequence[tuple[str | None, dict[str, Any]]]) -> List[Job]:
        """Validate every spec before anything is written. Each spec comes with a label
        (e.g. "line 3") that prefixes its error, or None for a single job."""
        config = self.configs.load()
        now = self.clock()
        base_seq = time.time_ns()
        jobs: List[Job] = []
        seen: set[str] = set()
        for index, (label, spec) in enumerate(specs):
            try:
                job = build_job(
                    spec,
                    now=now,
                    default_max_retries=config.max_retries,
                    default_timeout=config.job_timeout,
                )
            except InvalidInput as exc:
                raise InvalidInput(f"{label}: {exc}" if label else str(exc)) from None
            if job.id in seen:
                raise DuplicateJob(job.id, "is repeated in the batch")
            seen.add(job.id)
            job.seq = base_seq + index
            jobs.append(job)
        if not jobs:
            raise InvalidInput("no job to enqueue: the batch is empty")
        return jobs

    def enqueue(self, specs: Sequence[tuple[str | None, dict[str, Any]]]) -> List[Job]:
        """Validate, then insert all jobs atomically, then wake idle local workers."""
        jobs = self.build(specs)
        self.store.insert_jobs(jobs)
        self._wake()
        return jobs

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""
        job = self.store.get_job(job_id) if _is_text(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self, state: str | None = None, limit: int = 50) -> List[Job]:
        """Jobs of one state (or all), in the order SPEC §5 `list` gives."""
        check_state(state)
        if limit < 1:
            raise InvalidInput(f"--limit must be at least 1, got {limit}")
        return self.store.list_jobs(state, limit, now=self.clock())

    def counts(self) -> dict[str, int]:
        """Every state with its count, zeros included."""
        counted = self.store.count_by_state()
        return {state: counted.get(state, 0) for state in STATES}

    def dead(self, limit: int = 1000) -> List[Job]:
        """Jobs in the DLQ, most recently failed first."""
        return self.store.list_jobs(DEAD, limit)

    # -- an attempt: claim, renew, and its end ------------------------------------------------
    @staticmethod
    def new_token() -> str:
        """A fresh lease token. The worker picks it before claiming, so that after a lost
        reply it can look for a job claimed under it."""
        # os.urandom, not secrets: `secrets` loads OpenSSL, ~4 MB in every worker process.
        return os.urandom(8).hex()

    def claim(
        self, worker_id: str, token: str | None = None, *, lease_seconds: float | None = None
    ) -> Job | None:
        """Take the next ready job for `worker_id` under `token` (a new one by default),
        its lease good for `lease_seconds` (default: stale_after); None if none is ready."""
        if lease_seconds is None:
            lease_seconds = self.configs.load().stale_after
        now = self.clock()
        return self.store.claim(
            worker_id, now, token or self.new_token(), lease_expires_at=now + lease_seconds
        )

    def locked_by(self, worker_id: str) -> List[Job]:
        """The jobs processing under that worker's name."""
        return self.store.jobs_locked_by(worker_id)

    def claimed_with(self, worker_id: str, token: str) -> Job | None:
        """The job `worker_id` holds under `token`, if a claim whose reply was lost took one."""
        return next((j for j in self.locked_by(worker_id) if j.lease_token == token), None)

    def renew(
        self, job: Job, *, now: float | None = None, lease_seconds: float | None = None
    ) -> bool:
        """Extend the lease of a claimed job (for `lease_seconds` from now, when given);
        False when it is no longer ours."""
        now = self.clock() if now is None else now
        expires = None if lease_seconds is None else now + lease_seconds
        return self.store.renew_lease(job.id, _token(job), now, lease_expires_at=expires)

    def next_run_at(self) -> float | None:
        """When the earliest pending or failed job may run (None: no job is waiting)."""
        return self.store.next_run_at()

    def complete(self, job: Job, result: Result, *, now: float | None = None) -> bool:
        """Record a successful attempt (and count it in its worker's row). False when the
        lease was no longer ours."""
        now = self.clock() if now is None else now
        changes = {
            "state": COMPLETED,
            "updated_at": now,
            "last_error": None,
            **_outputs(result, now),
            **SETTLE,
        }
        return self.store.finish(job.id, _token(job), changes, tally=_tally(job, COMPLETED))

    def fail(
        self,
        job: Job,
        error: str,
        result: Result | None = None,
        *,
        now: float | None = None,
        config: Config | None = None,
    ) -> tuple[bool, Outcome]:
        """Record a failed attempt: `failed` with a backoff run_at, or `dead` past max_retries
        (backoff.after_failure decides), counted in its worker's row. `config` defaults to
        the store's current one. Returns whether the write was applied (the fence) and the
        outcome."""
        changes, outcome = self._failure(job, error, result, now, config)
        changes.update(SETTLE)
        applied = self.store.finish(job.id, _token(job), changes, tally=_tally(job, outcome.state))
        return applied, outcome

    def _failure(
        self,
        job: Job,
        error: str,
        result: Result | None,
        now: float | None,
        config: Config | None,
    ) -> tuple[dict[str, Any], Outcome]:
        now = self.clock() if now is None else now
        config = self.configs.load() if config is None else config
        outcome = after_failure(
            job.attempts,
            job.max_retries,
            now,
            config.backoff_base,
            config.backoff_max,
            config.backoff_jitter,
        )
        changes: dict[str, Any] = {
            "state": outcome.state,
            "updated_at": now,
            "last_error": error,
            **_outputs(result, now),
        }
        if outcome.run_at is not None:
            changes["run_at"] = outcome.run_at
        return changes, outcome

    def hand_back(self, job: Job, *, now: float | None = None, keep_place: bool = False) -> bool:
        """Put a job back to pending without spending its attempt (an immediate shutdown, or
        a claim whose reply was lost). `keep_place` leaves its run_at, so it keeps its place
        in the claim order."""
        now = self.clock() if now is None else now
        changes = {
            "state": PENDING,
            "attempts": max(job.attempts - 1, 0),
            "updated_at": now,
            **SETTLE,
        }
        if not keep_place:
            changes["run_at"] = now
        return self.store.finish(job.id, _token(job), changes)

    def settled(self, job: Job) -> Job | None:
        """The stored job if the attempt `job` was claimed for has been ended by its own
        worker (it is no longer processing and still carries that lease token): how a
        worker tells a result whose reply was lost from a lost lease. None otherwise."""
        stored = self.store.get_job(job.id)
        if stored is None or stored.state == PROCESSING or stored.lease_token != _token(job):
            return None
        return stored

    def count_end(self, job: Job, stored: Job) -> None:
        """Count a settled attempt in its worker's row, unless it already was (a result
        whose reply was lost may or may not have been counted with it)."""
        tally = _tally(job, stored.state)
        if tally is not None:
            self.store.count_job_end(*tally, _token(job))

    def release(
        self,
        job: Job,
        reason: str,
        config: Config | None = None,
        *,
        now: float | None = None,
        stale_before: float | None = None,
    ) -> bool:
        """The reaper's transition: a job whose worker is gone counts as a failed attempt
        (retried later, or dead) with no output. With `stale_before`, it is applied only if
        the lease is still stale when written: not renewed since then, and past its own
        deadline (an owner's renewal between the reaper's read and its write wins). False
        if another reaper, or the owner, got there first."""
        now = self.clock() if now is None else now
        changes, _ = self._failure(job, reason, None, now, config)
        changes.update(UNLOCK)
        expected = {"state": PROCESSING, "lease_token": _token(job)}
        below = None
        if stale_before is not None:
            below = {"lease_renewed_at": stale_before, "lease_expires_at": now}
        return self.store.update_if(job.id, expected, changes, below=below)

    # -- the DLQ ------------------------------------------------------------------------------
    def retry_dead(self, job_ids: Sequence[str] | None) -> tuple[List[str], List[str]]:
        """Put DLQ jobs (those ids, or all when None) back to pending with no attempts spent;
        each move is conditioned on the job still being dead, and made in batches of
        `batch_size` ids, one store write each. Returns (retried, not in the DLQ)."""
        now = self.clock()
        changes = {"state": PENDING, "attempts": 0, "run_at": now, "updated_at": now, **UNLOCK}
        retried: List[str] = []
        if job_ids is None:
            # Each batch leaves the DLQ, so the next read finds the next one; jobs that die
            # after this started are left for another retry.
            while batch := self.store.job_ids(DEAD, self.batch_size, updated_until=now):
                moved = self.store.update_many_if(batch, {"state": DEAD}, changes)
                if not moved:
                    break  # another process took this batch out of the DLQ meanwhile
                retried += moved
            missing: List[str] = []
        else:
            wanted = [i for i in dict.fromkeys(job_ids) if _is_text(i)]
            for start in range(0, len(wanted), self.batch_size):
                batch = wanted[start : start + self.batch_size]
                retried += self.store.update_many_if(batch, {"state": DEAD}, changes)
            done = set(retried)
            missing = [i for i in dict.fromkeys(job_ids) if i not in done]
        if retried:
            self._wake()
        return retried, missing

    # -- stats --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """SPEC §5 `stats`: counts, durations (nearest-rank p50/p95 of completed jobs),
        success rate, retries spent over all jobs, and jobs completed in the last minute
        and hour."""
        counts = self.counts()
        now = self.clock()
        n, mean = self.store.duration_summary()
        p50, p95 = (
            (self.store.duration_at(quantile_rank(n, q)) if n else None) for q in (0.50, 0.95)
        )
        retried_jobs, their_attempts = self.store.retried_totals()
        finished = counts[COMPLETED] + counts[DEAD]
        return {
            "jobs": counts,
            "duration": {"mean": mean, "p50": p50, "p95": p95},
            "success_rate": counts[COMPLETED] / finished if finished else None,
            "retries": their_attempts - retried_jobs,
            "throughput": {
                "last_minute": self.store.completed_since(now - 60),
                "last_hour": self.store.completed_since(now - 3600),
            },
        }


def quantile_rank(n: int, q: float) -> int:
    """Zero-based nearest-rank position of quantile q among n sorted values."""
    return min(n - 1, max(0, math.ceil(q * n) - 1)) if n else 0


def _outputs(result: Result | None, now: float) -> dict[str, Any]:
    if result is None:  # the attempt was lost: its output never reached the store
        return {
            "exit_code": None,
            "stdout": None,
            "stderr": None,
            "duration": None,
            "finished_at": now,
        }
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "duration": round(result.duration, 6),
        "finished_at": now,
    }


def _tally(job: Job, state: str) -> tuple[str, str] | None:
    """(worker, counter) a job's end adds 1 to; None for a state no counter counts."""
    counter = COUNTERS.get(state)
    return (job.locked_by, counter) if job.locked_by and counter else None


def _token(job: Job) -> str:
    if not job.lease_token:
        raise ValueError(f"job {job.id} has no lease token: it was not claimed")
    return job.lease_token


def _is_text(value: str) -> bool:
    """Whether an id is text. Argument bytes that are not UTF-8 reach Python as lone
    surrogates: no job has such an id, and SQLite cannot even encode it, so every store
    answers "not found" alike."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
