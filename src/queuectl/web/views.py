"""What the pages and the API show, read through the managers (never the store itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping

from ..errors import InvalidInput, JobNotFound
from ..jobs import JobManager
from ..models import Job, check_state, shown
from ..workers import WorkerManager

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# JobManager.list has no offset and no text search: pages and searches look into the newest
# WINDOW jobs of the chosen state (an exact id is found wherever it is).
WINDOW = 2000
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

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query (with changes), omitting defaults."""
        values = {"state": self.state, "q": self.q, "limit": self.limit, "offset": self.offset}
        values.update(changes)
        defaults = {"state": None, "q": "", "limit": DEFAULT_LIMIT, "offset": 0}
        return {k: str(v) for k, v in values.items() if v != defaults[k]}


@dataclass(frozen=True)
class JobPage:
    """One page of jobs and whether more follow."""

    query: JobQuery
    jobs: List[Job]
    has_more: bool


def parse_query(params: Mapping[str, str]) -> JobQuery:
    """Check `state`, `q`, `limit` and `offset` with the CLI's messages where it has them."""
    state = params.get("state") or None
    check_state(state)
    limit = _integer(params, "limit", DEFAULT_LIMIT)
    if limit < 1:  # JobManager.list's own message, as `list --limit 0` prints it
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    if limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be at most {MAX_LIMIT}, got {limit}")
    offset = _integer(params, "offset", 0)
    if offset < 0:
        raise InvalidInput(f"offset must be at least 0, got {offset}")
    if offset + limit > WINDOW:
        raise InvalidInput(
            f"offset + limit must be at most {WINDOW}: only the newest {WINDOW} jobs of a "
            "state can be paged through; narrow the search with state or q"
        )
    q = params.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"q must be at most {MAX_QUERY} characters, got {len(q)}")
    return JobQuery(state, q, limit, offset)


def _integer(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {shown(raw, 40)}") from None


def find_jobs(jobs: JobManager, query: JobQuery) -> JobPage:
    """Jobs in `list` order (pending and failed in claim order, others newest first), those
    whose id or command holds `q` (any case) when it is given; an exact id comes first."""
    end = query.offset + query.limit
    if not query.q:
        found = jobs.list(query.state, end + 1)
    else:
        found = _search(jobs, query.state, query.q, end + 1)
    return JobPage(query, found[query.offset : end], len(found) > end)


def _search(jobs: JobManager, state: str | None, q: str, wanted: int) -> List[Job]:
    found: List[Job] = []
    try:
        exact = jobs.get(q)
        if state is None or exact.state == state:
            found.append(exact)
    except JobNotFound:
        pass
    needle = q.casefold()
    for job in jobs.list(state, WINDOW):
        if len(found) >= wanted:
            break
        if job.id != q and (needle in job.id.casefold() or needle in job.command.casefold()):
            found.append(job)
    return found
