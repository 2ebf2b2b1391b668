"""MongoStore: the shared store for workers on many machines.

Every primitive is one atomic server operation on one document (the claim is
find_one_and_update), so it behaves the same on a standalone server, a replica set, Atlas and
mongomock. pymongo is imported only here, and only when a MongoDB URL is used.

Reads that decide (the claim, the reaper, lease and stop checks) go to the primary whatever
the URL's readPreference: a secondary may be behind, and a decision made on an old copy can
take a live lease. Only what users read (`list`, `status`, `stats`) follows the URL.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from ..errors import (
    ClaimUnanswered,
    DependencyNotFound,
    DuplicateJob,
    DuplicateSchedule,
    ForeignRecord,
    QueuectlError,
    StoreUnavailable,
)
from ..models import DEFAULT_QUEUE, READY_STATES, STATES, Job, Schedule, WorkerInfo
from ..models import shape_problem as shape_problem_of
from . import url_password
from .base import (
    CONTROL_KEY,
    MARKER_PREFIX,
    DeadChanges,
    FinishedRow,
    Poll,
    batches,
    check_purgeable,
    parse_records,
    quantile_rank,
    renew_lease,
    text_matches,
    warn_foreign,
)

T = TypeVar("T")
CLAIM_SORT = [("priority", -1), ("run_at", 1), ("seq", 1)]
# Waiting jobs become ready in run_at order; among equal run_at, claim order decides.
WAITING_SORT = [("run_at", 1), ("priority", -1), ("seq", 1)]
READY = {"$in": list(READY_STATES)}
# $type, not $ne: null: the same on MongoDB, and another program's completed document
# without a duration never counts (a stand-in server matches a missing field with $ne: null).
DONE_WITH_DURATION = {"state": "completed", "duration": {"$type": "number"}}
# queuectl's own documents have a numeric enqueue order (seq >= 0); another program's (e.g.
# the Node version's, with an ObjectId _id and no seq or run_at) never match. A range, not
# $type: it rides on the claim index's last key (a stand-in server scans for $type).
OURS = {"seq": {"$gte": 0}}
LIVE = {"$in": ["idle", "busy", "stopping"]}
# A document written before dependencies existed has no `waiting`: it waits for nothing.
NOT_BLOCKED = {"$in": [0, None]}
BATCH = 1000  # ids per $in list
# How many recently finished jobs `stats` reads for durations (SPEC §8: never all of them).
DURATION_SAMPLE = 10_000


def _waits_on(dep: str) -> dict[str, Any]:
    """The filter for jobs whose `after` lists `dep`, through the multikey `after` index.
    `$in: [dep]`, not the bare `dep`: the same on MongoDB (an array holding that element),
    and the wire-protocol stand-in the tests use, on an indexed field, compares a bare value
    with the whole array instead of its elements."""
    return {"after": {"$in": [dep]}}


# The server's error for a pipeline stage it does not know.
UNKNOWN_STAGE = 40324
# How long a command waits for a server it can use: what an unreachable server costs a
# command before it fails (SPEC §3: about 5 s in all with start-up).
SERVER_SELECTION_TIMEOUT_MS = 4000


def queue_filter(queues: Sequence[str]) -> dict[str, Any]:
    """The filter for jobs of those queues (all when empty). A document written before
    queues existed has no `queue` field and belongs to `default`."""
    if not queues:
        return {}
    wanted: list[Any] = list(queues)
    if DEFAULT_QUEUE in wanted:
        wanted.append(None)
    return {"queue": wanted[0] if len(wanted) == 1 else {"$in": wanted}}


def _job_doc(job: Job) -> dict[str, Any]:
    doc = job.to_record()
    doc["_id"] = doc.pop("id")
    if job.after:
        # Dependencies counted done so far (each at most once: see _count_done).
        doc["deps_done"] = []
        doc["waiting"] = len(job.after)
    return doc


def _record(doc: dict[str, Any]) -> dict[str, Any]:
    record = dict(doc)
    record["id"] = record.pop("_id")
    return record


def _job(doc: dict[str, Any] | None) -> Job | None:
    """The job a document holds (ForeignRecord for a document of another shape)."""
    return None if doc is None else Job.from_record(_record(doc))


def _jobs(docs: Iterable[dict[str, Any]]) -> list[Job]:
    """The jobs among `docs`; documents of another shape are skipped, with a warning."""
    return parse_records((_record(d) for d in docs), Job.from_record, "jobs")


def _workers(docs: Iterable[dict[str, Any]]) -> list[WorkerInfo]:
    """The workers among `docs`; documents of another shape are skipped, with a warning."""
    return parse_records((_record(d) for d in docs), WorkerInfo.from_record, "workers")


def _null_or_below(bounds: dict[str, float]) -> dict[str, Any]:
    """A filter: every field in `bounds` is null, missing or less than its bound. Spelt with
    $or and `$in: [null]`, the forms that mean the same on MongoDB, mongomock and the
    wire-protocol stand-in the tests use (which lacks $not and misreads a bare null in $or)."""
    clauses = [{"$or": [{k: {"$in": [None]}}, {k: {"$lt": v}}]} for k, v in bounds.items()]
    return {"$and": clauses} if clauses else {}


class MongoStore:
    """The Store protocol on a MongoDB database (`jobs`, `workers`, `config`)."""

    def __init__(
        self,
        client: Any,
        db_name: str,
        url: str = "mongodb://",
        secrets: str | Sequence[str] | None = None,
    ) -> None:
        from pymongo import ReadPreference

        self.client = client
        # Scrubbed from every message: the password and every secret option of the URL.
        self._secrets = [secrets] if isinstance(secrets, str) else list(secrets or ())
        self.db = client.get_database(db_name, read_preference=ReadPreference.PRIMARY)
        self.url = url
        self.jobs = self.db["jobs"]
        self.workers = self.db["workers"]
        self.config = self.db["config"]
        # What users read (list, status, stats) may come from where the URL says.
        self.jobs_view = client[db_name]["jobs"]
        self.schedules = self.db["schedules"]
        self._indexed = False
        # $unionWith (MongoDB 4.4+) makes the idle poll one command; mongomock and servers
        # that refuse the stage get the same answer from three reads.
        self._union = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from bson.errors import BSONError
        from pymongo.errors import DuplicateKeyError, PyMongoError

        try:
            if not self._indexed:
                from .mongo_schema import ensure_schema

                ensure_schema(self)  # checks and upgrades the schema version, then indexes
            yield
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB at {self.url}: {_short(exc, self._secrets)}") from None
        except BSONError as exc:  # e.g. DocumentTooLarge: a request over 16 MiB
            raise QueuectlError(
                f"MongoDB at {self.url}: request too large or not storable: "
                f"{_short(exc, self._secrets)}"
            ) from None

    def _ensure_indexes(self) -> None:
        # create_indexes is idempotent on the server: one round trip per collection.
        from pymongo import IndexModel
        from pymongo.errors import OperationFailure

        try:
            self._create_indexes(IndexModel)
        except OperationFailure as exc:
            if exc.code != 13:  # 13 = Unauthorized: a read-only user can still watch
                raise
        self._indexed = True

    def _create_indexes(self, IndexModel: Any) -> None:  # noqa: N803

        self.jobs.create_indexes(
            [
                IndexModel(
                    [("state", 1), ("priority", -1), ("run_at", 1), ("seq", 1)], name="claim_order"
                ),
                IndexModel([("state", 1), ("run_at", 1)], name="state_run_at"),
                IndexModel([("state", 1), ("updated_at", -1), ("seq", -1)], name="state_updated"),
                IndexModel([("updated_at", -1), ("seq", -1)], name="updated"),
                IndexModel([("state", 1), ("duration", 1)], name="state_duration"),
                IndexModel([("state", 1), ("finished_at", 1)], name="state_finished"),
                IndexModel([("state", 1), ("lease_renewed_at", 1)], name="lease"),
                IndexModel([("locked_by", 1)], name="locked_by"),
                # Only documents of another shape have an `id` field: `show` finds them by it.
                IndexModel([("id", 1)], name="foreign_id", sparse=True),
                # Claims: blocked jobs (waiting > 0) sit outside the ranges a claim reads;
                # with queues, each queue is a range already in claim order.
                IndexModel(
                    [("state", 1), ("waiting", 1), ("priority", -1), ("run_at", 1), ("seq", 1)],
                    name="claim_ready",
                ),
                IndexModel(
                    [
                        ("state", 1),
                        ("waiting", 1),
                        ("queue", 1),
                        ("priority", -1),
                        ("run_at", 1),
                        ("seq", 1),
                    ],
                    name="claim_queue",
                ),
                IndexModel([("state", 1), ("waiting", 1), ("run_at", 1)], name="next_ready"),
                IndexModel(
                    [("state", 1), ("waiting", 1), ("queue", 1), ("run_at", 1)], name="next_queue"
                ),
                IndexModel(
                    [("queue", 1), ("state", 1), ("updated_at", -1), ("seq", -1)],
                    name="queue_state_updated",
                ),
                IndexModel(
                    [("queue", 1), ("state", 1), ("priority", -1), ("run_at", 1), ("seq", 1)],
                    name="queue_ready",
                ),
                IndexModel([("state", 1), ("queue", 1), ("duration", 1)], name="queue_duration"),
                # Hot reads (SPEC §8): a count per state and queue, a queue's recent
                # completions, and retried jobs as a range of attempts.
                IndexModel(
                    [("state", 1), ("queue", 1), ("finished_at", 1)], name="state_queue_finished"
                ),
                IndexModel([("attempts", 1), ("queue", 1)], name="attempts_queue"),
                # Who waits on a job, and jobs whose dependents are not yet resolved.
                IndexModel([("after", 1)], name="after", sparse=True),
                IndexModel(
                    [("dependents_open", 1), ("state", 1)], name="dependents_open", sparse=True
                ),
            ]
        )
        self.workers.create_indexes([IndexModel([("status", 1)], name="status")])
        self.schedules.create_indexes([IndexModel([("paused", 1), ("next_run_at", 1)], name="due")])

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    # -- jobs -----------------------------------------------------------------------------
    def insert_jobs(self, jobs: Sequence[Job], dead_dependency: DeadChanges | None = None) -> None:
        """All or nothing: ids are checked first, and a batch that still meets a taken id
        (a race with another enqueue) removes what it inserted before raising. A job with
        dependencies is inserted blocked, then each dependency already completed is counted
        (or one already dead makes it dead)."""
        from pymongo.errors import BulkWriteError, DuplicateKeyError

        ids = [job.id for job in jobs]
        with self._errors():
            for chunk in batches(ids, 10_000):  # 10,000 ids of <= 128 bytes: well under 16 MiB
                taken = self.jobs.find_one({"_id": {"$in": chunk}}, {"_id": 1})
                if taken:
                    raise DuplicateJob(taken["_id"])
            docs = self._docs_with_dependencies(jobs)
            try:
                self.jobs.insert_many(docs, ordered=True)
            except (BulkWriteError, DuplicateKeyError) as exc:
                inserted = _inserted_count(exc)
                for chunk in batches(ids[:inserted], 10_000):
                    # never remove one a worker has already claimed
                    self.jobs.delete_many(
                        {"_id": {"$in": chunk}, "state": "pending", "attempts": 0}
                    )
                raise DuplicateJob(ids[inserted] if inserted < len(ids) else ids[0]) from None
            for job in jobs:
                if job.after:
                    self._recount(job.id, job.after, dead_dependency or _no_cascade)

    def _docs_with_dependencies(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """The documents to insert. Every job that gets a dependent is flagged
        `dependents_open` first, so a final state it reaches is always passed on (a sweep
        finishes the passing on if the process that made it final died halfway)."""
        deps = {dep for job in jobs for dep in job.after}
        docs = [_job_doc(job) for job in jobs]
        if not deps:
            return docs
        own = {job.id for job in jobs}
        outside = [dep for job in jobs for dep in job.after if dep not in own]
        if outside:
            states = self._states(outside)
            for job in jobs:
                for dep in job.after:
                    if dep not in own and dep not in states:
                        raise DependencyNotFound(job.id, dep)
            self.jobs.update_many(
                {"_id": {"$in": list(set(outside))}}, {"$set": {"dependents_open": True}}
            )
        for doc in docs:
            if doc["_id"] in deps:
                doc["dependents_open"] = True
        return docs

    def _states(self, job_ids: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(job_ids))
        states: dict[str, str] = {}
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            for doc in self.jobs.find({"_id": {"$in": chunk}}, {"state": 1}):
                states[doc["_id"]] = doc.get("state")
        return states

    def _count_done(self, query: dict[str, Any], dep: str) -> None:
        """Count `dep` as completed for the jobs matching `query`, at most once per job:
        `deps_done` remembers it, so a completion and a recount that race never both count.
        `$nin: [dep]`, not `$ne: dep`: the same on MongoDB (an array holding no such element,
        or no field), and the wire-protocol stand-in the tests use does not look inside an
        array for `$ne`."""
        self.jobs.update_many(
            {**query, "deps_done": {"$nin": [dep]}},
            {"$inc": {"waiting": -1}, "$push": {"deps_done": dep}},
        )

    def _recount(self, job_id: str, after: Sequence[str], dead_dependency: DeadChanges) -> None:
        """After a blocked job was written: count dependencies already completed (a
        dependency gone since counts as completed: only finished jobs are purged); a dead
        one makes it dead, and the jobs waiting on it in turn."""
        states = self._states(after)
        for dep in after:
            state = states.get(dep, "completed")
            if state == "completed":
                self._count_done({"_id": job_id}, dep)
            elif state == "dead":
                if self._make_dead(job_id, dead_dependency(dep)):
                    self._cascade(job_id, dead_dependency)
                return

    def _make_dead(self, job_id: str, changes: dict[str, Any]) -> bool:
        result = self.jobs.update_one({"_id": job_id, "state": "pending"}, {"$set": changes})
        return bool(result.matched_count == 1)

    def _cascade(self, job_id: str, dead_dependency: DeadChanges) -> list[str]:
        """Every job waiting on `job_id`, however deep, becomes dead."""
        killed: list[str] = []
        frontier = [job_id]
        while frontier:
            dep = frontier.pop()
            changes = dead_dependency(dep)
            waiting = self.jobs.find(
                {**_waits_on(dep), "state": "pending", "waiting": {"$gt": 0}}, {"_id": 1}
            )
            for doc in list(waiting):
                if self._make_dead(doc["_id"], changes):
                    killed.append(doc["_id"])
                    frontier.append(doc["_id"])
            self._close_dependents(dep)
        return killed

    def _close_dependents(self, job_id: str) -> None:
        self.jobs.update_one(
            {"_id": job_id, "dependents_open": True}, {"$unset": {"dependents_open": ""}}
        )

    def _resolve(self, job_id: str, state: str, dead_dependency: DeadChanges) -> list[str]:
        """Pass a final state on to the jobs that wait on this one."""
        if state == "completed":
            self._count_done(_waits_on(job_id), job_id)
            self._close_dependents(job_id)
            return []
        if state == "dead":
            return self._cascade(job_id, dead_dependency)
        return []

    def settle(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: DeadChanges,
        tally: tuple[str, str] | None = None,
        below: dict[str, float] | None = None,
    ) -> list[str] | None:
        """Conditional like update_if, for changes that make a job completed or dead; then
        the worker's counter moves (`tally`, once per lease: a second update, as in finish)
        and its dependents count it done, or (dead) become dead in turn, before this
        returns. Returns the ids of dependents made dead, or None when not applied."""
        with self._errors():
            doc = self.jobs.find_one_and_update(
                {**expected, **_null_or_below(below or {}), "_id": job_id},
                {"$set": changes},
                projection={"dependents_open": 1},
            )
            if doc is None:
                return None
        if tally is not None and expected.get("lease_token"):
            self.count_job_end(tally[0], tally[1], expected["lease_token"])
        with self._errors():
            if not doc.get("dependents_open"):
                return []  # nobody waits on it (an enqueue racing with us counts for itself)
            return self._resolve(job_id, changes["state"], dead_dependency)

    def requeue(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: DeadChanges,
    ) -> bool:
        """Conditional like update_if, for changes that make a job pending again; its
        dependencies are then counted anew (one still dead sends it back to dead)."""
        with self._errors():
            doc = self.jobs.find_one_and_update(
                {**expected, "_id": job_id}, {"$set": changes}, projection={"after": 1}
            )
            if doc is None:
                return False
            after = doc.get("after") or []
            if after:
                # Flag the dependencies again (a cascade may have closed them), so their
                # final state reaches this job.
                self.jobs.update_many({"_id": {"$in": after}}, {"$set": {"dependents_open": True}})
                self.jobs.update_one(
                    {"_id": job_id}, {"$set": {"waiting": len(after), "deps_done": []}}
                )
                self._recount(job_id, after, dead_dependency)
        return True

    def resolve_open_dependents(self, dead_dependency: DeadChanges) -> list[str]:
        """Finish passing on final states that a process died before passing on (jobs still
        flagged `dependents_open`). Returns the ids of dependents made dead."""
        killed: list[str] = []
        with self._errors():
            query = {"dependents_open": True, "state": {"$in": ["completed", "dead"]}}
            for doc in list(self.jobs.find(query, {"state": 1}).limit(BATCH)):
                killed += self._resolve(doc["_id"], doc["state"], dead_dependency)
        return killed

    def progress(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool | None:
        """While a job runs: apply `changes` (may be empty) under the lease, and say whether
        a cancel was asked for. None when the lease is no longer ours."""
        fence = {"_id": job_id, "state": "processing", "lease_token": lease_token}
        with self._errors():
            if changes:
                doc = self.jobs.find_one_and_update(
                    fence, {"$set": changes}, projection={"cancel_requested": 1}
                )
            else:
                doc = self.jobs.find_one(fence, {"cancel_requested": 1})
        return None if doc is None else bool(doc.get("cancel_requested"))

    def job_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of those jobs that exists, read in bounded batches."""
        with self._errors():
            return self._states(job_ids)

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None; ForeignRecord when the id names a document of
        another shape (by its _id, or by the `id` field another program keeps)."""
        with self._errors():
            doc = self.jobs.find_one({"_id": job_id})
            if doc is None:
                foreign = self.jobs.find_one({"id": job_id})
                if foreign is not None:
                    raise ForeignRecord("job", job_id, "its _id is not the job id")
        return _job(doc)

    def list_jobs(
        self,
        state: str | None,
        limit: int,
        now: float | None = None,
        queue: str | None = None,
        offset: int = 0,
        text: str | None = None,
    ) -> list[Job]:
        """Pending/failed: those ready at `now` in claim order (index claim_ready or
        claim_queue), then those waiting for their run_at or a dependency, by run_at. Other
        states newest update first. `offset` documents of that order are skipped; `text`
        keeps the jobs whose id or command contains it (ASCII letters in any case)."""
        return _jobs(self._list_docs(state, limit, now, queue, offset, text, None))

    def search_job_ids(
        self,
        state: str | None,
        text: str,
        scan: int,
        now: float | None = None,
        queue: str | None = None,
    ) -> tuple[list[str], bool]:
        """The first `scan` documents of list_jobs' order with only their ids and commands
        (a projection), matched in Python (text_matches, as the SQLite store does)."""
        # One document past the scan tells whether any job lies beyond it.
        docs = self._list_docs(state, scan + 1, now, queue, 0, None, {"_id": 1, "command": 1})
        ids = [
            d["_id"]
            for d in docs[:scan]
            if isinstance(d["_id"], str) and text_matches(text, d["_id"], d.get("command"))
        ]
        return ids, len(docs) <= scan

    def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs with those ids that exist, in the order asked (bounded batches)."""
        found: dict[Any, dict[str, Any]] = {}
        unique = list(dict.fromkeys(job_ids))
        with self._errors():
            for chunk in batches(unique):
                found.update((d["_id"], d) for d in self.jobs_view.find({"_id": {"$in": chunk}}))
        return _jobs(found[i] for i in unique if i in found)

    def _list_docs(
        self,
        state: str | None,
        limit: int,
        now: float | None,
        queue: str | None,
        offset: int,
        text: str | None,
        fields: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """list_jobs' documents, with only `fields` when given."""
        of_queue = {**_of_queue(queue), **_text_match(text)}
        with self._errors():
            if state in ("pending", "failed"):
                now = time.time() if now is None else now
                ready = {"state": state, "waiting": NOT_BLOCKED, "run_at": {"$lte": now}}
                found = self.jobs_view.find({**ready, **of_queue}, fields).sort(CLAIM_SORT)
                docs = list(found.skip(offset).limit(limit))
                if len(docs) < limit:
                    # The page reaches past the ready jobs: skip what of the offset they
                    # did not fill.
                    skip = 0
                    if offset and not docs:
                        counted = self.jobs_view.count_documents({**ready, **of_queue})
                        skip = max(offset - counted, 0)
                    later = {"$or": [{"run_at": {"$gt": now}}, {"waiting": {"$gt": 0}}]}
                    waiting = {"state": state, **of_queue, **later}
                    if "$or" in of_queue:
                        waiting = {"$and": [{"state": state, **of_queue}, later]}
                    rest = self.jobs_view.find(waiting, fields).sort(WAITING_SORT)
                    docs += rest.skip(skip).limit(limit - len(docs))
            else:
                query = {"state": state, **of_queue} if state else dict(of_queue)
                newest = self.jobs_view.find(query, fields).sort([("updated_at", -1), ("seq", -1)])
                docs = list(newest.skip(offset).limit(limit))
        return docs

    def count_by_state(self, queue: str | None = None) -> dict[str, int]:
        """Number of jobs per state (of one queue, when given): one indexed count per state
        (never a walk of every document; workers of earlier releases maintain no counters)."""
        counts: dict[str, int] = {}
        with self._errors():
            for state in STATES:
                n = self.jobs_view.count_documents({"state": state, **_of_queue(queue)})
                if n:
                    counts[state] = int(n)
        return counts

    def count_by_queue(self) -> dict[str, dict[str, int]]:
        """Number of jobs per queue and state: the queues from the queue index (a document
        without `queue` is a `default` one), then one indexed count per queue and state."""
        with self._errors():
            named = self.jobs_view.distinct("queue")
        queues = sorted({q for q in named if isinstance(q, str)} | {DEFAULT_QUEUE})
        counts = {queue: self.count_by_state(queue) for queue in queues}
        return {queue: by_state for queue, by_state in counts.items() if by_state}

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> Job | None:
        """find_one_and_update: the server picks and locks one document atomically. Its
        filter names `waiting` and the queues, so it reads only claimable index ranges."""
        from pymongo import ReturnDocument

        update = {
            "$set": {
                "state": "processing",
                "locked_by": worker_id,
                "locked_at": now,
                "lease_token": lease_token,
                "lease_renewed_at": now,
                "lease_expires_at": lease_expires_at,
                "started_at": now,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
        }
        with self._errors():
            doc = self.jobs.find_one_and_update(
                {
                    "state": READY,
                    "waiting": NOT_BLOCKED,
                    **queue_filter(queues),
                    "run_at": {"$lte": now},
                    **OURS,
                },
                update,
                sort=CLAIM_SORT,
                return_document=ReturnDocument.AFTER,
            )
        claimed = _jobs([doc]) if doc else []
        return claimed[0] if claimed else None

    def finish(
        self,
        job_id: str,
        lease_token: str,
        changes: dict[str, Any],
        tally: tuple[str, str] | None = None,
    ) -> bool:
        """Fenced: the filter holds the lease token, so a stale worker matches nothing. The
        worker's counter is a second update (MongoDB has no transaction across documents
        without a replica set); should it fail, the worker's retry counts the end once."""
        applied = self.update_if(
            job_id, {"state": "processing", "lease_token": lease_token}, changes
        )
        if applied and tally is not None:
            self.count_job_end(tally[0], tally[1], lease_token)
        return applied

    def finish_and_claim(
        self,
        end: Callable[[], T],
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> tuple[T, Job | None]:
        """`end()` (this store's own fenced writes that end an attempt: finish, settle), then
        the claim's findAndModify right behind it, with no read between. Not atomic: MongoDB
        has no transaction across documents without a replica set, so these stay the same
        single-document operations as apart (each fenced on its own), only sent back to back.
        A claim that fails after `end` returned raises ClaimUnanswered with what `end`
        returned: the caller keeps the result, and treats the claim as one whose reply was
        lost (it may have been applied)."""
        ended = end()
        try:
            job = self.claim(worker_id, now, lease_token, queues, lease_expires_at)
        except StoreUnavailable as exc:
            raise ClaimUnanswered(ended, str(exc)) from None
        return ended, job

    def count_job_end(self, worker_id: str, counter: str, lease_token: str) -> None:
        """Count one attempt's end in the worker's document, once per lease."""
        if counter not in ("jobs_done", "jobs_failed"):
            raise ValueError(f"unknown counter {counter!r}")
        with self._errors():
            # $nin, not $ne: the same on MongoDB, and the wire-protocol stand-in the tests use
            # matches a missing field with $nin but not with $ne in an update.
            self.workers.update_one(
                {"_id": worker_id, "counted_lease": {"$nin": [lease_token]}},
                {"$inc": {counter: 1}, "$set": {"counted_lease": lease_token}},
            )

    # The same fenced update on every store (base.renew_lease, over update_if).
    renew_lease = renew_lease

    def stale_jobs(self, cutoff: float, now: float) -> list[Job]:
        """Processing jobs whose lease was not renewed since `cutoff` and whose deadline,
        if it has one, has passed."""
        query = {
            "state": "processing",
            "lease_renewed_at": {"$lt": cutoff},
            **_null_or_below({"lease_expires_at": now}),
        }
        with self._errors():
            docs = list(self.jobs.find(query))
        return _jobs(docs)

    def jobs_locked_by(self, worker_id: str) -> list[Job]:
        """Processing jobs held by that worker."""
        with self._errors():
            docs = list(self.jobs.find({"state": "processing", "locked_by": worker_id}))
        return _jobs(docs)

    def update_if(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        below: dict[str, float] | None = None,
    ) -> bool:
        """Conditional: the filter holds the expected values and bounds, so one update
        decides."""
        query = {**expected, **_null_or_below(below or {}), "_id": job_id}
        with self._errors():
            result = self.jobs.update_one(query, {"$set": changes})
        return bool(result.matched_count == 1)

    def update_many_if(
        self, job_ids: Sequence[str], expected: dict[str, Any], changes: dict[str, Any]
    ) -> list[str]:
        """One read of which ids match, one update_many of those; only when another writer
        changed one in between is a read-back needed to tell which were ours."""
        if not job_ids:
            return []
        with self._errors():
            query = {**expected, "_id": {"$in": list(job_ids)}}
            found = [d["_id"] for d in self.jobs.find(query, {"_id": 1})]
            if not found:
                return []
            query["_id"] = {"$in": found}
            result = self.jobs.update_many(query, {"$set": changes})
            if result.matched_count == len(found):
                return found
            back = self.jobs.find({**changes, "_id": {"$in": found}}, {"_id": 1})
            return [d["_id"] for d in back]

    def job_ids(
        self,
        state: str,
        queue: str | None = None,
        limit: int | None = None,
        updated_until: float | None = None,
    ) -> list[str]:
        """Ids of the jobs in one state (and queue): every one in enqueue order; or, with
        `limit`, up to that many (updated at or before `updated_until`, when given), least
        recently updated first."""
        query: dict[str, Any] = {"state": state, **OURS, **_of_queue(queue)}
        if updated_until is not None:
            query["updated_at"] = {"$lte": updated_until}
        with self._errors():
            if limit is None and updated_until is None:
                return [d["_id"] for d in self.jobs.find(query, {"_id": 1}).sort("seq", 1)]
            docs = self.jobs.find(query, {"_id": 1}).sort([("updated_at", 1), ("seq", 1)])
            if limit is not None:
                docs = docs.limit(limit)
            return [d["_id"] for d in docs]

    def purge_batch(
        self,
        state: str,
        cutoff: float,
        queue: str | None,
        limit: int,
        dead_dependency: DeadChanges,
    ) -> int:
        """One find of up to `limit` ids over the (queue,) state, updated_at index, then one
        delete_many of those ids that repeats the whole filter (a job retried out of the DLQ
        meanwhile stays). Dependents live in other documents' `after`: a job whose final
        state was not yet passed on to them (a process died halfway, or dependents came
        later) passes it on first, so none is left waiting for a job that is gone."""
        check_purgeable(state)
        query = _purge_filter(state, cutoff, queue)
        with self._errors():
            found = self.jobs.find(query, {"_id": 1, "dependents_open": 1, "finished_at": 1})
            docs = list(found.sort([("updated_at", 1), ("seq", 1)]).limit(limit))
            if state == "completed":
                # finished_at is checked here, not in the filter: an $or there would keep
                # some servers from reading the (state, updated_at) index.
                docs = [d for d in docs if not _finished_after(d.get("finished_at"), cutoff)]
            for doc in docs:
                if doc.get("dependents_open"):
                    self._resolve(doc["_id"], state, dead_dependency)
            if not docs:
                return 0
            ids = [d["_id"] for d in docs]
            result = self.jobs.delete_many({**query, "_id": {"$in": ids}})
        return int(result.deleted_count)

    def next_run_at(self, queues: Sequence[str] = ()) -> float | None:
        """Earliest run_at of a pending or failed job not blocked by a dependency (of those
        queues, when given; a number: another program's document may lack run_at, which the
        range leaves out)."""
        query = {
            "state": READY,
            "waiting": NOT_BLOCKED,
            **queue_filter(queues),
            "run_at": {"$gte": 0},
        }
        with self._errors():
            doc = self.jobs.find_one(query, {"run_at": 1}, sort=[("run_at", 1)])
        value = doc.get("run_at") if doc else None
        return float(value) if isinstance(value, (int, float)) else None

    def poll(self, queues: Sequence[str] = ()) -> Poll:
        """One aggregate command on the primary: the first claimable job by run_at (the
        next_ready/next_queue index), with the control document (by _id) and the first
        active schedule (the due index) unioned in."""
        due = {
            "state": READY,
            "waiting": NOT_BLOCKED,
            **queue_filter(queues),
            "run_at": {"$gte": 0},
            **OURS,
        }
        control = {"_id": CONTROL_KEY}
        active = {"paused": False, "next_run_at": {"$gte": 0}}
        with self._errors():
            docs = self._poll_docs(due, control, active)
        poll = Poll(0, None, None)
        for doc in docs:
            if "value" in doc:
                value = doc["value"]
                version = int(value) if isinstance(value, (int, float)) else 0
                poll = poll._replace(version=version)
            elif isinstance(doc.get("run_at"), (int, float)):
                poll = poll._replace(next_run_at=float(doc["run_at"]))
            elif isinstance(doc.get("next_run_at"), (int, float)):
                poll = poll._replace(next_schedule_at=float(doc["next_run_at"]))
        return poll

    def _poll_docs(
        self, due: dict[str, Any], control: dict[str, Any], active: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if self._union:
            pipeline = [
                {"$match": due},
                {"$sort": {"run_at": 1}},
                {"$limit": 1},
                {"$project": {"_id": 0, "run_at": 1}},
                {
                    "$unionWith": {
                        "coll": self.config.name,
                        "pipeline": [{"$match": control}, {"$project": {"_id": 0, "value": 1}}],
                    }
                },
                {
                    "$unionWith": {
                        "coll": self.schedules.name,
                        "pipeline": [
                            {"$match": active},
                            {"$sort": {"next_run_at": 1}},
                            {"$limit": 1},
                            {"$project": {"_id": 0, "next_run_at": 1}},
                        ],
                    }
                },
            ]
            from pymongo.errors import OperationFailure

            try:
                return list(self.jobs.aggregate(pipeline))
            except NotImplementedError:  # mongomock
                self._union = False
            except OperationFailure as exc:
                # A server below 4.4, or one whose featureCompatibilityVersion is: three reads.
                if exc.code != UNKNOWN_STAGE and "$unionWith" not in str(exc):
                    raise
                self._union = False
        docs = [
            self.jobs.find_one(due, {"_id": 0, "run_at": 1}, sort=[("run_at", 1)]),
            self.config.find_one(control, {"_id": 0, "value": 1}),
            self.schedules.find_one(
                active, {"_id": 0, "next_run_at": 1}, sort=[("next_run_at", 1)]
            ),
        ]
        return [d for d in docs if d]

    def ensure_control(self) -> None:
        """Upsert the control document with $setOnInsert: it (and its collection) exist
        from the first worker on, so the poll's $unionWith always has them to read."""
        with self._errors():
            self.config.update_one(
                {"_id": CONTROL_KEY}, {"$setOnInsert": {"value": 0}}, upsert=True
            )

    def bump_control(self) -> None:
        """$inc the control document (created by the first bump)."""
        with self._errors():
            self.config.update_one({"_id": CONTROL_KEY}, {"$inc": {"value": 1}}, upsert=True)

    def duration_stats(
        self, quantiles: Sequence[float], queue: str | None = None
    ) -> tuple[int, float | None, list[float | None]]:
        """The count of completed jobs with a duration (an indexed count), and their mean
        and nearest-rank quantiles over the DURATION_SAMPLE most recently finished ones, read
        through the finished_at index: exact while there are no more than that, else an
        approximation over the recent ones (MongoDB workers keep no counters to read)."""
        query = {**DONE_WITH_DURATION, **_of_queue(queue)}
        with self._errors():
            count = int(self.jobs_view.count_documents(query))
            if not count:
                return 0, None, [None for _ in quantiles]
            docs = (
                self.jobs_view.find(query, {"_id": 0, "duration": 1})
                .sort("finished_at", -1)
                .limit(DURATION_SAMPLE)
            )
            durations = sorted(float(d["duration"]) for d in docs)
        if not durations:
            return count, None, [None for _ in quantiles]
        mean = math.fsum(durations) / len(durations)
        ranks = [quantile_rank(len(durations), q) for q in quantiles]
        return count, mean, [durations[rank] for rank in ranks]

    def retried_totals(self, queue: str | None = None) -> tuple[int, int]:
        """Jobs with more than one attempt, and their attempts summed: a range of the
        attempts_queue index (the retried jobs only, few while most jobs run once)."""
        pipeline = [
            {"$match": {"attempts": {"$gt": 1}, **_of_queue(queue)}},
            {"$group": {"_id": None, "n": {"$sum": 1}, "a": {"$sum": "$attempts"}}},
        ]
        with self._errors():
            agg = list(self.jobs_view.aggregate(pipeline))
        return (int(agg[0]["n"]), int(agg[0]["a"])) if agg else (0, 0)

    def completed_since(self, since: float, queue: str | None = None) -> int:
        """Completed jobs that finished at or after `since`: an indexed range count."""
        query = {"state": "completed", "finished_at": {"$gte": since}, **_of_queue(queue)}
        with self._errors():
            return int(self.jobs_view.count_documents(query))

    def finished_by_minute(self, state: str, start: float, minutes: int) -> list[int]:
        """One aggregation: a match on the state_finished (completed) or state_updated
        (dead) index range, grouped by minute on the server."""
        if state not in ("completed", "dead"):
            raise ValueError(f"only completed and dead jobs have finished, not {state}")
        field = "finished_at" if state == "completed" else "updated_at"
        window = {"$gte": start, "$lt": start + minutes * 60}
        minute = {"$floor": {"$divide": [{"$subtract": [f"${field}", start]}, 60]}}
        pipeline = [
            {"$match": {"state": state, field: window}},
            {"$group": {"_id": minute, "n": {"$sum": 1}}},
        ]
        counts = [0] * minutes
        with self._errors():
            for row in self.jobs_view.aggregate(pipeline):
                if isinstance(row["_id"], (int, float)) and 0 <= row["_id"] < minutes:
                    counts[int(row["_id"])] += int(row["n"])
        return counts

    def finished_after(
        self, state: str, updated_at: float, seq: int, limit: int
    ) -> list[FinishedRow]:
        """One range of the state_updated index in its own order, with a projection: the
        command and the outputs never leave the server."""
        after = {
            "$or": [
                {"updated_at": {"$gt": updated_at}},
                {"updated_at": updated_at, "seq": {"$gt": seq}},
            ]
        }
        fields = {"_id": 1, "updated_at": 1, "seq": 1, "duration": 1}
        with self._errors():
            found = self.jobs_view.find({"state": state, **after}, fields)
            docs = list(found.sort([("updated_at", 1), ("seq", 1)]).limit(limit))
        return [
            FinishedRow(
                d["_id"],
                float(d["updated_at"]),
                int(d.get("seq") or 0),
                d["duration"] if isinstance(d.get("duration"), (int, float)) else None,
            )
            for d in docs
            if isinstance(d["_id"], str) and isinstance(d.get("updated_at"), (int, float))
        ]

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored values (markers left out)."""
        with self._errors():
            docs = list(self.config.find())
        return _config_values(d for d in docs if not _is_marker(d.get("_id")))

    def set_config(self, key: str, value: Any) -> None:
        """Upsert one value."""
        with self._errors():
            self.config.update_one({"_id": key}, {"$set": {"value": value}}, upsert=True)

    def unset_config(self, key: str) -> None:
        """Delete one value."""
        with self._errors():
            self.config.delete_one({"_id": key})

    def take_turn(self, name: str, now: float, every: float) -> bool:
        """A compare-and-set: an update conditioned on the marker's age, or, when there is
        no marker yet, an insert that only one caller can win (the unique _id). A read
        first, so the usual answer (not yet) costs one round trip."""
        from pymongo.errors import DuplicateKeyError

        key = MARKER_PREFIX + name
        with self._errors():
            found = self.config.find_one({"_id": key})
            if found is not None:
                value = found.get("value")
                seen: Any = {"$lte": now - every}
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if value > now - every:
                        return False
                else:
                    # No time at all (written by hand or by another program): long past, as
                    # on SQLite; the update is conditioned on the value read, so one wins.
                    seen = value
                result = self.config.update_one(
                    {"_id": key, "value": seen}, {"$set": {"value": now}}
                )
                return bool(result.matched_count == 1)
            try:
                self.config.insert_one({"_id": key, "value": now})
            except DuplicateKeyError:
                return False
        return True

    # -- workers --------------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        """Insert a worker document."""
        doc = worker.to_record()
        doc["_id"] = doc.pop("id")
        with self._errors():
            self.workers.insert_one(doc)

    def update_worker(
        self, worker_id: str, changes: dict[str, Any], increments: dict[str, int] | None = None
    ) -> None:
        """Set fields and bump counters in one update."""
        update: dict[str, Any] = {}
        if changes:
            update["$set"] = changes
        if increments:
            update["$inc"] = increments
        if update:
            with self._errors():
                self.workers.update_one({"_id": worker_id}, update)

    def get_worker(self, worker_id: str) -> WorkerInfo | None:
        """One worker document (None for one of another shape, after a warning)."""
        with self._errors():
            doc = self.workers.find_one({"_id": worker_id})
        found = _workers([doc]) if doc else []
        return found[0] if found else None

    def list_workers(self, statuses: Sequence[str] | None = None) -> list[WorkerInfo]:
        """Workers (of those statuses, when given), newest first."""
        query = {"status": {"$in": list(statuses)}} if statuses is not None else {}
        with self._errors():
            docs = list(self.workers.find(query).sort([("started_at", -1), ("_id", 1)]))
        return _workers(docs)

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        """Set the stop flag, a bounded batch of ids per update."""
        with self._errors():
            for chunk in batches(worker_ids):
                self.workers.update_many(
                    {"_id": {"$in": chunk}}, {"$set": {"stop_requested": True}}
                )

    def delete_workers(self, before: float) -> int:
        """Forget long-gone workers."""
        with self._errors():
            return int(
                self.workers.delete_many(
                    {"status": {"$in": ["stopped", "lost"]}, "last_heartbeat": {"$lt": before}}
                ).deleted_count
            )

    def mark_workers_lost(self, cutoff: float, now: float) -> list[str]:
        """Silent live workers whose own deadline has passed become lost (each conditioned
        on still being silent)."""
        query = {
            "status": LIVE,
            "last_heartbeat": {"$lt": cutoff},
            **_null_or_below({"expires_at": now}),
            "_id": {"$type": "string"},
        }
        lost = []
        with self._errors():
            for doc in list(self.workers.find(query, {"_id": 1})):
                result = self.workers.update_one(
                    {**query, "_id": doc["_id"]},
                    {"$set": {"status": "lost", "current_job": None}},
                )
                if result.modified_count:
                    lost.append(doc["_id"])
        return lost

    # -- schedules (SPEC §7.5) ----------------------------------------------------------
    def insert_schedule(self, schedule: Schedule) -> None:
        """Insert one schedule (its name is the _id); a taken name raises DuplicateSchedule."""
        from pymongo.errors import DuplicateKeyError

        doc = schedule.to_record()
        doc["_id"] = doc.pop("name")
        try:
            with self._errors():
                self.schedules.insert_one(doc)
        except DuplicateKeyError:
            raise DuplicateSchedule(schedule.name) from None

    def get_schedule(self, name: str) -> Schedule | None:
        """One schedule, or None."""
        with self._errors():
            doc = self.schedules.find_one({"_id": name})
        found = _schedules([doc]) if doc else []
        return found[0] if found else None

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        with self._errors():
            docs = list(self.schedules.find().sort("_id", 1))
        return _schedules(docs)

    def delete_schedule(self, name: str) -> bool:
        """Remove one schedule."""
        with self._errors():
            return bool(self.schedules.delete_one({"_id": name}).deleted_count == 1)

    def update_schedule(
        self, name: str, changes: dict[str, Any], expected: dict[str, Any] | None = None
    ) -> bool:
        """One update_one whose filter holds the expected values: a compare-and-set."""
        with self._errors():
            result = self.schedules.update_one({"_id": name, **(expected or {})}, {"$set": changes})
        return bool(result.matched_count == 1)

    def due_schedules(self, now: float, limit: int) -> list[Schedule]:
        """Active schedules due by `now`, through the (paused, next_run_at) index."""
        with self._errors():
            docs = list(
                self.schedules.find({"paused": False, "next_run_at": {"$lte": now}})
                .sort("next_run_at", 1)
                .limit(limit)
            )
        return _schedules(docs)


def _is_marker(key: Any) -> bool:
    """A fleet-wide turn marker (see Store.take_turn) or the control version (see
    Store.bump_control): kept beside config, but not config."""
    return key == CONTROL_KEY or (isinstance(key, str) and key.startswith(MARKER_PREFIX))


def _config_values(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """{key: value} of the config documents; one of another shape (no string key, or no
    value) is skipped with a warning."""
    values, skipped = {}, []
    for doc in docs:
        key = doc.get("_id")
        if isinstance(key, str) and "value" in doc:
            values[key] = doc["value"]
        else:
            skipped.append((key, "not a {_id: key, value} config document"))
    if skipped:
        warn_foreign("config", skipped)
    return values


# The fields a schedule document must hold, and their types (the rest have defaults).
_SCHEDULE_SHAPE: dict[str, tuple[tuple[type, ...], bool]] = {
    "_id": ((str,), True),
    "cron": ((str,), True),
    "tz": ((str,), True),
    "command": ((str,), True),
    "options": ((dict,), False),
    "next_run_at": ((int, float), True),
    "last_run_at": ((int, float), False),
    "created_at": ((int, float), False),
}


def _schedules(docs: Iterable[dict[str, Any]]) -> list[Schedule]:
    """The schedules among `docs`; documents of another shape are skipped, with a warning."""
    found, skipped = [], []
    for doc in docs:
        problem = shape_problem_of(doc, _SCHEDULE_SHAPE)
        if problem:
            skipped.append((doc.get("_id"), problem))
        else:
            found.append(_schedule(doc))
    if skipped:
        warn_foreign("schedules", skipped)
    return found


def _schedule(doc: dict[str, Any]) -> Schedule:
    doc = dict(doc)
    doc["name"] = doc.pop("_id")
    return Schedule.from_record(doc)


def _purge_filter(state: str, cutoff: float, queue: str | None) -> dict[str, Any]:
    """The jobs purge_batch may delete: queuectl's own, in `state`, aged by updated_at (a
    completed job's finished_at is never later: its end is its last change; purge_batch
    checks it too)."""
    return {"state": state, **_of_queue(queue), "updated_at": {"$lte": cutoff}, **OURS}


def _finished_after(finished_at: Any, cutoff: float) -> bool:
    """Whether a job's finished_at is a time after `cutoff` (a missing one is not)."""
    return isinstance(finished_at, (int, float)) and finished_at > cutoff


def _of_queue(queue: str | None) -> dict[str, Any]:
    return queue_filter([queue]) if queue is not None else {}


def _text_match(text: str | None) -> dict[str, Any]:
    """The filter keeping jobs whose id or command contains `text`. The pattern is built
    here, never taken from the user: ASCII letters as a class of both cases (what SQLite's
    LIKE ignores, no more), other ASCII characters as hex escapes, the rest as themselves."""
    if not text:
        return {}
    parts = []
    for char in text:
        if char.isascii() and char.isalpha():
            parts.append(f"[{char.lower()}{char.upper()}]")
        elif char.isascii() and not char.isdigit():
            parts.append(f"\\x{ord(char):02x}")
        else:
            parts.append(char)
    pattern = "".join(parts)
    return {"$or": [{"_id": {"$regex": pattern}}, {"command": {"$regex": pattern}}]}


def _no_cascade(dep: str) -> dict[str, Any]:
    raise ValueError(f"dependency {dep} is dead, and no change was given for its dependents")


def _inserted_count(exc: Exception) -> int:
    details = getattr(exc, "details", None) or {}
    return int(details.get("nInserted", 0))


def _short(exc: Exception, secrets: Sequence[str] = ()) -> str:
    """The driver's message without its topology dump, and never with a secret of the URL
    (raw or percent-decoded), longest first so no part of one is left."""
    text = str(exc)
    for cut in (", Timeout:", ", Topology Description", " (configured timeouts"):
        text = text.split(cut)[0]
    if secrets:
        from urllib.parse import unquote

        forms = {form for secret in secrets for form in (secret, unquote(secret)) if form}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
    return text.strip() or type(exc).__name__


FILE_OPTIONS = ("tlscafile", "tlscertificatekeyfile", "tlscrlfile")


def _missing_files(url: str) -> list[str]:
    """`option=path` for each file option of the URL whose file cannot be read."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    query = urlsplit(url.rsplit("@", 1)[-1]).query
    return [
        f"{key}={unquote(value)}"
        for key, value in parse_qsl(query, keep_blank_values=True)
        if key.lower() in FILE_OPTIONS and not os.access(unquote(value), os.R_OK)
    ]


def _client(url: str, kwargs: dict[str, Any]) -> Any:
    from pymongo import MongoClient

    with warnings.catch_warnings():
        # pymongo only warns about an unknown URL option; a typo should be an error.
        warnings.simplefilter("error", UserWarning)
        return MongoClient(url, connect=False, **kwargs)


def _bad_url(url: str, secrets: Sequence[str], exc: Exception, kwargs: dict[str, Any]) -> str:
    """Why the URL was refused, with no secret in it. A parse error may quote any fragment
    of a password that was not percent-encoded, so when the URL holds one it is parsed again
    with a harmless password: if that fails too, its message is about the rest of the URL
    and safe to show; if not, the user name or password is what is wrong."""
    from pymongo.errors import ConfigurationError, InvalidURI

    if isinstance(exc, OSError):
        missing = _missing_files(url)
        named = f" ({', '.join(missing)})" if missing else ""
        return f"{exc.strerror or exc}{named}: give a file this user can read"
    password = url_password(url)
    if not password:
        return _short(exc, secrets)
    scheme, _, rest = url.partition("://")
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    try:
        _client(f"{scheme}://{user}:x@{hostpart}", kwargs).close()
    except (ConfigurationError, InvalidURI, ValueError, UserWarning, OSError) as again:
        return _short(again, secrets)
    return "check the user name and password: special characters in them must be percent-encoded"


def connect(url: str, masked: str, secrets: Sequence[str] = ()) -> MongoStore:
    """Build a MongoStore for a mongodb:// or mongodb+srv:// URL; lazy, so nothing touches
    the network until the first command. Reports an unreachable server within ~5 s."""
    from pymongo.errors import ConfigurationError, InvalidURI

    # Start-up and the first round trip add ~1 s, so an unreachable server is reported in
    # about 5 s in all (SPEC §3), not pymongo's 30 s. A URL's own settings win.
    # socketTimeoutMS bounds every operation, so a network partition cannot hold a worker
    # inside the driver for minutes (it is far below stale_after).
    # Retryable writes and reads (the driver's defaults, stated so a URL must opt out
    # explicitly) let the driver re-send a claim or a result once after a failover.
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": SERVER_SELECTION_TIMEOUT_MS,
        "connectTimeoutMS": 4000,
        "socketTimeoutMS": 30000,
        "retryWrites": True,
        "retryReads": True,
    }
    lowered = url.lower()
    kwargs = {k: v for k, v in options.items() if k.lower() not in lowered}
    try:
        client = _client(url, kwargs)
        db_name = client.get_default_database(default="queuectl").name
    except (ConfigurationError, InvalidURI, ValueError, UserWarning, OSError) as exc:
        from ..errors import InvalidInput

        detail = _bad_url(url, secrets, exc, kwargs)
        raise InvalidInput(f"bad MongoDB URL {masked}: {detail}") from None
    return MongoStore(client, db_name, masked, secrets)
