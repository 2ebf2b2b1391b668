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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Sequence, TypeVar

from .backoff import Outcome, after_failure
from .config import Config, ConfigManager
from .errors import DependencyNotFound, DuplicateJob, ForeignRecord, InvalidInput, JobNotFound
from .models import (
    COMPLETED,
    DEAD,
    FAILED,
    ID_PATTERN,
    PENDING,
    PROCESSING,
    READY_STATES,
    STATES,
    Job,
    build_job,
    check_state,
    shown,
    validate_queue,
)
from .store.base import ID_BATCH, PURGEABLE_STATES, FinishedRow, Store

if TYPE_CHECKING:  # the executor (subprocess, selectors) is loaded only where jobs run
    from .executor import Result

Clock = Callable[[], float]
T = TypeVar("T")

# What a worker's own end of an attempt clears: the claim and its lease times (the token
# stays, see above).
SETTLE: dict[str, Any] = {
    "locked_by": None,
    "locked_at": None,
    "lease_renewed_at": None,
    "lease_expires_at": None,
    "cancel_requested": False,
    "live_stdout": None,
    "live_stderr": None,
}
# What every other transition out of `processing` (or out of the DLQ) clears: the token too.
UNLOCK: dict[str, Any] = {**SETTLE, "lease_token": None}
# The worker counter each final state of an attempt adds to.
COUNTERS: dict[str, str] = {COMPLETED: "jobs_done", DEAD: "jobs_failed", FAILED: "jobs_failed"}
CANCELED = "canceled"
CANCELED_RUNNING = "canceled while running"
NO_SUCH_JOB = "does not exist"  # why `cancel` could not cancel an unknown id
# The deepest page `list` reads (an offset beyond what SQLite and MongoDB take as an integer).
MAX_OFFSET = 10**12
# Jobs a text search reads (ids and commands only) beyond an exact id: about 0.1 s on SQLite.
SEARCH_SCAN = 10_000
# Purge (SPEC §7.2): jobs deleted per store write. Each write holds SQLite's write lock for
# about 10 ms, and after each one the purge pauses PURGE_YIELD times as long as the write
# took, so a worker's claim waiting for the lock gets it within about one write, however many
# jobs are purged, and the workers keep most of the machine. Measured with two workers
# running `true` jobs on two cores (`make bench`, step purge): pausing 1x cost them ~30 % of
# their throughput, 2x ~20 %, 3x ~6 %, for a purge of ~10,000, ~6,500, ~5,600 jobs/s.
PURGE_BATCH = 500
PURGE_YIELD = 3.0
PURGE_MIN_PAUSE = 0.002
# A retention sweep (one worker of the fleet per heartbeat_interval) deletes at most this
# many batches, within half a heartbeat_interval.
RETENTION_BATCHES = 100
RETENTION_MARKER = "retention_swept_at"


@dataclass(frozen=True)
class NextClaim:
    """The claim a worker makes in the same store operation as the end of its attempt:
    for `worker_id`, of those queues (every queue when empty), under `token` (chosen by the
    worker, so a lost reply can be looked for), its lease good for `lease_seconds`."""

    worker_id: str
    queues: tuple[str, ...]
    token: str
    lease_seconds: float


