"""One worker: claim a job, run it, record the result; repeat. A heartbeat thread keeps the
worker's row and its job's lease fresh, runs the reaper, and starts retention sweeps (each in
a thread of its own, see retention.py).

Replies can be lost (a connection cut after the store applied a write): a claim is made under
a token the worker chose, so it can look for the job it may hold; a result write that is
refused after an earlier try failed is checked against the stored job before it is called a
lost lease (SPEC §8).
"""

from __future__ import annotations

import math
import os
import select
import sys
import threading
import time
import weakref
from typing import Any, Callable, Sequence, cast

from .backoff import Outcome
from .config import Config
from .errors import ClaimUnanswered, StoreUnavailable
from .executor import Execution, Result
from .jobs import CANCELED_RUNNING, JobManager, NextClaim
from .models import DEAD, Job, WorkerInfo, WorkerStatus, format_time
from .notify import JOB_COMPLETED, JOB_DEAD, Notifier
from .retention import RetentionSweeper
from .schedules import ScheduleManager
from .text import printable
from .workers import WorkerManager

IDLE, BUSY = WorkerStatus.IDLE, WorkerStatus.BUSY
STOPPING, STOPPED = WorkerStatus.STOPPING, WorkerStatus.STOPPED

INTERRUPTED = "interrupted by an immediate shutdown"
MAX_WRITE_BACKOFF = 10.0
# After a heartbeat that could not reach the store, the next try comes this soon (or at the
# heartbeat interval, if shorter), so a worker renews its lease as soon as the store is back.
HEARTBEAT_RETRY = 1.0
# A running job's output is stored about this often while it changes (SPEC §7.4), and its
# cancel flag read at least this often; a job that ends sooner costs neither.
FLUSH_INTERVAL = 1.0
NOTIFY_DRAIN = 5.0  # seconds a stopping worker waits for notifications still being sent
# A worker reaps at most every stale_after / REAPS_PER_STALE_AFTER seconds (and never more often
# than it heartbeats): a fleet of idle workers need not all reap every beat (SPEC §8), and a
# lost worker's job is still released within 10 % of stale_after of it going stale.
REAPS_PER_STALE_AFTER = 10
# Forgetting long-gone worker rows, repairing dependents a crash left open, and reading the
# config and stop flag whatever the control version says (an older release's `config set` or
# `worker stop` does not move it) are chores: an hour between them is plenty.
CHORES_EVERY = 3600.0

# A write that ends an attempt: given a NextClaim, it also claims the next job in the same
# store operation. Returns whether the end was applied, and the job claimed (if any).
Ending = Callable[[NextClaim | None], "tuple[bool, Job | None]"]


