"""The HTML pages and the forms on them. Each page has a live part its script re-fetches."""

from __future__ import annotations

from typing import Any, List
from urllib.parse import parse_qs, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import QueuectlError
from ..models import DEAD, FAILED, LIVE_WORKER_STATUSES, PUBLIC_FIELDS, Job, to_json_ready
from ..render import schedule_json
from .api import cancel_one, read_body, retry_one
from .chart import build_chart
from .context import web_of
from .responses import login_page
from .security import SESSION_COOKIE
from .templating import page
from .views import JobPage, JobQuery, find_jobs, has_run, parse_query

RECENT = 10
RETRYING = 10  # failed jobs shown on the DLQ page
MAX_FORM = 64 * 1024
FINAL_STATES = ("completed", DEAD)
PURGE_BUSY = "purge_busy"  # the DLQ page's parameter: a click found a purge running


def overview(request: Request) -> Response:
    """Counts by state, jobs finished per minute, workers, the latest jobs."""
    web = web_of(request)
    jobs = web.jobs()
    workers = web.workers().list()
    counts, queues = web.counts.read()  # shared by every open page: once a second at most
    context = {
        "counts": counts,
        "queues": queues,
        "active": sum(1 for w in workers if w.status in LIVE_WORKER_STATUSES),
        "workers": workers,
        "recent": jobs.list(None, RECENT),
        "chart": build_chart(web.finished.minutes()),
    }
    return page(request, "overview.html", context)


def jobs_page(request: Request) -> Response:
    """Jobs filtered by state, queue and id or command text, a page at a time."""
    query = parse_query(request.query_params)
    found = _found(request, query)
    context = _listing(request, query, found.has_more, found.jobs)
    context.update(complete=found.complete, scanned=found.scanned)
    return page(request, "jobs.html", context)


def _found(request: Request, query: JobQuery) -> JobPage:
    """The page's jobs; a live refresh of a text search shows the answer of a few seconds
    ago when there is one (web/searches.py)."""
    web = web_of(request)
    if query.q and request.query_params.get("partial") == "1":
        return web.searches.answer(query, lambda: find_jobs(web.jobs(), query))
    return find_jobs(web.jobs(), query)


def dlq_page(request: Request) -> Response:
    """Dead jobs, with a retry button each, one to retry them all and one to purge them."""
    params = dict(request.query_params)
    params["state"] = DEAD
    query = parse_query(params)
    jobs = web_of(request).jobs()
    found = _found(request, query)
    context = _listing(request, query, found.has_more, found.jobs)
    context.update(complete=found.complete, scanned=found.scanned)
    # The jobs on their way here (failed, waiting for a retry), which cancel sends at once.
    retrying = jobs.list(FAILED, RETRYING + 1) if not query.offset else []
    context.update(retrying=retrying[:RETRYING], more_retrying=len(retrying) > RETRYING)
    purge = web_of(request).purge.status()
    context.update(purge=purge, purge_busy=purge.running and PURGE_BUSY in request.query_params)
    return page(request, "dlq.html", context)


def _listing(request: Request, query: JobQuery, has_more: bool, jobs: List[Job]) -> dict[str, Any]:
    def link(offset: int) -> str:
        params = query.params(offset=offset)
        if request.url.path == "/dlq":
            del params["state"]  # the page's own
        return f"{request.url.path}?{urlencode(params)}"

    previous = link(max(query.offset - query.limit, 0)) if query.offset else None
    here = [(k, v) for k, v in request.query_params.multi_items() if k != "partial"]
    return {
        "back": f"{request.url.path}?{urlencode(here)}" if here else request.url.path,
        "query": query,
        "jobs": jobs,
        "previous": previous,
        "next": link(query.offset + query.limit) if has_more else None,
        "live_url": _live_url(request),
    }


