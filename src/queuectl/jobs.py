"""JobManager: enqueue, inspect and recover jobs. Decides; the store only keeps."""

from __future__ import annotations

import time
from typing import Any, Callable, List, Sequence

from .config import ConfigManager
from .errors import DuplicateJob, InvalidInput, JobNotFound
from .models import DEAD, STATES, Job, build_job, check_state
from .store.base import Store

Clock = Callable[[], float]


class JobManager:
    """The operations of SPEC §5 on jobs, over any Store."""

    def __init__(self, store: Store, configs: ConfigManager, *, clock: Clock = time.time) -> None:
        self.store = store
        self.configs = configs
        self.clock = clock

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
        from .workers import wake_local_workers

        wake_local_workers(self.store)
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
        return self.store.list_jobs(state, limit)

    def counts(self) -> dict[str, int]:
        """Every state with its count, zeros included."""
        counted = self.store.count_by_state()
        return {state: counted.get(state, 0) for state in STATES}

    def dead(self, limit: int = 1000) -> List[Job]:
        """Jobs in the DLQ, most recently failed first."""
        return self.store.list_jobs(DEAD, limit)

    def retry_dead(self, job_ids: Sequence[str] | None) -> tuple[List[str], List[str]]:
        """Put DLQ jobs back to pending. Returns (retried, not in the DLQ)."""
        wanted = [i for i in dict.fromkeys(job_ids) if _is_text(i)] if job_ids is not None else None
        retried = self.store.retry_dead(wanted, self.clock())
        missing = [i for i in dict.fromkeys(job_ids or []) if i not in set(retried)]
        if retried:
            from .workers import wake_local_workers

            wake_local_workers(self.store)
        return retried, missing

    def stats(self) -> dict[str, Any]:
        """SPEC §5 `stats`: counts, durations, success rate, retries, throughput."""
        counts = self.counts()
        raw = self.store.job_stats(self.clock())
        finished = counts["completed"] + counts["dead"]
        return {
            "jobs": counts,
            "duration": {"mean": raw["mean"], "p50": raw["p50"], "p95": raw["p95"]},
            "success_rate": counts["completed"] / finished if finished else None,
            "retries": raw["retries"],
            "throughput": {"last_minute": raw["last_minute"], "last_hour": raw["last_hour"]},
        }


def _is_text(value: str) -> bool:
    """Whether an id is text. Argument bytes that are not UTF-8 reach Python as lone
    surrogates: no job has such an id, and SQLite cannot even encode it, so every store
    answers "not found" alike."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