class Worker:
    """One worker over the job and worker managers. `step()` runs one job; `run()` loops
    until stopped."""

    def __init__(
        self,
        jobs: JobManager,
        workers: WorkerManager,
        index: int = 1,
        *,
        burst: bool = False,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        self.jobs = jobs
        self.manager = workers
        self.index = index
        self.burst = burst
        self.queues = list(queues)  # empty: every queue
        self.clock = clock
        self.info: WorkerInfo | None = None
        self.config: Config = Config.defaults()
        self.stopping = False
        self.abort = False
        # request_stop was called (a signal): another call stops at once. A stop the worker
        # noticed itself (through the store, or its supervisor gone) is not a first signal.
        self._stop_asked = False
        self._log = log or _print_line
        # Re-entrant: the signal handler (request_stop) runs on the main thread and may
        # interrupt it while it holds this lock.
        self._lock = threading.RLock()
        self._current: tuple[Job, Execution] | None = None
        # The claimed job until its result is written: its lease is renewed all that time, so
        # a slow write (a store outage) does not let the reaper take it back from us.
        self._held: Job | None = None
        # A claim in flight (until its job is held) and how many were made: the heartbeat
        # never hands back a job a claim of ours may just have taken.
        self._claiming = False
        self._claims = 0
        # The token of a claim that raised: the store may have applied it anyway.
        self._lost_claim: str | None = None
        # A job claimed with the last result (one store operation) and held, not yet run.
        self._next: Job | None = None
        # The environment of every job, built (and encoded) once: each job adds only its own
        # variables.
        self._env: dict[bytes, bytes] | None = None
        # Until when the heartbeat looks for jobs held in our name but not in our hands (a
        # claim applied after we gave up on it).
        self._orphans_until = float("-inf")
        # Only row writes take this lock (never a signal handler), so a slow store call
        # cannot block a Ctrl+C.
        self._row_lock = threading.Lock()
        self._row_final = False
        self._beat_failed = False
        self._next_refresh = 0.0
        # The idle poll (SPEC §8): one store read per poll_interval gives the control version
        # (config changes and stop requests move it), when the next job is due and when the
        # next schedule is. A claim is tried only when a job may be ready: the poll said so,
        # a job just ran (more may follow), or a local enqueue woke us.
        self._version: int | None = None
        self._polled_at = float("-inf")  # time.monotonic() of the last poll
        self._due: float | None = None  # run_at of the next claimable job, as last polled
        self._claim_hint = True
        self._control_lock = threading.Lock()
        self._next_reap = self._next_chores = float("-inf")  # by self.clock
        # The idle loop's interval clock (a test moves it with the wall clock it gives).
        self.monotonic: Callable[[], float] = time.monotonic
        self._told: float | None = None  # the run_at a burst worker last said it waits for
        self.schedules = ScheduleManager(jobs, clock=clock, log=self.log)
        self.notifier = Notifier(jobs, lambda: self.config, self.log)
        self.retention = RetentionSweeper(jobs, self.log)
        self._next_tick = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._heartbeat_stop = threading.Event()
        # A pipe, like the wake pipe: writing to it is safe from a signal handler.
        self._beat_r, self._beat_w = os.pipe()
        for fd in (self._beat_r, self._beat_w):
            os.set_blocking(fd, False)
        # Poked when a cancel may have been asked for the running job (or the job ended).
        self._watch_r, self._watch_w = os.pipe()
        for fd in (self._watch_r, self._watch_w):
            os.set_blocking(fd, False)
        self._pipes: tuple[int, ...] = (
            self._wake_r,
            self._wake_w,
            self._beat_r,
            self._beat_w,
            self._watch_r,
            self._watch_w,
        )
        # A worker dropped without close() (a test's, an embedding program's) still gives its
        # descriptors back when it is collected; close() runs the same finalizer, once.
        self._close_pipes = weakref.finalize(self, _close_all, self._pipes)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> WorkerInfo:
        """Register, read the config, and reap what dead local workers left behind."""
        # The version first: a change stored after this read moves it, so the first poll
        # sees it and reads the config again.
        poll = self.manager.first_poll(self.queues)
        self._version, self._due = poll.version, poll.next_run_at
        self.config = self.manager.settings()
        self._claim_hint = False  # the poll says whether a job is due (run() polls first)
        self.info = self.manager.register(
            self.index, self.queues, stale_after=self.config.stale_after
        )
        self._reap(self.config)  # chores included
        self._next_chores = self.clock() + CHORES_EVERY
        self.log(f"started (pid {os.getpid()})")
        return self.info

    def run(self, parent_pid: int | None = None) -> int:
        """Loop until a stop is requested (or, with burst, no job is left). Returns 0."""
        if self.info is None:
            self.start()
        heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        heartbeat.start()
        failures = 0
        try:
            while not self.stopping:
                try:
                    self._refresh(parent_pid)
                    if self.stopping:
                        break
                    if self._may_claim():
                        # Cleared before the claim: a wake during it asks for another.
                        self._claim_hint = False
                        if self.step(chain=True):
                            self._claim_hint = True  # more may be ready: claim again at once
                            failures = 0
                            continue
                        self._due = None  # nothing claimable now: wait for the next poll
                    if not self._idle():
                        break
                    failures = 0
                except StoreUnavailable as exc:
                    failures += 1
                    delay = min(0.5 * 2 ** min(failures, 5), MAX_WRITE_BACKOFF)
                    self.log(f"store unavailable ({exc}); retrying in {delay:g}s")
                    self._wait(delay)
        finally:
            self._heartbeat_stop.set()
            _poke(self._beat_w)
            heartbeat.join(timeout=5)
            self._finish()
        return 0

    def request_stop(self, immediate: bool = False) -> None:
        """Graceful: take no new job, finish the current one. Immediate: kill it too and
        hand its job back without spending the attempt."""
        if immediate or self._stop_asked:
            self.abort = True
            with self._lock:
                current = self._current
            if current:
                current[1].kill(INTERRUPTED)
        self._stop_asked = True
        self._stop_gracefully()

    @property
    def stop_asked(self) -> bool:
        """Whether a stop was already asked with request_stop (the next one is immediate)."""
        return self._stop_asked

    def _stop_gracefully(self) -> None:
        """Take no new job, finish the current one; never escalates to an immediate stop."""
        self.stopping = True
        # Show `stopping` in the store now, not at the next heartbeat: `worker stop` signals
        # only workers not yet stopping, and a second signal would mean "stop at once".
        _poke(self._beat_w)
        self.wake()

    def close(self) -> None:
        """Close the wake and heartbeat pipes. Call once the worker is done and no signal
        handler can reach it any more (a closed pipe's number may be reused by a new file)."""
        self._pipes = ()
        # -1: a late poke fails harmlessly instead of writing to a reused descriptor.
        self._wake_w = self._beat_w = self._watch_w = -1
        self._close_pipes()

    @property
    def busy(self) -> bool:
        """Whether a claimed job has not yet been settled."""
        return self._held is not None

    def wake(self) -> None:
        """Interrupt an idle wait and claim at once (safe from a signal handler)."""
        self._claim_hint = True
        _poke(self._wake_w)

    def check_cancel(self) -> None:
        """Look at once whether the running job was canceled (safe from a signal handler)."""
        _poke(self._watch_w)

    # -- one job --------------------------------------------------------------------------
    def step(self, chain: bool = False) -> bool:
        """Claim one ready job, run it, record the result. False when none was ready. With
        `chain`, the result and the claim of the next job are one store operation
        (`Store.finish_and_claim`), and that job is held for the next step; a step first runs
        a job so held."""
        assert self.info is not None, "call start() first"
        with self._lock:
            job, self._next = self._next, None
            if job is not None and self.stopping:
                # A stop came since the loop last looked: the job stays unstarted, for the
                # stop's hand-back (attempt unspent).
                self._next = job
                return False
        if job is None:
            job = self._claim_held(self.info.id)
            if job is None:
                return False
        self.log(
            f"job {job.id} started (attempt {job.attempts}/{job.max_retries + 1}): "
            f"{printable(job.command, 120)}"
        )
        execution = Execution(job.command, job.timeout, self._job_env(job))
        with self._lock:
            self._current = (job, execution)
        if self.abort:
            execution.kill(INTERRUPTED)
        ended = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(job, execution, ended), daemon=True)
        watcher.start()
        try:
            try:
                result = execution.run()
            finally:
                ended.set()
                _poke(self._watch_w)
                watcher.join()
                with self._lock:
                    self._current = None
            self._settle(job, result, execution, chain)
        finally:
            with self._lock:
                if self._held is job:
                    self._held = None
        return True

    def _claim_held(self, worker_id: str) -> Job | None:
        """Claim the next job and hold it (its lease renewed from then on)."""
        with self._lock:
            self._claiming = True
            self._claims += 1
        try:
            job = self._claim(worker_id)
            with self._lock:
                self._held = job
            return job
        finally:
            # Only now that the job is held (or none was taken) may the heartbeat look for
            # jobs in our name that we do not hold.
            with self._lock:
                self._claiming = False

    def _job_env(self, job: Job) -> dict[bytes, bytes]:
        """The command's environment: this worker's, built on its first job, plus the
        job's own variables."""
        assert self.info is not None
        if self._env is None:
            base = {**os.environ, "QUEUECTL_WORKER_ID": self.info.id}
            # Encoded once, as subprocess would encode it for every job.
            self._env = {os.fsencode(k): os.fsencode(v) for k, v in base.items()}
        return {
            **self._env,
            b"QUEUECTL_JOB_ID": os.fsencode(job.id),
            b"QUEUECTL_ATTEMPT": b"%d" % job.attempts,
        }

    def _claim(self, worker_id: str) -> Job | None:
        """The next job, under a token chosen here. A claim that raised may still have been
        applied: the next call first looks for a job held under that token."""
        lost = self._lost_claim
        if lost is not None:
            found = self.jobs.claimed_with(worker_id, lost)
            self._lost_claim = None
            if found is not None:
                self.log(f"job {found.id}: the claim's reply was lost; running it as claimed")
                return found
        token = self.jobs.new_token()
        try:
            return self.jobs.claim(
                worker_id, self.queues, token, lease_seconds=self.config.stale_after
            )
        except StoreUnavailable:
            # Should the claim reach the store only after we looked for it, the heartbeat
            # hands the job back; a request cannot linger longer than stale_after.
            self._claim_lost(token)
            raise

    def _watch(self, job: Job, execution: Execution, ended: threading.Event) -> None:
        """While the job runs: about once a second store its output if it changed, and
        every poll_interval (or at once when poked) look whether it was canceled; a cancel
        kills the command's process group, as a timeout does."""
        tick = min(float(self.config.poll_interval), FLUSH_INTERVAL)
        started = last_flush = time.monotonic()
        stored = 0
        while True:
            _sleep_on(self._watch_r, tick)
            if ended.is_set():
                return
            now = time.monotonic()
            total = execution.output_total
            due = total != stored and now - last_flush >= FLUSH_INTERVAL * 0.9
            output = execution.output() if due and now - started >= FLUSH_INTERVAL * 0.9 else None
            try:
                canceled = self.jobs.progress(job, output)
            except StoreUnavailable:
                continue  # the heartbeat reports the outage; output is stored at the end
            if output is not None and canceled is not None:
                stored, last_flush = total, now
            if canceled and not execution.kill_reason:
                self.log(f"job {job.id}: cancel requested; killing its command")
                execution.kill(CANCELED_RUNNING)

    def _settle(self, job: Job, result: Result, execution: Execution, chain: bool = False) -> None:
        """Record how the attempt ended (with `chain`, claiming the next job in the same
        store operation), then log it and send its notification."""
        if execution.kill_reason == INTERRUPTED:
            if self._write(job, lambda _claim: (self.jobs.hand_back(job), None)):
                self.log(f"job {job.id} interrupted; returned to pending")
            return
        # The loop does not poll while a job runs: after a long one, read the control version
        # (one read, only when no poll came for two poll_intervals) so the notification follows
        # a config changed meanwhile (SPEC §5: changes apply within poll_interval).
        try:
            self._fresh_config(busy=False)
        except StoreUnavailable:
            pass  # the result comes first; the loop's next poll reads the config
        if execution.kill_reason == CANCELED_RUNNING:

            def cancel(claim: NextClaim | None) -> tuple[bool, Job | None]:
                if claim is None:
                    return self.jobs.cancel_running(job, result), None
                return self.jobs.cancel_running_and_claim(job, result, claim)

            if self._write(job, cancel, chain):
                self.log(f"job {job.id} canceled while running; moved to DLQ")
                self.notifier.job_finished(job.id, JOB_DEAD)
            return
        if result.ok:

            def complete(claim: NextClaim | None) -> tuple[bool, Job | None]:
                if claim is None:
                    return self.jobs.complete(job, result), None
                return self.jobs.complete_and_claim(job, result, claim)

            if self._write(job, complete, chain):
                self.log(f"job {job.id} completed in {result.duration:.2f}s")
                self.notifier.job_finished(job.id, JOB_COMPLETED)
            return
        error = result.error or "failed"
        outcome: Outcome | None = None

        def record(claim: NextClaim | None) -> tuple[bool, Job | None]:
            nonlocal outcome
            self.config = self.manager.settings()  # the job may have run for long
            if claim is None:
                applied, outcome = self.jobs.fail(job, error, result, config=self.config)
                return applied, None
            try:
                (applied, outcome), following = self.jobs.fail_and_claim(
                    job, error, result, claim, config=self.config
                )
            except ClaimUnanswered as exc:  # the result was written: keep what it was
                applied, outcome = cast("tuple[bool, Outcome]", exc.written)
                raise ClaimUnanswered(applied, str(exc)) from None
            return applied, following

        written = self._write(job, record, chain)
        if not isinstance(written, bool):  # a try whose reply was lost: say what it stored
            outcome = Outcome(written.state, written.run_at, written.run_at - written.updated_at)
        if not written or outcome is None:
            return
        if outcome.state == DEAD:
            self.log(f"job {job.id} failed: {printable(error, 200)}; moved to DLQ")
            self.notifier.job_finished(job.id, JOB_DEAD)
        else:
            delay = round(outcome.delay or 0.0, 3)
            self.log(f"job {job.id} failed: {printable(error, 200)}; retry in {delay:g}s")

    def _write(self, job: Job, write: Ending, chain: bool = False) -> bool | Job:
        """Apply a fenced write that ends `job`'s attempt, retrying through store outages.
        True when applied; False when refused (the lease was taken by the reaper: logged,
        not applied). A refusal after a try that raised is checked, as the store may have
        applied that try and lost only its reply: then the job as stored is returned (and
        its end counted, once). With `chain`, the first try also claims the next job (see
        `_write_and_claim`); a retry writes the result alone."""
        delay = 0.5
        raised = False
        while True:
            try:
                if chain and not raised and not self.stopping:
                    applied = self._write_and_claim(write)
                else:
                    applied, _ = write(None)
                if applied:
                    return True
                if raised and (stored := self.jobs.settled(job)) is not None:
                    self.jobs.count_end(job, stored)
                    return stored
                break
            except StoreUnavailable as exc:
                if self.abort:
                    self.log(f"store unavailable ({exc}); giving up the result at shutdown")
                    return False
                raised = True
                self.log(f"store unavailable ({exc}); retrying the write in {delay:g}s")
                self._wait(delay)
                delay = min(delay * 2, MAX_WRITE_BACKOFF)
        self.log("result refused: the job's lease was lost (it was reclaimed)")
        return False

    def _write_and_claim(self, write: Ending) -> bool:
        """One try of `write` with the claim of the next job in the same store operation,
        under a token chosen here; the job claimed is held for the next step. A claim that
        raised may still have been applied: it is looked for as any lost claim is (the next
        claim first, the heartbeat's hand-back of orphans after)."""
        assert self.info is not None
        token = self.jobs.new_token()
        claim = NextClaim(self.info.id, tuple(self.queues), token, float(self.config.stale_after))
        following: Job | None = None
        with self._lock:
            self._claiming = True
            self._claims += 1
        try:
            applied, following = write(claim)
            return applied
        except ClaimUnanswered as exc:  # the result was written; the claim is unknown
            self._claim_lost(token)
            self.log(f"store unavailable ({exc}) while claiming the next job")
            return bool(exc.written)
        except StoreUnavailable:
            self._claim_lost(token)
            raise
        finally:
            with self._lock:
                if following is not None:
                    self._held = self._next = following
                self._claiming = False

    def _claim_lost(self, token: str) -> None:
        """A claim under `token` raised: the next claim looks for it first, and the heartbeat
        hands back what it may have taken for as long as such a request can linger."""
        self._lost_claim = token
        self._orphans_until = self.clock() + self.config.stale_after

    def _release_next(self) -> None:
        """Hand back (attempt unspent, place kept) a job claimed with the last result that
        was never started: the worker stopped first."""
        with self._lock:
            job, self._next = self._next, None
            if job is not None and self._held is job:
                self._held = None
        if job is None:
            return
        # Through a store outage, as a result is written: left processing, the job would be
        # charged an attempt by a reaper without having run (SPEC §8).
        if self._write(job, lambda _claim: (self.jobs.hand_back(job, keep_place=True), None)):
            self.log(f"job {job.id}: claimed but not started before the stop; handed back")

    # -- idle, refresh, heartbeat ---------------------------------------------------------
    def _may_claim(self) -> bool:
        """Whether a claim is worth its store call: always for a burst worker; otherwise
        after a job ran, after a wake, or when the last poll saw a job due by now. A job
        held from the last result is run whatever the poll saw (to it, that job is taken),
        and the job a claim whose reply was lost may have taken is looked for at once."""
        if self.burst or self._claim_hint:
            return True
        if self._next is not None or self._lost_claim is not None:
            return True
        return self._due is not None and self._due <= self.clock()

    def _idle(self) -> bool:
        """Wait for work. Returns False when a burst worker has nothing left to wait for."""
        if not self.burst:
            # Until the next poll, or until the job the last poll saw comes due: no store
            # call here (the poll read when the next job is due).
            timeout = max(self._next_refresh - self.monotonic(), 0.0)
            if self._due is not None:
                timeout = min(timeout, max(self._due - self.clock(), 0.0))
            self._wait(timeout)
            return True
        next_run = self.jobs.next_run_at(self.queues)
        if self.burst and next_run is None:
            return False
        timeout = float(self.config.poll_interval)
        if next_run is not None:
            timeout = min(timeout, max(next_run - self.clock(), 0.0))
            if self.burst and next_run > self.clock() + timeout and next_run != self._told:
                # A burst worker may wait hours for a scheduled job: say what it waits for.
                self._told = next_run
                self.log(f"waiting for the next scheduled job, due at {format_time(next_run)}")
        self._wait(timeout)
        return True

    def _wait(self, timeout: float) -> None:
        _sleep_on(self._wake_r, timeout)

    def _refresh(self, parent_pid: int | None) -> None:
        """At most once per poll_interval, one store read (the poll): when the control
        version moved, reload the config and look for a stop request; when a schedule is
        due, enqueue its job; remember when the next job is due."""
        now = self.monotonic()
        if now < self._next_refresh:
            return
        poll = self.manager.poll(self.queues)
        self._polled_at = now
        self._due = poll.next_run_at
        self._control(poll.version)
        self._next_refresh = now + float(self.config.poll_interval)
        if parent_pid is not None and os.getppid() != parent_pid and not self.stopping:
            self.log("supervisor exited; stopping")
            self._stop_gracefully()
        if poll.next_schedule_at is not None and poll.next_schedule_at <= self.clock():
            self._tick()

    def _control(self, version: int | None) -> None:
        """Act on a control version read just now: if it moved (or with None, always),
        reload the config and look for a stop request. A new heartbeat_interval or
        stale_after wakes the heartbeat, which renews at once with the new values instead
        of at the end of a sleep begun under the old ones."""
        with self._control_lock:
            if version is not None and version == self._version:
                return
            before = self.config
            self.config = self.manager.settings()
            if version is not None:
                self._version = version  # after the read: a failed read is tried again
            timing = ("heartbeat_interval", "stale_after")
            if any(getattr(before, k) != getattr(self.config, k) for k in timing):
                self._next_reap = float("-inf")  # the reaper's pace follows the new values
                _poke(self._beat_w)
            assert self.info is not None
            stop = self.manager.stop_requested(self.info.id)
        if stop and not self.stopping:
            self.log("stop requested through the store")
            self._stop_gracefully()

    def _fresh_config(self, busy: bool) -> Config:
        """The config as stored now, give or take one poll_interval: the idle loop keeps it
        so through the control version; while a job runs (the loop does not poll), or when
        the loop has not polled for longer, the version is read here."""
        quiet = self.monotonic() - self._polled_at > 2 * float(self.config.poll_interval)
        if busy or quiet:
            self._control(self.manager.poll(self.queues).version)
        return self.config

    def _tick(self) -> None:
        """Enqueue the jobs of due schedules, at most once per poll_interval: from the loop
        when idle or between jobs, from the heartbeat while a long job runs."""
        now = self.monotonic()
        with self._lock:
            if now < self._next_tick:
                return
            self._next_tick = now + float(self.config.poll_interval)
        for job_id in self.schedules.tick(self.clock()):
            self.log(f"job {job_id} enqueued by its schedule")

    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.is_set():
            interval = float(self.config.heartbeat_interval)
            if self._beat_failed:
                interval = min(interval, HEARTBEAT_RETRY)
            _sleep_on(self._beat_r, interval)
            if self._heartbeat_stop.is_set():
                break
            try:
                self.heartbeat()
                self._beat_failed = False
            except Exception as exc:  # the heartbeat must outlive any single failure
                self._beat_failed = True
                self.log(f"heartbeat failed: {exc}")

    def heartbeat(self) -> None:
        """Say we are alive until now + stale_after (the config read now), renew the
        running job's lease to the same deadline (killing the command if the lease is gone),
        hand back jobs claimed for us by a request whose reply was lost, and reap lost
        workers' jobs. A store that cannot be reached raises StoreUnavailable: the lease
        stays ours until a reaper that sees the store finds it stale."""
        assert self.info is not None
        with self._lock:
            current, held = self._current, self._held
        config = self._fresh_config(busy=held is not None)
        now = self.clock()
        status = STOPPING if self.stopping else (BUSY if held else IDLE)
        self._update_row(
            {
                "last_heartbeat": now,
                "expires_at": now + config.stale_after,
                "status": status,
                "current_job": held.id if held else None,
            }
        )
        if held:
            # Renewed before reaping, so our own reaper never sees our lease as stale; stamped
            # with the time of the renewal itself, not of the heartbeat's start (the row write
            # before it may have waited on a slow store).
            if not self.jobs.renew(held, lease_seconds=config.stale_after):
                self._lease_lost(held, current)
        if now <= self._orphans_until:
            self._hand_back_orphans()
        if now >= self._next_reap:
            self._next_reap = now + max(
                config.heartbeat_interval, config.stale_after / REAPS_PER_STALE_AFTER
            )
            chores = now >= self._next_chores
            if chores:
                self._next_chores = now + CHORES_EVERY
                # A change an older release wrote moved no version: read anyway, now and then.
                self._control(None)
                config = self.config
            self._reap(config, chores=chores)
            # In a thread of its own: a long sweep never delays the next renewal. At the
            # reaper's pace, so an idle worker's heartbeat costs the store no extra read.
            self.retention.kick(config)
        if held:  # an idle loop ticks when its poll sees a schedule due
            self._tick()

    def _lease_lost(self, held: Job, seen: tuple[Job, Execution] | None) -> None:
        """A renewal found the lease gone: kill the command if it is still the one that
        was running when the heartbeat began (a job that ended meanwhile, and was settled,
        refuses renewals because it is done, not because it was taken). A job claimed with
        the last result and not yet started is dropped: it is someone else's to run now."""
        with self._lock:
            current = self._current
            dropped = held is self._next
            if dropped:
                self._next = None
                if self._held is held:
                    self._held = None
        if dropped:
            self.log(f"job {held.id}: lease lost before it started; not running it")
            return
        if current is None or current is not seen or current[0] is not held:
            return
        if not current[1].kill_reason:  # an immediate stop hands the job back: nothing lost
            self.log(f"job {held.id}: lease lost; killing its command")
            current[1].kill("lease lost")

    def _hand_back_orphans(self) -> None:
        """Hand back (without spending the attempt) jobs processing in our name that we do
        not hold: a claim that reached the store after we gave up on it."""
        assert self.info is not None
        with self._lock:
            if self._claiming:
                return
            claims = self._claims
        found = self.jobs.locked_by(self.info.id)
        with self._lock:
            if self._claiming or self._claims != claims:
                return  # a claim of ours ran meanwhile: what we read may be its job
            held = self._held
            # The next claim looks for this one's job first (and may be doing so by the
            # time we would write): it is that claim's to run, not ours to hand back.
            lost = self._lost_claim
        for job in found:
            if held is not None and job.lease_token == held.lease_token:
                continue
            if lost is not None and job.lease_token == lost:
                continue
            if self.jobs.hand_back(job, keep_place=True):
                self.log(f"job {job.id}: claimed by a request whose reply was lost; handed back")

    def _reap(self, config: Config, chores: bool = True) -> None:
        # Fresh config (read by the caller): judging other workers' leases by a stale_after
        # read before a long job began would release healthy jobs after it was raised.
        for job_id in self.manager.reap(config, chores=chores):
            self.log(f"job {job_id} released from a lost worker")
            self.notifier.job_finished(job_id)  # sent only if that made it dead

    def _finish(self) -> None:
        if self.info is None:
            return
        self.retention.stop()
        self.notifier.close(0 if self.abort else NOTIFY_DRAIN)
        try:
            self._release_next()
        except StoreUnavailable as exc:
            self.log(f"could not hand back the job claimed for the next step: {exc}")
        try:
            # Whatever is processing in our name now is not ours to run (a claim whose
            # reply was lost): back to pending with its attempt unspent.
            self._lost_claim = None  # no claim will look for its job any more
            self._hand_back_orphans()
        except StoreUnavailable as exc:
            self.log(f"could not look for jobs claimed by lost requests: {exc}")
        try:
            self._update_row(
                {"status": STOPPED, "current_job": None, "last_heartbeat": self.clock()}
            )
        except StoreUnavailable as exc:
            self.log(f"could not record the stop: {exc}")
        self.log("stopped")

    # -- our row and the log --------------------------------------------------------------
    def _update_row(self, changes: dict[str, Any]) -> None:
        """Write our row. Once `stopped` is written, nothing more is: a heartbeat that
        outlived the join in run() must not make the row look alive."""
        assert self.info is not None
        with self._row_lock:
            if self._row_final:
                return
            self.manager.update(self.info.id, changes)
            self._row_final = changes.get("status") == STOPPED

    def log(self, message: str) -> None:
        """One line per event, prefixed with the worker id."""
        name = self.info.id if self.info else f"worker {self.index}"
        self._log(f"[{name}] {message}")


def _poke(fd: int) -> None:
    """Wake whoever sleeps on the pipe whose write end is `fd`; safe in a signal handler."""
    try:
        os.write(fd, b"!")
    except (BlockingIOError, OSError):
        pass


def _close_all(fds: tuple[int, ...]) -> None:
    """Close each descriptor, ignoring those already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _sleep_on(fd: int, timeout: float) -> None:
    """Sleep up to `timeout` seconds, or until the pipe whose read end is `fd` is poked.
    poll, not select: select refuses a descriptor numbered 1024 or more, which a process
    holding many files (a web server, a test run) may well give a worker's pipe."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if poller.poll(max(0, math.ceil(timeout * 1000))):
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass


def _print_line(line: str) -> None:
    # A closed terminal or pipe must not stop the worker: its log is a courtesy, the store
    # is the record.
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