def job_page(request: Request) -> Response:
    """Every field of one job and its output; refreshed while it may still change."""
    job = web_of(request).jobs().get(request.path_params["id"])
    fields = to_json_ready(job)
    context = {
        "job": job,
        "fields": [(k, fields[k]) for k in PUBLIC_FIELDS if k not in ("stdout", "stderr")],
        "has_run": has_run(job),
        "final": job.state in FINAL_STATES,
        "live_url": _live_url(request),
    }
    return page(request, "job.html", context)


def workers_page(request: Request) -> Response:
    """Workers as `worker list` shows them (`?all=1`: stopped ones too)."""
    include_stopped = request.query_params.get("all", "") in ("1", "true")
    context = {
        "workers": web_of(request).workers().list(include_stopped=include_stopped),
        "include_stopped": include_stopped,
        "live_url": _live_url(request),
    }
    return page(request, "workers.html", context)


def schedules_page(request: Request) -> Response:
    """Recurring jobs: cron, zone, command, next and last run."""
    context = {
        # As `schedule list --json` shows them (no next run while paused, or when none).
        "schedules": [schedule_json(s) for s in web_of(request).schedules().list()],
        "live_url": _live_url(request),
    }
    return page(request, "schedules.html", context)


def _live_url(request: Request) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "partial"]
    return f"{request.url.path}?{urlencode([*params, ('partial', '1')])}"


# -- forms ----------------------------------------------------------------------------------
async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (first value of each field)."""
    body = await read_body(request, MAX_FORM)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


class FormExpired(QueuectlError):
    """A form without this browser's CSRF token (HTTP 403)."""

    http_status = 403


async def checked_form(request: Request) -> dict[str, str]:
    """A form of these pages, read as read_form does, once its CSRF token is found to be
    this browser's; else FormExpired."""
    form = await read_form(request)
    if not web_of(request).guard.csrf_ok(request, form.get("csrf")):
        raise FormExpired("the form has expired; reload the page")
    return form


def _back(form: dict[str, str], default: str) -> str:
    """Where a form returns to: a path of this server only, never another site."""
    target = form.get("next", "")
    ok = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if ok else default


async def retry_form(request: Request) -> Response:
    """The DLQ's and the job page's retry button."""
    form = await checked_form(request)
    await run_in_threadpool(retry_one, web_of(request).jobs(), request.path_params["id"])
    return RedirectResponse(_back(form, "/dlq"), 303)


async def cancel_form(request: Request) -> Response:
    """The cancel button of a pending, failed or running job (jobs list and job page)."""
    form = await checked_form(request)
    await run_in_threadpool(cancel_one, web_of(request).jobs(), request.path_params["id"])
    return RedirectResponse(_back(form, "/jobs"), 303)


async def purge_dead_form(request: Request) -> Response:
    """The DLQ's purge button: `purge --state dead` (every dead job, for good), started in
    the background (web/purge.py); the DLQ page follows it. While one runs, another click
    starts nothing and the page says so."""
    await checked_form(request)
    started = web_of(request).purge.start()
    return RedirectResponse("/dlq" if started else f"/dlq?{PURGE_BUSY}=1", 303)


async def retry_all_form(request: Request) -> Response:
    """The DLQ's retry-all button."""
    await checked_form(request)
    await run_in_threadpool(web_of(request).jobs().retry_dead, None)
    return RedirectResponse("/dlq", 303)


async def login(request: Request) -> Response:
    """The login form: a right token sets an HttpOnly cookie and goes back to the page."""
    web = web_of(request)
    form = await read_form(request)
    target = _back(form, "/")
    if not web.guard.csrf_ok(request, form.get("csrf")):
        return login_page(request, 403, "The form had expired; try again.", target)
    if not web.guard.token_matches(form.get("token", "")):
        return login_page(request, 401, "That token is not right.", target)
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SESSION_COOKIE,
        web.guard.session_cookie(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def login_done(request: Request) -> Response:
    """GET /login once logged in (a bookmark, the back button): go to the overview."""
    return RedirectResponse("/", 303)


async def logout(request: Request) -> Response:
    """Forget the login cookie in this browser."""
    await checked_form(request)
    response = RedirectResponse("/", 303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response
