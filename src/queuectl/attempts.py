"""The end of an attempt: complete it, fail it (retry later or DLQ), or hand it back.

Every write here is fenced by the lease token the attempt was claimed with, so a worker that
lost its lease can no longer change the job. The worker and the reaper share these functions:
the failure rule exists once.
"""

from __future__ import annotations

from typing import Any

from .backoff import Outcome, after_failure
from .config import Config
from .executor import Result
from .models import COMPLETED, PENDING, Job
from .store.base import Store

UNLOCK = {"locked_by": None, "locked_at": None, "lease_token": None, "lease_renewed_at": None}


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


def complete(store: Store, job: Job, result: Result, now: float) -> bool:
    """Record a successful attempt. False when the lease was no longer ours."""
    changes = {
        "state": COMPLETED,
        "updated_at": now,
        "last_error": None,
        **_outputs(result, now),
        **UNLOCK,
    }
    return store.finish(job.id, _token(job), changes)


def fail(
    store: Store,
    job: Job,
    error: str,
    config: Config,
    now: float,
    result: Result | None = None,
) -> tuple[bool, Outcome]:
    """Record a failed attempt: `failed` with a backoff run_at, or `dead` past max_retries."""
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
    return store.finish(job.id, _token(job), changes), outcome


def hand_back(store: Store, job: Job, now: float) -> bool:
    """Put a job back to pending without spending its attempt (an immediate shutdown)."""
    changes = {
        "state": PENDING,
        "attempts": max(job.attempts - 1, 0),
        "run_at": now,
        "updated_at": now,
        **UNLOCK,
    }
    return store.finish(job.id, _token(job), changes)


def _token(job: Job) -> str:
    if not job.lease_token:
        raise ValueError(f"job {job.id} has no lease token: it was not claimed")
    return job.lease_token
