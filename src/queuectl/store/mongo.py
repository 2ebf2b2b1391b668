"""MongoStore: the shared store for workers on many machines.

Every primitive is one atomic server operation on one document (the claim is
find_one_and_update), so it behaves the same on a standalone server, a replica set, Atlas and
mongomock. pymongo is imported only here, and only when a MongoDB URL is used.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..errors import DuplicateJob, StoreUnavailable
from ..models import READY_STATES, Job, WorkerInfo
from .base import quantile_rank

CLAIM_SORT = [("priority", -1), ("run_at", 1), ("seq", 1)]
READY = {"$in": list(READY_STATES)}


def _job_doc(job: Job) -> dict[str, Any]:
    doc = job.to_record()
    doc["_id"] = doc.pop("id")
    return doc


def _job(doc: dict[str, Any] | None) -> Job | None:
    if doc is None:
        return None
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return Job.from_record(doc)


def _worker(doc: dict[str, Any]) -> WorkerInfo:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return WorkerInfo.from_record(doc)


class MongoStore:
    """The Store protocol on a MongoDB database (`jobs`, `workers`, `config`)."""

    def __init__(
        self, client: Any, db_name: str, url: str = "mongodb://", secret: str | None = None
    ) -> None:
        self.client = client
        self._secret = secret  # scrubbed from every message
        self.db = client[db_name]
        self.url = url
        self.jobs = self.db["jobs"]
        self.workers = self.db["workers"]
        self.config = self.db["config"]
        self._indexed = False

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from pymongo.errors import DuplicateKeyError, PyMongoError

        try:
            if not self._indexed:
                self._ensure_indexes()
            yield
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB at {self.url}: {_short(exc, self._secret)}") from None

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
            ]
        )
        self.workers.create_indexes([IndexModel([("status", 1)], name="status")])

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    # -- jobs -----------------------------------------------------------------------------
    def insert_jobs(self, jobs: Sequence[Job]) -> None:
        """All or nothing: ids are checked first, and a batch that still meets a taken id
        (a race with another enqueue) removes what it inserted before raising."""
        from pymongo.errors import BulkWriteError, DuplicateKeyError

        ids = [job.id for job in jobs]
        with self._errors():
            for start in range(0, len(ids), 10_000):
                chunk = ids[start : start + 10_000]
                taken = self.jobs.find_one({"_id": {"$in": chunk}}, {"_id": 1})
                if taken:
                    raise DuplicateJob(taken["_id"])
            try:
                self.jobs.insert_many([_job_doc(job) for job in jobs], ordered=True)
            except (BulkWriteError, DuplicateKeyError) as exc:
                inserted = _inserted_count(exc)
                if inserted:  # never remove one a worker has already claimed
                    self.jobs.delete_many(
                        {"_id": {"$in": ids[:inserted]}, "state": "pending", "attempts": 0}
                    )
                raise DuplicateJob(ids[inserted] if inserted < len(ids) else ids[0]) from None

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None."""
        with self._errors():
            return _job(self.jobs.find_one({"_id": job_id}))

    def list_jobs(self, state: str | None, limit: int) -> list[Job]:
        """Pending/failed in claim order; other states newest update first."""
        query = {"state": state} if state else {}
        sort = CLAIM_SORT if state in ("pending", "failed") else [("updated_at", -1), ("seq", -1)]
        with self._errors():
            docs = list(self.jobs.find(query).sort(sort).limit(limit))
        return [j for j in map(_job, docs) if j is not None]

    def count_by_state(self) -> dict[str, int]:
        """Number of jobs per state, counted by the server."""
        with self._errors():
            rows = self.jobs.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
            return {r["_id"]: r["n"] for r in rows}

    def claim(self, worker_id: str, now: float, lease_token: str) -> Job | None:
        """find_one_and_update: the server picks and locks one document atomically."""
        from pymongo import ReturnDocument

        update = {
            "$set": {
                "state": "processing",
                "locked_by": worker_id,
                "locked_at": now,
                "lease_token": lease_token,
                "lease_renewed_at": now,
                "started_at": now,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
        }
        with self._errors():
            doc = self.jobs.find_one_and_update(
                {"state": READY, "run_at": {"$lte": now}},
                update,
                sort=CLAIM_SORT,
                return_document=ReturnDocument.AFTER,
            )
        return _job(doc)

    def finish(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool:
        """Fenced: the filter holds the lease token, so a stale worker matches nothing."""
        return self._fenced_update(job_id, lease_token, changes)

    def renew_lease(self, job_id: str, lease_token: str, now: float) -> bool:
        """Extend the lease if it is still ours."""
        return self._fenced_update(job_id, lease_token, {"lease_renewed_at": now})

    def _fenced_update(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool:
        with self._errors():
            result = self.jobs.update_one(
                {"_id": job_id, "state": "processing", "lease_token": lease_token},
                {"$set": changes},
            )
        return bool(result.matched_count == 1)

    def stale_jobs(self, cutoff: float) -> list[Job]:
        """Processing jobs whose lease was not renewed since `cutoff`."""
        with self._errors():
            docs = list(
                self.jobs.find({"state": "processing", "lease_renewed_at": {"$lt": cutoff}})
            )
        return [j for j in map(_job, docs) if j is not None]

    def jobs_locked_by(self, worker_id: str) -> list[Job]:
        """Processing jobs held by that worker."""
        with self._errors():
            docs = list(self.jobs.find({"state": "processing", "locked_by": worker_id}))
        return [j for j in map(_job, docs) if j is not None]

    def retry_dead(self, job_ids: Sequence[str] | None, now: float) -> list[str]:
        """Dead jobs back to pending, in one update conditioned on each still being dead."""
        query: dict[str, Any] = {"state": "dead"}
        if job_ids is not None:
            query["_id"] = {"$in": list(job_ids)}
        with self._errors():
            ids = [doc["_id"] for doc in self.jobs.find(query, {"_id": 1})]
            if ids:
                self.jobs.update_many(
                    {"_id": {"$in": ids}, "state": "dead"},
                    {
                        "$set": {
                            "state": "pending",
                            "attempts": 0,
                            "run_at": now,
                            "updated_at": now,
                            "locked_by": None,
                            "locked_at": None,
                            "lease_token": None,
                        }
                    },
                )
        return ids

    def next_run_at(self) -> float | None:
        """Earliest run_at of a ready-or-waiting job."""
        with self._errors():
            doc = self.jobs.find_one({"state": READY}, {"run_at": 1}, sort=[("run_at", 1)])
        return doc["run_at"] if doc else None

    def job_stats(self, now: float) -> dict[str, Any]:
        """Aggregates computed by the server."""
        # $type, not {$ne: null}: on a MongoDB stand-in that treats a missing field as not
        # null, a completed document without a duration would count (and crash the
        # percentile read). Durations are numbers, so both mean the same on MongoDB.
        done = {"state": "completed", "duration": {"$type": "number"}}
        with self._errors():
            agg = list(
                self.jobs.aggregate(
                    [
                        {"$match": done},
                        {"$group": {"_id": None, "n": {"$sum": 1}, "mean": {"$avg": "$duration"}}},
                    ]
                )
            )
            n = agg[0]["n"] if agg else 0
            result: dict[str, Any] = {
                "mean": agg[0]["mean"] if agg else None,
                "p50": None,
                "p95": None,
            }
            for name, q in (("p50", 0.50), ("p95", 0.95)):
                if n:
                    docs = list(
                        self.jobs.find(done, {"duration": 1})
                        .sort("duration", 1)
                        .skip(quantile_rank(n, q))
                        .limit(1)
                    )
                    result[name] = docs[0]["duration"] if docs else None
            retries = list(
                self.jobs.aggregate(
                    [
                        {"$match": {"attempts": {"$gt": 1}}},
                        {"$group": {"_id": None, "r": {"$sum": {"$subtract": ["$attempts", 1]}}}},
                    ]
                )
            )
            result["retries"] = retries[0]["r"] if retries else 0
            for name, window in (("last_minute", 60), ("last_hour", 3600)):
                result[name] = self.jobs.count_documents(
                    {"state": "completed", "finished_at": {"$gte": now - window}}
                )
        return result

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored values."""
        with self._errors():
            return {d["_id"]: d["value"] for d in self.config.find()}

    def set_config(self, key: str, value: Any) -> None:
        """Upsert one value."""
        with self._errors():
            self.config.update_one({"_id": key}, {"$set": {"value": value}}, upsert=True)

    def unset_config(self, key: str) -> None:
        """Delete one value."""
        with self._errors():
            self.config.delete_one({"_id": key})

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
        """One worker document."""
        with self._errors():
            doc = self.workers.find_one({"_id": worker_id})
        return _worker(doc) if doc else None

    def list_workers(self, statuses: Sequence[str] | None = None) -> list[WorkerInfo]:
        """Workers (of those statuses, when given), newest first."""
        query = {"status": {"$in": list(statuses)}} if statuses is not None else {}
        with self._errors():
            docs = list(self.workers.find(query).sort([("started_at", -1), ("_id", 1)]))
        return [_worker(d) for d in docs]

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        """Set the stop flag."""
        with self._errors():
            self.workers.update_many(
                {"_id": {"$in": list(worker_ids)}}, {"$set": {"stop_requested": True}}
            )

    def delete_workers(self, before: float) -> int:
        """Forget long-gone workers."""
        with self._errors():
            return int(
                self.workers.delete_many(
                    {"status": {"$in": ["stopped", "lost"]}, "last_heartbeat": {"$lt": before}}
                ).deleted_count
            )

    def mark_workers_lost(self, cutoff: float) -> list[str]:
        """Silent live workers become lost (each conditioned on still being silent)."""
        query = {"status": {"$in": ["idle", "busy", "stopping"]}, "last_heartbeat": {"$lt": cutoff}}
        lost = []
        with self._errors():
            for doc in self.workers.find(query, {"_id": 1}):
                result = self.workers.update_one(
                    {**query, "_id": doc["_id"]},
                    {"$set": {"status": "lost", "current_job": None}},
                )
                if result.modified_count:
                    lost.append(doc["_id"])
        return lost


def _inserted_count(exc: Exception) -> int:
    details = getattr(exc, "details", None) or {}
    return int(details.get("nInserted", 0))


def _short(exc: Exception, secret: str | None = None) -> str:
    """The driver's message without its topology dump, and never with the password
    (raw or percent-decoded)."""
    text = str(exc)
    for cut in (", Timeout:", ", Topology Description", " (configured timeouts"):
        text = text.split(cut)[0]
    if secret:
        from urllib.parse import unquote

        for form in {secret, unquote(secret)}:
            text = text.replace(form, "***")
    return text.strip() or type(exc).__name__


def connect(url: str, masked: str, secret: str | None = None) -> MongoStore:
    """Build a MongoStore for a mongodb:// or mongodb+srv:// URL; lazy, so nothing touches
    the network until the first command. Reports an unreachable server within ~5 s."""
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError, InvalidURI

    # Start-up and the first round trip add ~1 s, so an unreachable server is reported in
    # about 5 s in all (SPEC §3), not pymongo's 30 s. A URL's own settings win.
    # socketTimeoutMS bounds every operation, so a network partition cannot hold a worker
    # inside the driver for minutes (it is far below stale_after).
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": 4000,
        "connectTimeoutMS": 4000,
        "socketTimeoutMS": 30000,
    }
    lowered = url.lower()
    kwargs = {k: v for k, v in options.items() if k.lower() not in lowered}
    try:
        with warnings.catch_warnings():
            # pymongo only warns about an unknown URL option; a typo should be an error.
            warnings.simplefilter("error", UserWarning)
            client: Any = MongoClient(url, connect=False, **kwargs)
        db_name = client.get_default_database(default="queuectl").name
    except (ConfigurationError, InvalidURI, ValueError, UserWarning) as exc:
        from ..errors import InvalidInput

        # A parse error may quote any fragment of a mangled password, so with a password
        # in the URL only a generic hint is given.
        detail = (
            "check its syntax; special characters in the user name or password must be "
            "percent-encoded"
            if secret
            else _short(exc)
        )
        raise InvalidInput(f"bad MongoDB URL {masked}: {detail}") from None
    return MongoStore(client, db_name, masked, secret)
