"""JobManager: every job transition, from enqueue to the DLQ and back. Decides; the store keeps.

Where a failed attempt becomes `failed` or `dead`: `JobManager.fail`, by the one rule in
`backoff.after_failure`. Every write that ends an attempt is fenced by the lease token the
attempt was claimed with, so a worker that lost its lease can no longer change the job.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable, List, Sequence

from .backoff import Outcome, after_failure
from .config import Config, ConfigManager
from .errors import DuplicateJob, InvalidInput, JobNotFound
from .models import COMPLETED, DEAD, PENDING, STATES, Job, build_job, check_state
from .store.base import Store

if TYPE_CHECKING:  # the executor (subprocess, selectors) is loaded only where jobs run
    from .executor import Result

Clock = Callable[[], float]

# What every transition out of `processing` clears: the claim and its lease.
UNLOCK: dict[str, Any] = {
    "locked_by": None,
    "locked_at": None,
    "lease_token": None,
    "lease_renewed_at": None,
}


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
    def claim(self, worker_id: str) -> Job | None:
        """Take the next ready job for `worker_id` under a new lease token; None if none."""
        # os.urandom, not secrets: `secrets` loads OpenSSL, ~4 MB in every worker process.
        return self.store.claim(worker_id, self.clock(), os.urandom(8).hex())

    def renew(self, job: Job, *, now: float | None = None) -> bool:
        """Extend the lease of a claimed job; False when it is no longer ours."""
        return self.store.renew_lease(job.id, _token(job), self.clock() if now is None else now)

    def next_run_at(self) -> float | None:
        """When the earliest pending or failed job may run (None: no job is waiting)."""
        return self.store.next_run_at()

    def complete(self, job: Job, result: Result, *, now: float | None = None) -> bool:
        """Record a successful attempt. False when the lease was no longer ours."""
        now = self.clock() if now is None else now
        changes = {
            "state": COMPLETED,
            "updated_at": now,
            "last_error": None,
            **_outputs(result, now),
            **UNLOCK,
        }
        return self.store.finish(job.id, _token(job), changes)

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
        (backoff.after_failure decides). `config` defaults to the store's current one.
        Returns whether the write was applied (the fence) and the outcome."""
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
            **UNLOCK,
        }
        if outcome.run_at is not None:
            changes["run_at"] = outcome.run_at
        return self.store.finish(job.id, _token(job), changes), outcome

    def hand_back(self, job: Job, *, now: float | None = None) -> bool:
        """Put a job back to pending without spending its attempt (an immediate shutdown)."""
        now = self.clock() if now is None else now
        changes = {
            "state": PENDING,
            "attempts": max(job.attempts - 1, 0),
            "run_at": now,
            "updated_at": now,
            **UNLOCK,
        }
        return self.store.finish(job.id, _token(job), changes)

    def release(
        self, job: Job, reason: str, config: Config | None = None, *, now: float | None = None
    ) -> bool:
        """The reaper's transition: a job whose worker is gone counts as a failed attempt
        (retried later, or dead) with no output. False if another reaper got there first."""
        applied, _ = self.fail(job, reason, None, now=now, config=config)
        return applied

    # -- the DLQ ------------------------------------------------------------------------------
    def retry_dead(self, job_ids: Sequence[str] | None) -> tuple[List[str], List[str]]:
        """Put DLQ jobs (those ids, or all when None) back to pending with no attempts spent;
        each move is conditioned on the job still being dead. Returns (retried, not in the
        DLQ)."""
        if job_ids is None:
            wanted = self.store.job_ids(DEAD)
        else:
            wanted = [i for i in dict.fromkeys(job_ids) if _is_text(i)]
        now = self.clock()
        changes = {"state": PENDING, "attempts": 0, "run_at": now, "updated_at": now, **UNLOCK}
        retried = [i for i in wanted if self.store.update_if(i, {"state": DEAD}, changes)]
        done = set(retried)
        missing = [i for i in dict.fromkeys(job_ids or []) if i not in done]
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
