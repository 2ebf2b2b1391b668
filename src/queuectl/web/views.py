"""What the pages and the API show, read through the managers (never the store itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping

from ..errors import InvalidInput
from ..jobs import JobManager
from ..models import Job, check_state, shown, validate_queue
from ..workers import WorkerManager

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_QUERY = 200


def has_run(job: Job) -> bool:
    """Whether an attempt of the job has ended and left a result (as `log` judges it)."""
    return job.finished_at is not None or job.exit_code is not None


def status_doc(jobs: JobManager, workers: WorkerManager) -> dict[str, Any]:
    """`status --json`: counts of the five states and active workers."""
    return {"jobs": jobs.counts(), "workers": {"active": len(workers.active())}}


@dataclass(frozen=True)
class JobQuery:
    """A checked `/api/jobs` (and `/jobs` page) query."""

    state: str | None = None
    q: str = ""
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    queue: str | None = None

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query (with changes), omitting defaults."""
        values = {
            "state": self.state,
            "queue": self.queue,
            "q": self.q,
            "limit": self.limit,
            "offset": self.offset,
        }
        values.update(changes)
        defaults = {"state": None, "queue": None, "q": "", "limit": DEFAULT_LIMIT, "offset": 0}
        return {k: str(v) for k, v in values.items() if v != defaults[k]}


@dataclass(frozen=True)
class JobPage:
    """One page of jobs and whether more follow; `complete` is False when a text search
    stopped before the end of the list (more may match further on)."""

    query: JobQuery
    jobs: List[Job]
    has_more: bool
    complete: bool = True
    scanned: int = 0  # jobs a text search read at most


def parse_query(params: Mapping[str, str]) -> JobQuery:
    """Check `state`, `queue`, `q`, `limit` and `offset` with the CLI's messages where it has
    them."""
    state = params.get("state") or None
    check_state(state)
    queue = params.get("queue") or None
    if queue is not None:
        validate_queue(queue)
    limit = _integer(params, "limit", DEFAULT_LIMIT)
    if limit < 1:  # JobManager.list's own message, as `list --limit 0` prints it
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    if limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be at most {MAX_LIMIT}, got {limit}")
    offset = _integer(params, "offset", 0)
    if offset < 0:
        raise InvalidInput(f"offset must be at least 0, got {offset}")
    q = params.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"q must be at most {MAX_QUERY} characters, got {len(q)}")
    return JobQuery(state, q, limit, offset, queue)


def _integer(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {shown(raw, 40)}") from None


def find_jobs(jobs: JobManager, query: JobQuery) -> JobPage:
    """One page of jobs in `list` order (pending and failed in claim order, others newest
    first), of one state and queue when given; the store skips. With `q`: the job whose id it
    is first, then those of the first SEARCH_SCAN jobs of that order whose id or command holds
    it (ASCII letters in any case), as JobManager.search finds them."""
    if query.q:
        found = jobs.search(
            query.q, query.state, query.queue, limit=query.limit, offset=query.offset
        )
        return JobPage(query, found.jobs, found.has_more, found.complete, found.scanned)
    listed = jobs.list(query.state, query.limit + 1, query.queue, offset=query.offset)
    return JobPage(query, listed[: query.limit], len(listed) > query.limit)
