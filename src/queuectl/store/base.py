"""The Store protocol: the persistence primitives every backend provides, each one atomic.

A store keeps and claims jobs; it never decides what state comes next (the managers do).
Times are epoch seconds (floats) everywhere. Records of another shape than queuectl writes
(another program's documents in a shared database) are skipped by every read, with one
warning per record and process (`warn_foreign`).
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any, Callable, Iterable, NamedTuple, Protocol, Sequence, TypeVar

from ..errors import ForeignRecord
from ..models import Job, Schedule, WorkerInfo

# Ids handed to one statement or command at most: a MongoDB command is limited to 16 MiB and
# an SQLite statement to 32,766 parameters, and a short transaction never blocks workers long.
ID_BATCH = 500

T = TypeVar("T")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_foreign(where: str, skipped: Iterable[tuple[Any, str]]) -> None:
    """Say on stderr, once per record and process, that records of another shape were
    skipped: one line naming them (a few by id, the rest counted) and the first reason."""
    with _warned_lock:
        fresh = [(key, why) for key, why in ((repr(i), why) for i, why in skipped)]
        fresh = [(key, why) for key, why in dict(fresh).items() if key not in _warned]
        _warned.update(key for key, _ in fresh)
    if not fresh:
        return
    named = ", ".join(key[:60] for key, _ in fresh[:5])
    more = f" and {len(fresh) - 5} more" if len(fresh) > 5 else ""
    try:
        sys.stderr.write(
            f"Warning: skipped {len(fresh)} record(s) of another shape in {where!r} "
            f"({named}{more}): {fresh[0][1]}; they are not queuectl's and are left as they are\n"
        )
    except (OSError, ValueError):
        pass


def parse_records(
    records: Iterable[dict[str, Any]], parse: Callable[[dict[str, Any]], T], where: str
) -> list[T]:
    """`parse` of each record; records of another shape (ForeignRecord) are skipped, with
    one warning naming them (warn_foreign)."""
    parsed, skipped = [], []
    for record in records:
        try:
            parsed.append(parse(record))
        except ForeignRecord as exc:
            skipped.append((exc.record_id, exc.problem))
    if skipped:
        warn_foreign(where, skipped)
    return parsed


def batches(items: Sequence[Any], size: int = ID_BATCH) -> Iterable[list[Any]]:
    """`items` in consecutive lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# Fleet-wide markers (take_turn) live in the config table or collection under this prefix,
# which no config key can have; get_config leaves them out.
MARKER_PREFIX = "marker:"

# Jobs purge_batch may delete: only jobs that reached a final state.
PURGEABLE_STATES = ("completed", "dead")


def check_purgeable(state: str) -> None:
    """ValueError unless `state` is one purge_batch may delete (a store's own guard: the
    manager turns user input into InvalidInput first)."""
    if state not in PURGEABLE_STATES:
        raise ValueError(f"purge deletes only {' or '.join(PURGEABLE_STATES)} jobs, not {state!r}")


def quantile_rank(n: int, q: float) -> int:
    """Zero-based nearest-rank position of quantile q among n sorted values."""
    return min(n - 1, max(0, math.ceil(q * n) - 1)) if n else 0


# The control version lives in the config table/collection under this key, which no config key
# can take (keys are lower-case words): readers of the config see only the keys they know.
CONTROL_KEY = "_control"


class Poll(NamedTuple):
    """What an idle worker reads once per poll_interval, in one store operation (SPEC §8)."""

    version: int  # the control version: moved by every config change and stop request
    next_run_at: float | None  # earliest run_at of a claimable job (of the queues asked)
    next_schedule_at: float | None  # earliest next_run_at of an active schedule


class FinishedRow(NamedTuple):
    """What /metrics needs of a finished job: never its command or output."""

    id: str
    updated_at: float
    seq: int
    duration: float | None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def text_matches(text: str, *values: Any) -> bool:
    """Whether any of `values` (strings; others never match) contains `text`, ASCII letters
    in either case: what list_jobs' `text` keeps, decided in Python so that both stores
    agree by construction."""
    wanted = text.translate(_ASCII_LOWER)
    return any(isinstance(v, str) and wanted in v.translate(_ASCII_LOWER) for v in values)


def renew_lease(
    store: Store, job_id: str, lease_token: str, now: float, lease_expires_at: float | None = None
) -> bool:
    """Store.renew_lease for every store: one update_if fenced by the lease token and the
    `processing` state, setting lease_renewed_at (and the new deadline when given)."""
    changes: dict[str, Any] = {"lease_renewed_at": now}
    if lease_expires_at is not None:
        changes["lease_expires_at"] = lease_expires_at
    return store.update_if(job_id, {"state": "processing", "lease_token": lease_token}, changes)


# What a job becomes when its dependency (the argument) is dead: the manager decides the
# words, the store applies them to every job that waits on it, however deep.
DeadChanges = Callable[[str], dict[str, Any]]


