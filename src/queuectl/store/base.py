"""The Store protocol: the persistence primitives every backend provides, each one atomic.

A store keeps and claims jobs; it never decides what state comes next (the managers do).
Times are epoch seconds (floats) everywhere.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from ..models import Job, Schedule, WorkerInfo


class Store(Protocol):
    """What `jobs`, `workers` and `config` managers need from a backend."""

    url: str  # for messages; never holds a password

    # -- jobs ---------------------------------------------------------------------------
    def insert_jobs(self, jobs: Sequence[Job]) -> None:
        """Insert all of them or none. A taken id raises DuplicateJob."""

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None."""

    def list_jobs(self, state: str | None, limit: int, now: float | None = None) -> list[Job]:
        """Jobs of one state (all if None). Pending/failed: those ready at `now` (default:
        the current time) in claim order, then those waiting, by run_at, so the list is the
        order workers will take them in. Others newest update first."""

    def count_by_state(self) -> dict[str, int]:
        """Number of jobs in each state that has any."""

    def claim(self, worker_id: str, now: float, lease_token: str) -> Job | None:
        """Atomically take the next ready job (SPEC §4 order): set it processing under
        `lease_token`, count the attempt, and return it; None when nothing is ready."""

    def finish(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool:
        """Apply `changes` only if the job is still processing under `lease_token`
        (the fence). Returns whether they were applied."""

    def renew_lease(self, job_id: str, lease_token: str, now: float) -> bool:
        """Extend the lease; False when the lease is no longer ours."""

    def stale_jobs(self, cutoff: float) -> list[Job]:
        """Processing jobs whose lease was last renewed before `cutoff`."""

    def jobs_locked_by(self, worker_id: str) -> list[Job]:
        """Processing jobs held by that worker."""

    def update_if(self, job_id: str, expected: dict[str, Any], changes: dict[str, Any]) -> bool:
        """Apply `changes` only if every field in `expected` still has that value (None
        matches a null), in one atomic step. Returns whether they were applied."""

    def job_ids(self, state: str) -> list[str]:
        """The ids of every job in that state."""

    def next_run_at(self) -> float | None:
        """The earliest run_at among pending and failed jobs."""

    # -- raw aggregates for stats (the manager turns them into figures) ------------------
    def duration_summary(self) -> tuple[int, float | None]:
        """How many completed jobs have a duration, and the mean of those durations."""

    def duration_at(self, rank: int) -> float | None:
        """The duration at zero-based `rank` among completed jobs' durations, ascending."""

    def retried_totals(self) -> tuple[int, int]:
        """How many jobs have more than one attempt, and the sum of their attempts."""

    def completed_since(self, since: float) -> int:
        """How many completed jobs finished at or after `since`."""

    # -- config -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored config values (keys that were set)."""

    def set_config(self, key: str, value: Any) -> None:
        """Store one config value."""

    def unset_config(self, key: str) -> None:
        """Forget one config value."""

    # -- workers ------------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        """Add a worker row."""

    def update_worker(
        self, worker_id: str, changes: dict[str, Any], increments: dict[str, int] | None = None
    ) -> None:
        """Set fields and add to counters of one worker."""

    def get_worker(self, worker_id: str) -> WorkerInfo | None:
        """One worker, or None."""

    def list_workers(self, statuses: Sequence[str] | None = None) -> list[WorkerInfo]:
        """Worker rows (only those statuses, when given), newest first."""

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        """Flag those workers to stop."""

    def mark_workers_lost(self, cutoff: float) -> list[str]:
        """Live workers whose last heartbeat is before `cutoff` become `lost`; their ids."""

    def delete_workers(self, before: float) -> int:
        """Forget stopped and lost workers whose last heartbeat is before `before`."""

    # -- schedules (SPEC §7.5) -----------------------------------------------------------
    def insert_schedule(self, schedule: Schedule) -> None:
        """Add a schedule. A taken name raises DuplicateSchedule."""

    def get_schedule(self, name: str) -> Schedule | None:
        """The schedule with that name, or None."""

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""

    def delete_schedule(self, name: str) -> bool:
        """Remove a schedule; whether it existed."""

    def update_schedule(
        self, name: str, changes: dict[str, Any], expected: dict[str, Any] | None = None
    ) -> bool:
        """Apply `changes` only if the schedule exists and each field in `expected` still
        has that value (a compare-and-set, atomic). Returns whether they were applied."""

    def due_schedules(self, now: float, limit: int) -> list[Schedule]:
        """Schedules not paused whose next_run_at <= now, earliest first: one indexed read."""

    def close(self) -> None:
        """Release connections."""