def _check_page(state: str | None, queue: str | None, limit: int, offset: int) -> None:
    """InvalidInput unless these select a page of jobs `list` and `search` can give."""
    check_state(state)
    if queue is not None:
        validate_queue(queue)
    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")


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
        nudge_cancel: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.configs = configs
        self.clock = clock
        self._wake = wake or (lambda: None)
        self.batch_size = ID_BATCH  # ids per write when many jobs change at once
        self.purge_batch_size = PURGE_BATCH
        self.pause: Callable[[float], None] = time.sleep  # between purge batches
        # Tells the worker holding a job (by worker id) to look for its cancel at once.
        self._nudge_cancel = nudge_cancel or (lambda _worker_id: None)

    # -- enqueue and read ---------------------------------------------------------------------
    def build(self, specs: Sequence[tuple[str | None, dict[str, Any]]]) -> List[Job]:
        """Validate every spec before anything is written. Each spec comes with a label
        (e.g. "line 3") that prefixes its error, or None for a single job."""
        config = self.configs.load()
        now = self.clock()
        base_seq = time.time_ns()
        jobs: List[Job] = []
        seen: set[str] = set()
        batch_ids = {
            s["id"] for _, s in specs if isinstance(s, dict) and isinstance(s.get("id"), str)
        }
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
            later = [dep for dep in job.after if dep in batch_ids and dep not in seen]
            if later:  # a later line of the batch: no cycle can ever be written
                raise DependencyNotFound(job.id, later[0])
            seen.add(job.id)
            job.seq = base_seq + index
            jobs.append(job)
        if not jobs:
            raise InvalidInput("no job to enqueue: the batch is empty")
        return jobs

    def enqueue(self, specs: Sequence[tuple[str | None, dict[str, Any]]]) -> List[Job]:
        """Validate, then insert all jobs atomically, then wake idle local workers."""
        jobs = self.build(specs)
        self.store.insert_jobs(jobs, self._dead_dependency(self.clock()))
        self._wake()
        return jobs

    def import_jobs(
        self, jobs: Sequence[Job], *, dry_run: bool = False
    ) -> tuple[List[Job], List[str]]:
        """Insert jobs built elsewhere, as they are (an import: ids, states, attempts and
        times kept), except those whose id this store holds; returns the jobs inserted and
        the ids it held. All at once; one at a time only when another process takes one of
        the ids meanwhile. A dry run reads the same and inserts nothing."""
        held = self.states([job.id for job in jobs]) if jobs else {}
        taken = [job.id for job in jobs if job.id in held]
        fresh = [job for job in jobs if job.id not in held]
        if not fresh or dry_run:
            return fresh, taken
        dead_dependency = self._dead_dependency(self.clock())
        try:
            self.store.insert_jobs(fresh, dead_dependency)
        except DuplicateJob:
            kept = []
            for job in fresh:
                try:
                    self.store.insert_jobs([job], dead_dependency)
                    kept.append(job)
                except DuplicateJob:
                    taken.append(job.id)
            fresh = kept
        self._wake()
        return fresh, taken

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""
        job = self.store.get_job(job_id) if _is_text(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(
        self,
        state: str | None = None,
        limit: int = 50,
        queue: str | None = None,
        *,
        now: float | None = None,
        offset: int = 0,
        text: str | None = None,
    ) -> List[Job]:
        """Jobs of one state (or all; of one queue when given), in the order SPEC §5 `list`
        gives: pending and failed jobs that are ready at `now` in claim order, then those
        still waiting, by run_at; other states most recently updated first. `offset` skips
        the first jobs of that order; `text` keeps those whose id or command contains it
        (ASCII letters in either case)."""
        _check_page(state, queue, limit, offset)
        if text is not None and ("\x00" in text or not _is_text(text)):
            return []  # no id or command holds a NUL or a lone surrogate
        when = self.clock() if now is None else now
        return self.store.list_jobs(
            state, limit, now=when, queue=queue, offset=offset, text=text or None
        )

    def finished_after(
        self, state: str, updated_at: float, seq: int, limit: int
    ) -> List[FinishedRow]:
        """At most `limit` jobs of `state` (completed or dead) updated after (updated_at,
        seq), oldest first, as ids, times and durations only (never commands or outputs)."""
        if state not in PURGEABLE_STATES:
            raise InvalidInput(f"only completed and dead jobs have finished, not {state!r}")
        return self.store.finished_after(state, updated_at, seq, limit)

    def search(
        self,
        text: str,
        state: str | None = None,
        queue: str | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        scan: int | None = None,
        now: float | None = None,
    ) -> Found:
        """Jobs whose id or command contains `text` (ASCII letters in either case), of one
        state and queue when given, a page from `offset` on. A `text` that is a job id finds
        that job first, wherever it is; the others come from the first `scan` (default
        SEARCH_SCAN) jobs of `list` order only (no index holds the text inside commands),
        and `Found.complete` says whether that was every job there is. Reads ids and
        commands, then the page's jobs."""
        _check_page(state, queue, limit, offset)
        if not text or "\x00" in text or not _is_text(text):
            return Found([], False, True, 0)  # no id or command holds a NUL or a lone surrogate
        exact: Job | None = None
        if ID_PATTERN.fullmatch(text):
            try:
                exact = self.store.get_job(text)
            except ForeignRecord:
                exact = None
            other_state = state is not None and exact is not None and exact.state != state
            other_queue = queue is not None and exact is not None and exact.queue != queue
            if other_state or other_queue:
                exact = None
        when = self.clock() if now is None else now
        scan = SEARCH_SCAN if scan is None else scan
        ids, complete = self.store.search_job_ids(state, text, scan, now=when, queue=queue)
        if exact is not None:
            ids = [exact.id, *(i for i in ids if i != exact.id)]
        page = ids[offset : offset + limit + 1]
        return Found(self.store.get_jobs(page[:limit]), len(page) > limit, complete, scan)

    def counts(self, queue: str | None = None) -> dict[str, int]:
        """Every state with its count (in one queue, when given), zeros included."""
        if queue is not None:
            validate_queue(queue)
        counted = self.store.count_by_state() if queue is None else self.store.count_by_state(queue)
        return {state: counted.get(state, 0) for state in STATES}

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """For every queue that has jobs: every state with its count, zeros included."""
        return {
            queue: {state: counted.get(state, 0) for state in STATES}
            for queue, counted in sorted(self.store.count_by_queue().items())
        }

    def waiting_for(self, jobs: Sequence[Job]) -> dict[str, List[tuple[str, str]]]:
        """For each pending job still blocked: its dependencies not yet completed, with
        their states (one read for all of them)."""
        blocked = [j for j in jobs if j.state == PENDING and j.waiting > 0 and j.after]
        states = self.store.job_states([dep for j in blocked for dep in j.after])
        return {
            j.id: [
                (dep, states.get(dep, "gone")) for dep in j.after if states.get(dep) != COMPLETED
            ]
            for j in blocked
        }

    def states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of those jobs that exists (bounded batches, one pass)."""
        return self.store.job_states([i for i in job_ids if _is_text(i)])

    def dead(self, limit: int = 1000) -> List[Job]:
        """Jobs in the DLQ, most recently failed first."""
        if limit < 1:
            raise InvalidInput(f"--limit must be at least 1, got {limit}")
        return self.store.list_jobs(DEAD, limit)

    # -- an attempt: claim, renew, and its end ------------------------------------------------
    @staticmethod
    def new_token() -> str:
        """A fresh lease token. The worker picks it before claiming, so that after a lost
        reply it can look for a job claimed under it."""
        # os.urandom, not secrets: `secrets` loads OpenSSL, ~4 MB in every worker process.
        return os.urandom(8).hex()

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] = (),
        token: str | None = None,
        *,
        lease_seconds: float | None = None,
    ) -> Job | None:
        """Take the next ready job of those queues (every queue when empty) for `worker_id`
        under `token` (a new one by default), its lease good for `lease_seconds` (default:
        stale_after); None if none is ready."""
        if lease_seconds is None:
            lease_seconds = self.configs.load().stale_after
        now = self.clock()
        return self.store.claim(
            worker_id,
            now,
            token or self.new_token(),
            queues=tuple(queues),
            lease_expires_at=now + lease_seconds,
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

    def next_run_at(self, queues: Sequence[str] = ()) -> float | None:
        """When the earliest pending or failed job (of those queues) may run, leaving out
        jobs blocked by a dependency (None: no job is waiting)."""
        return self.store.next_run_at(queues) if queues else self.store.next_run_at()

    def progress(self, job: Job, output: tuple[str, str] | None = None) -> bool | None:
        """While `job` runs: store its output so far (when given) under its lease, and say
        whether a cancel was asked for; None when the lease is no longer ours."""
        changes = {} if output is None else {"live_stdout": output[0], "live_stderr": output[1]}
        return self.store.progress(job.id, _token(job), changes)

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
        return self._settle_attempt(job, changes, tally=_tally(job, COMPLETED))

    # -- the end of an attempt and the next claim, as one store operation ---------------------
    def complete_and_claim(
        self, job: Job, result: Result, claim: NextClaim
    ) -> tuple[bool, Job | None]:
        """`complete`, then `claim` of the next job in the same store operation
        (`Store.finish_and_claim`): whether the result was applied, and the job claimed (or
        None). The claim is made even when the result was refused."""
        now = self.clock()
        return self._and_claim(lambda: self.complete(job, result, now=now), claim, now)

    def fail_and_claim(
        self,
        job: Job,
        error: str,
        result: Result | None,
        claim: NextClaim,
        *,
        config: Config | None = None,
    ) -> tuple[tuple[bool, Outcome], Job | None]:
        """`fail`, then `claim` of the next job in the same store operation: fail's
        (applied, outcome), and the job claimed (or None)."""
        now = self.clock()
        return self._and_claim(
            lambda: self.fail(job, error, result, now=now, config=config), claim, now
        )

    def cancel_running_and_claim(
        self, job: Job, result: Result, claim: NextClaim
    ) -> tuple[bool, Job | None]:
        """`cancel_running` (by its worker), then `claim` of the next job in the same store
        operation."""
        now = self.clock()
        return self._and_claim(lambda: self.cancel_running(job, result, now=now), claim, now)

    def _and_claim(
        self, end: Callable[[], T], claim: NextClaim, now: float
    ) -> tuple[T, Job | None]:
        return self.store.finish_and_claim(
            end,
            claim.worker_id,
            now,
            claim.token,
            queues=claim.queues,
            lease_expires_at=now + claim.lease_seconds,
        )

    def _settle_attempt(
        self,
        job: Job,
        changes: dict[str, Any],
        *,
        tally: tuple[str, str] | None = None,
        below: dict[str, float] | None = None,
    ) -> bool:
        """End an attempt, fenced by its lease (and, for the reaper, by `below`), counted by
        `tally` in the same write. A final state goes through `settle`, so the jobs waiting on
        this one learn of it in the same operation."""
        fence = {"state": PROCESSING, "lease_token": _token(job)}
        if changes["state"] not in (COMPLETED, DEAD):
            if below is not None:
                return self.store.update_if(job.id, fence, changes, below=below)
            return self.store.finish(job.id, _token(job), changes, tally=tally)
        now = changes["updated_at"]
        dead_dependency = self._dead_dependency(now)
        settled = self.store.settle(
            job.id, fence, changes, dead_dependency, tally=tally, below=below
        )
        return settled is not None

    def _dead_dependency(self, now: float) -> Callable[[str], dict[str, Any]]:
        """The change a job waiting on a dead dependency gets (SPEC §7.3)."""

        def changes(dep: str) -> dict[str, Any]:
            """What a job waiting on `dep` becomes: dead, saying which dependency died."""
            return {"state": DEAD, "last_error": f"dependency {dep} is dead", "updated_at": now}

        return changes

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
        applied = self._settle_attempt(job, changes, tally=_tally(job, outcome.state))
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

    def cancel_running(
        self,
        job: Job,
        result: Result | None,
        *,
        now: float | None = None,
        below: dict[str, float] | None = None,
    ) -> bool:
        """Record an attempt killed by `cancel`: dead at once, the attempt counted, whatever
        retries were left. Its worker's own record keeps the lease token and counts the end;
        the reaper's (`result` None) clears it. False when the lease was no longer ours."""
        now = self.clock() if now is None else now
        changes = {
            "state": DEAD,
            "updated_at": now,
            "last_error": CANCELED_RUNNING,
            **_outputs(result, now),
            **(SETTLE if result is not None else UNLOCK),
        }
        tally = _tally(job, DEAD) if result is not None else None
        return self._settle_attempt(job, changes, tally=tally, below=below)

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
        if another reaper, or the owner, got there first. A job whose cancel was asked for
        is dead instead: nobody wants it run again."""
        now = self.clock() if now is None else now
        below = None
        if stale_before is not None:
            below = {"lease_renewed_at": stale_before, "lease_expires_at": now}
        if job.cancel_requested:
            return self.cancel_running(job, None, now=now, below=below)
        changes, _ = self._failure(job, reason, None, now, config)
        changes.update(UNLOCK)
        return self._settle_attempt(job, changes, below=below)

    def _requeue_dead(
        self, batch: List[str], changes: dict[str, Any], dead_dependency: Callable[[str], Any]
    ) -> List[str]:
        """Move those ids out of the DLQ where still dead, in the order given: runs of jobs
        without dependencies in one store write each, jobs with dependencies one by one, so
        theirs are counted anew."""
        plain: List[str] = []
        moved: List[str] = []
        states = self.store.job_states(batch)
        for job_id in batch:
            if states.get(job_id) != DEAD:
                continue
            try:
                stored = self.store.get_job(job_id)
            except ForeignRecord:
                continue  # another program's record: left as it is
            if stored is None:
                continue
            if not stored.after:
                plain.append(job_id)
                continue
            # In the order given: the jobs before it (maybe its dependencies) move first.
            if plain:
                moved += self.store.update_many_if(plain, {"state": DEAD}, changes)
                plain = []
            if self.store.requeue(job_id, {"state": DEAD}, changes, dead_dependency):
                moved.append(job_id)
        if plain:
            moved += self.store.update_many_if(plain, {"state": DEAD}, changes)
        return moved

    def repair_dependents(self) -> List[str]:
        """Pass on final states a crashed process did not finish passing on to the jobs
        waiting on them. Returns the ids of jobs made dead."""
        return self.store.resolve_open_dependents(self._dead_dependency(self.clock()))

    # -- cancel -------------------------------------------------------------------------------
    def cancel(
        self, job_ids: Sequence[str] | None, queue: str | None = None
    ) -> tuple[List[str], List[tuple[str, str]]]:
        """SPEC §7.2: pending and failed jobs (those ids, or every one with None, of one
        queue when given) become dead at once; a running one is killed by its worker and
        then dead. Returns (canceled, [(id, why not)]) for ids that are unknown or final."""
        if queue is not None:
            validate_queue(queue)
        if job_ids is None:
            wanted: List[str] = []
            for state in READY_STATES:
                wanted += self.store.job_ids(state, queue) if queue else self.store.job_ids(state)
            # Dependents first: each then gets `canceled`, not the cascade's words.
            wanted.reverse()
        else:
            wanted = [i for i in dict.fromkeys(job_ids)]
        canceled: List[str] = []
        problems: List[tuple[str, str]] = []
        swept: set[str] = set()  # made dead by a cascade of this very command
        for job_id in wanted:
            why = self._cancel_one(job_id, canceled, swept)
            if why and job_ids is not None:
                problems.append((job_id, why))
        return canceled, problems

    def _cancel_one(self, job_id: str, canceled: List[str], swept: set[str]) -> str | None:
        """Cancel one job; the reason it could not be, or None."""
        for _ in range(10):  # the job may move between our read and our write: look again
            job = self.store.get_job(job_id) if _is_text(job_id) else None
            if job is None:
                return NO_SUCH_JOB
            if job.state in (COMPLETED, DEAD):
                if job_id in swept:
                    canceled.append(job_id)
                    return None
                return f"is already {job.state}"
            if job.state == PROCESSING:
                if self._request_cancel(job):
                    canceled.append(job_id)
                    return None
                continue
            now = self.clock()
            changes = {"state": DEAD, "last_error": CANCELED, "updated_at": now, **UNLOCK}
            killed = self.store.settle(
                job_id, {"state": job.state}, changes, self._dead_dependency(now)
            )
            if killed is not None:
                canceled.append(job_id)
                swept.update(killed)
                return None
        return "kept changing state; try again"

    def _request_cancel(self, job: Job) -> bool:
        """Flag a running job for its worker (any machine finds the flag within about
        poll_interval), and nudge that worker if it runs on this machine."""
        flagged = self.store.update_if(
            job.id,
            {"state": PROCESSING, "lease_token": job.lease_token},
            {"cancel_requested": True},
        )
        if flagged and job.locked_by:
            self._nudge_cancel(job.locked_by)
        return flagged

    # -- the DLQ ------------------------------------------------------------------------------
    def retry_dead(
        self,
        job_ids: Sequence[str] | None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[List[str], List[str]]:
        """Put DLQ jobs (those ids, or all when None) back to pending with no attempts spent;
        each move is conditioned on the job still being dead, and made in batches of
        `batch_size` ids, one store write each; `progress(retried so far)` is called after
        each. Returns (retried, not in the DLQ)."""
        now = self.clock()
        changes = {"state": PENDING, "attempts": 0, "run_at": now, "updated_at": now, **UNLOCK}
        dead_dependency = self._dead_dependency(now)
        retried: List[str] = []
        if job_ids is None:
            # Each batch leaves the DLQ, so the next read finds the next one; jobs that die
            # after this started (or die again at once of a dead dependency) are left.
            seen: set[str] = set()
            while batch := self.store.job_ids(DEAD, limit=self.batch_size, updated_until=now):
                fresh = [i for i in batch if i not in seen]
                if not fresh:
                    break
                seen.update(fresh)
                retried += self._requeue_dead(fresh, changes, dead_dependency)
                if progress is not None:
                    progress(len(retried))
            missing: List[str] = []
        else:
            wanted = [i for i in dict.fromkeys(job_ids) if _is_text(i)]
            for start in range(0, len(wanted), self.batch_size):
                batch = wanted[start : start + self.batch_size]
                retried += self._requeue_dead(batch, changes, dead_dependency)
                if progress is not None:
                    progress(len(retried))
            done = set(retried)
            missing = [i for i in dict.fromkeys(job_ids) if i not in done]
        if retried:
            self._wake()
        return retried, missing

    # -- purge and retention (SPEC §7.2) ------------------------------------------------------
    def purge(
        self,
        state: str = COMPLETED,
        older_than: float = 0.0,
        queue: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete `completed` (by finished_at) or `dead` (by updated_at) jobs older than
        `older_than` seconds (0: every one that ended before now), of one queue when given,
        in bounded batches with a pause after each, so that workers' claims never wait
        long. `progress(total so far)` is called after each batch. Returns how many."""
        if state not in PURGEABLE_STATES:
            raise InvalidInput(
                f"--state {shown(state, 40)} is not allowed: purge deletes only completed "
                "or dead jobs (use --state completed or --state dead)"
            )
        if queue is not None:
            validate_queue(queue)
        if not (math.isfinite(older_than) and older_than >= 0):
            raise InvalidInput(f"--older-than must be 0 or more seconds, got {older_than!r}")
        return self._purge(state, self.clock() - older_than, queue, progress=progress)

    def sweep_retention(
        self,
        config: Config,
        *,
        keep_going: Callable[[], bool] | None = None,
        max_batches: int = RETENTION_BATCHES,
    ) -> int:
        """A worker's retention turn: when `retention` is set and no worker of the fleet
        swept within the last heartbeat_interval (a compare-and-set in the store decides),
        delete completed jobs that finished more than `retention` seconds ago, at most
        `max_batches` batches and while `keep_going()` holds. Returns how many."""
        if not config.retention:
            return 0
        now = self.clock()
        if not self.store.take_turn(RETENTION_MARKER, now, config.heartbeat_interval):
            return 0
        return self._purge(
            COMPLETED, now - config.retention, None, keep_going=keep_going, max_batches=max_batches
        )

    def _purge(
        self,
        state: str,
        cutoff: float,
        queue: str | None,
        *,
        progress: Callable[[int], None] | None = None,
        keep_going: Callable[[], bool] | None = None,
        max_batches: int | None = None,
    ) -> int:
        """Batches until one finds less than a full batch (or a bound is reached), pausing
        after each. Jobs that end meanwhile end after `cutoff`, so a purge always ends."""
        total = batches = 0
        dead_dependency = self._dead_dependency(self.clock())
        while True:
            started = time.monotonic()
            deleted = self.store.purge_batch(
                state, cutoff, queue, self.purge_batch_size, dead_dependency
            )
            if not deleted:
                return total
            total += deleted
            batches += 1
            if progress is not None:
                progress(total)
            if deleted < self.purge_batch_size:
                return total
            if max_batches is not None and batches >= max_batches:
                return total
            if keep_going is not None and not keep_going():
                return total
            took = time.monotonic() - started
            self.pause(max(took * PURGE_YIELD, PURGE_MIN_PAUSE))

    # -- stats --------------------------------------------------------------------------------
    def stats(self, queue: str | None = None) -> dict[str, Any]:
        """SPEC §5 `stats`: counts, durations (nearest-rank p50/p95 of completed jobs),
        success rate, retries spent over all jobs, and jobs completed in the last minute
        and hour; all of one queue when given, else with counts per queue (§7.1)."""
        counts = self.counts(queue)
        now = self.clock()
        by = {} if queue is None else {"queue": queue}
        _, mean, (p50, p95) = self.store.duration_stats((0.50, 0.95), **by)
        retried_jobs, their_attempts = self.store.retried_totals(**by)
        finished = counts[COMPLETED] + counts[DEAD]
        data = {
            "jobs": counts,
            "duration": {"mean": mean, "p50": p50, "p95": p95},
            "success_rate": counts[COMPLETED] / finished if finished else None,
            "retries": their_attempts - retried_jobs,
            "throughput": {
                "last_minute": self.store.completed_since(now - 60, **by),
                "last_hour": self.store.completed_since(now - 3600, **by),
            },
        }
        if queue is None:
            data["queues"] = self.queue_counts()
        return data

    def finished_per_minute(
        self, minutes: int = 60, *, now: float | None = None
    ) -> List[tuple[float, int, int]]:
        """Jobs that completed and that went dead in each of the last `minutes` minutes
        (the current one last): (minute start, completed, dead), read from the store."""
        now = self.clock() if now is None else now
        start = (math.floor(now / 60) - minutes + 1) * 60.0
        completed = self.store.finished_by_minute(COMPLETED, start, minutes)
        dead = self.store.finished_by_minute(DEAD, start, minutes)
        return [(start + 60 * n, completed[n], dead[n]) for n in range(minutes)]


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


class Found(NamedTuple):
    """A page of a text search (JobManager.search)."""

    jobs: List[Job]
    has_more: bool  # more matches follow this page
    complete: bool  # every job of the state and queue was searched (else more may match)
    scanned: int  # how many jobs of the order the search read at most


def _is_text(value: str) -> bool:
    """Whether an id is text. Argument bytes that are not UTF-8 reach Python as lone
    surrogates: no job has such an id, and SQLite cannot even encode it, so every store
    answers "not found" alike."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
