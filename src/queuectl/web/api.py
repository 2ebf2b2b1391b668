"""The JSON API (SPEC §7.7): the same documents as the CLI's `--json`, through the managers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidInput, NotCancelable, NotInDlq
from ..jobs import NO_SUCH_JOB, JobManager
from ..models import Job
from ..render import job_json, schedule_json, worker_json
from .context import web_of
from .responses import BodyTooLarge
from .views import find_jobs, parse_query, status_doc

# A batch of 100,000 small jobs fits; a single command is at most 64 KiB anyway.
MAX_BODY = 16 * 1024 * 1024


def api_status(request: Request) -> Response:
    """GET /api/status: `status --json`."""
    web = web_of(request)
    return JSONResponse(status_doc(web.jobs(), web.workers()))


def api_stats(request: Request) -> Response:
    """GET /api/stats: `stats --json`."""
    return JSONResponse(web_of(request).jobs().stats())


def api_jobs(request: Request) -> Response:
    """GET /api/jobs?state=&queue=&q=&limit=&offset=: `list --json` (`--state`, `--queue`,
    `--limit`), the page from `offset` on, only jobs whose id or command holds `q` (the job
    whose id it is first; the rest from the first SEARCH_SCAN jobs, and an X-Search-Scanned
    header when more may match); a Link header names the next page when there is one."""
    query = parse_query(request.query_params)
    found = find_jobs(web_of(request).jobs(), query)
    response = JSONResponse([job_json(j) for j in found.jobs])
    if found.has_more:
        following = urlencode(query.params(offset=query.offset + query.limit))
        response.headers["Link"] = f'</api/jobs?{following}>; rel="next"'
    if not found.complete:  # the search read that many jobs of the order; more may match
        response.headers["X-Search-Scanned"] = str(found.scanned)
    return response


def api_job(request: Request) -> Response:
    """GET /api/jobs/<id>: `show --json`."""
    return JSONResponse(job_json(web_of(request).jobs().get(request.path_params["id"])))


def api_workers(request: Request) -> Response:
    """GET /api/workers[?all=1]: `worker list --json` (`--all` with all=1)."""
    web = web_of(request)
    include_stopped = request.query_params.get("all", "") in ("1", "true")
    workers = web.workers().list(include_stopped=include_stopped)
    now = web.clock()
    return JSONResponse([worker_json(w, now) for w in workers])


def api_schedules(request: Request) -> Response:
    """GET /api/schedules: `schedule list --json`."""
    return JSONResponse([schedule_json(s) for s in web_of(request).schedules().list()])


async def api_enqueue(request: Request) -> Response:
    """POST /api/jobs: one enqueue JSON object (answered with the job, as `enqueue --json`)
    or an array of them (a batch, all or nothing, answered with an array)."""
    document = _parse(await read_body(request))
    specs: list[tuple[str | None, Any]]
    if isinstance(document, list):
        specs = [(f"item {n}", spec) for n, spec in enumerate(document, start=1)]
    elif isinstance(document, dict):
        specs = [(None, document)]
    else:
        raise InvalidInput("the request body must be a JSON object or an array of objects")
    jobs = await run_in_threadpool(web_of(request).jobs().enqueue, specs)
    docs = [job_json(j) for j in jobs]
    if isinstance(document, list):
        return JSONResponse(docs, 201)
    return JSONResponse(
        docs[0], 201, headers={"Location": f"/api/jobs/{quote(jobs[0].id, safe='')}"}
    )


async def api_retry(request: Request) -> Response:
    """POST /api/jobs/<id>/retry: `dlq retry <id>`; answers with the job."""
    jobs = web_of(request).jobs()
    job = await run_in_threadpool(retry_one, jobs, request.path_params["id"])
    return JSONResponse(job_json(job))


async def api_cancel(request: Request) -> Response:
    """POST /api/jobs/<id>/cancel: `cancel <id>`; answers with the job (a running one is
    still `processing`, with its cancel asked for, until its worker has killed it)."""
    jobs = web_of(request).jobs()
    job = await run_in_threadpool(cancel_one, jobs, request.path_params["id"])
    return JSONResponse(job_json(job))


def cancel_one(jobs: JobManager, job_id: str) -> Job:
    """Cancel one job as `cancel` does: 404 if unknown, 409 if completed or dead already."""
    _, problems = jobs.cancel([job_id])
    if problems:
        raise (UnknownToCancel if problems[0][1] == NO_SUCH_JOB else NotCancelable)(problems)
    return jobs.get(job_id)


class UnknownToCancel(NotCancelable):
    """`cancel` of an id no job has: the CLI's message, as a 404."""

    http_status = 404


def retry_one(jobs: JobManager, job_id: str) -> Job:
    """Put one dead job back to pending: 404 if unknown, 409 if it is not dead."""
    jobs.get(job_id)
    _, missing = jobs.retry_dead([job_id])
    if missing:
        raise NotInDlq(missing)
    return jobs.get(job_id)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) past `limit` bytes without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidInput("the request body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