class Store(Protocol):
    """What `jobs`, `workers` and `config` managers need from a backend."""

    url: str  # for messages; never holds a password

    # -- jobs ---------------------------------------------------------------------------
    def insert_jobs(self, jobs: Sequence[Job], dead_dependency: DeadChanges | None = None) -> None:
        """Insert all of them or none. A taken id raises DuplicateJob; an `after` id that is
        neither stored nor earlier in the batch raises DependencyNotFound. A job with
        dependencies starts blocked (`waiting` = those not completed); one whose dependency
        is dead gets `dead_dependency(dep)` applied at once."""

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None."""

    def list_jobs(
        self,
        state: str | None,
        limit: int,
        now: float | None = None,
        queue: str | None = None,
        offset: int = 0,
        text: str | None = None,
    ) -> list[Job]:
        """Jobs of one state (all if None; of one queue when given). Pending/failed: those
        ready at `now` (default: the current time) in claim order, then those waiting (for
        their run_at or a dependency) by run_at, so the list is the order workers will take
        them in. Others newest update first. The first `offset` jobs of that order are
        skipped. With `text`, only jobs whose id or command contains it, ASCII letters in
        either case (taken as plain text, never as a pattern); without it every read stays
        on an index."""

    def search_job_ids(
        self,
        state: str | None,
        text: str,
        scan: int,
        now: float | None = None,
        queue: str | None = None,
    ) -> tuple[list[str], bool]:
        """The ids of the jobs, among the first `scan` of list_jobs' order (of one state
        and queue when given), whose id or command contains `text` (text_matches), in that
        order; and whether those were all the jobs there are (else more may match further
        on). Reads only ids, commands and the order's columns."""

    def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs with those ids that exist, in the order asked (bounded batches)."""

    def count_by_state(self, queue: str | None = None) -> dict[str, int]:
        """Number of jobs in each state that has any (of one queue, when given)."""

    def count_by_queue(self) -> dict[str, dict[str, int]]:
        """Number of jobs per queue and state."""

    def job_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of those jobs that exists (missing ids are left out)."""

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> Job | None:
        """Atomically take the next ready job (SPEC §4 order) among queuectl's own records, of
        those queues (every queue when empty) whose dependencies are all completed: set it
        processing under `lease_token` with that lease deadline, count the attempt, and
        return it; None when nothing is ready."""

    def finish(
        self,
        job_id: str,
        lease_token: str,
        changes: dict[str, Any],
        tally: tuple[str, str] | None = None,
    ) -> bool:
        """Apply `changes` only if the job is still processing under `lease_token`
        (the fence). Returns whether they were applied. With `tally` (worker id, counter),
        an applied end also counts in that worker's row, as `count_job_end` does: in the
        same transaction where the store has them."""

    def finish_and_claim(
        self,
        end: Callable[[], T],
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> tuple[T, Job | None]:
        """Run `end()` (one attempt's end written through this store's own fenced writes:
        `finish`, `settle`), then `claim(worker_id, now, lease_token, queues,
        lease_expires_at)` whether or not `end` applied; returns both results. The same
        outcome as the two calls one after the other, in one write transaction where the
        store has them (all or nothing), else back to back with no read between. A claim
        that fails after `end` was applied raises ClaimUnanswered carrying `end`'s result."""

    def count_job_end(self, worker_id: str, counter: str, lease_token: str) -> None:
        """Add 1 to a worker's `jobs_done` or `jobs_failed` for the attempt of that lease,
        unless that lease was already counted (so a retry after a lost reply counts once)."""

    def renew_lease(
        self, job_id: str, lease_token: str, now: float, lease_expires_at: float | None = None
    ) -> bool:
        """Extend the lease (renewed now, and the new deadline when given); False when the
        lease is no longer ours."""

    def stale_jobs(self, cutoff: float, now: float) -> list[Job]:
        """Processing jobs whose lease was last renewed before `cutoff` and whose deadline
        (if it has one) is before `now`."""

    def jobs_locked_by(self, worker_id: str) -> list[Job]:
        """Processing jobs held by that worker."""

    def update_if(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        below: dict[str, float] | None = None,
    ) -> bool:
        """Apply `changes` only if every field in `expected` still has that value (None
        matches a null) and every field in `below` is null or less than its bound, in one
        atomic step. Returns whether they were applied."""

    def update_many_if(
        self, job_ids: Sequence[str], expected: dict[str, Any], changes: dict[str, Any]
    ) -> list[str]:
        """`update_if` for a batch of ids (the caller keeps it bounded, e.g. ID_BATCH), as one
        transaction (SQLite) or one multi-document update (MongoDB). Returns the ids it
        changed."""

    def settle(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: DeadChanges,
        tally: tuple[str, str] | None = None,
        below: dict[str, float] | None = None,
    ) -> list[str] | None:
        """Like update_if, for `changes` that make the job `completed` or `dead`; in the same
        operation the jobs waiting on it count it done, or (dead) get
        `dead_dependency(<their dead dependency>)`, however deep. Returns the ids of the
        jobs so made dead, or None when the condition did not hold (nothing changed).
        `below` is update_if's; with `tally` (worker id, counter) a settle that applied also
        counts in that worker's row, as `finish` does."""

    def requeue(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: DeadChanges,
    ) -> bool:
        """Like update_if, for `changes` that make the job pending again: its dependencies
        are counted anew (blocked until all are completed; one still dead applies
        `dead_dependency` at once). Returns whether the condition held."""

    def resolve_open_dependents(self, dead_dependency: DeadChanges) -> list[str]:
        """Finish what a settle interrupted by a crash left undone (stores whose settle is
        one transaction have nothing to do). Returns the ids of jobs made dead."""

    def progress(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool | None:
        """While a job runs: apply `changes` (may be empty) under the lease (the fence) and
        return whether a cancel was requested; None when the lease is no longer ours."""

    def job_ids(
        self,
        state: str,
        queue: str | None = None,
        limit: int | None = None,
        updated_until: float | None = None,
    ) -> list[str]:
        """Ids of jobs in that state (and queue; updated at or before `updated_until`, when
        given). Without `limit`: every one, in enqueue order; with it: up to `limit`, least
        recently updated first."""

    def next_run_at(self, queues: Sequence[str] = ()) -> float | None:
        """The earliest run_at among pending and failed jobs not blocked by a dependency
        (of those queues; every queue when empty)."""

    def poll(self, queues: Sequence[str] = ()) -> Poll:
        """One indexed read for an idle worker: the control version, `next_run_at(queues)`
        (queuectl's own jobs only) and the earliest next_run_at of an active schedule."""

    def ensure_control(self) -> None:
        """Create the control version (0) if it is not stored yet; never moves it. A worker
        calls it as it starts, so the poll always finds the record it reads."""

    def bump_control(self) -> None:
        """Move the control version on (after a config change or a stop request), so that
        idle workers, which read only the version, look at the config and their rows."""

    def purge_batch(
        self,
        state: str,
        cutoff: float,
        queue: str | None,
        limit: int,
        dead_dependency: DeadChanges,
    ) -> int:
        """Delete at most `limit` jobs in `state` (`completed` or `dead`; any other state is
        refused with ValueError) that finished (completed: `finished_at`) or were last
        updated (dead: `updated_at`) at or before `cutoff`, of one queue when given, oldest
        first, through an index and in one short write. A final state not yet passed on to
        the jobs waiting on it (see resolve_open_dependents) is passed on first, with
        `dead_dependency` for a dead one. What tied them to other jobs goes with them (a
        store's reverse dependency records); jobs that name a purged job in `after` count
        it as completed from then on. Returns how many were deleted."""

    # -- raw aggregates for stats (the manager turns them into figures) ------------------
    # None of them reads every job (SPEC §8): each store says how close its figures are.
    def duration_stats(
        self, quantiles: Sequence[float], queue: str | None = None
    ) -> tuple[int, float | None, list[float | None]]:
        """How many completed jobs have a duration, the mean of those durations, and the
        nearest-rank duration at each quantile (`quantile_rank`); exact on a small store,
        a documented approximation on a large one."""

    def retried_totals(self, queue: str | None = None) -> tuple[int, int]:
        """How many jobs have more than one attempt, and the sum of their attempts."""

    def completed_since(self, since: float, queue: str | None = None) -> int:
        """How many completed jobs finished at or after `since`."""

    def finished_by_minute(self, state: str, start: float, minutes: int) -> list[int]:
        """How many jobs reached `state` (`completed`: by finished_at; `dead`: by updated_at)
        in each of `minutes` minutes from `start`: one read of an index range."""

    def finished_after(
        self, state: str, updated_at: float, seq: int, limit: int
    ) -> list[FinishedRow]:
        """At most `limit` jobs of `state` whose (updated_at, seq) comes after the given pair,
        in that order: one range of the (state, updated_at, seq) index, reading only the
        fields of FinishedRow."""

    # -- config -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored config values (keys that were set; markers left out)."""

    def set_config(self, key: str, value: Any) -> None:
        """Store one config value."""

    def unset_config(self, key: str) -> None:
        """Forget one config value."""

    def take_turn(self, name: str, now: float, every: float) -> bool:
        """A compare-and-set on a fleet-wide marker kept with the config (as key
        MARKER_PREFIX + name, which get_config leaves out): set it to `now` if it is missing
        or at most `now - every`, in one atomic step. True for one caller per `every`
        seconds, on any machine."""

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
        """Flag those workers to stop (any number of them: sent in bounded batches)."""

    def mark_workers_lost(self, cutoff: float, now: float) -> list[str]:
        """Live workers whose last heartbeat is before `cutoff` and whose own deadline (if
        the row has one) is before `now` become `lost`; their ids."""

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
