"""Jinja2 with autoescaping on every template, the filters job text goes through, and the
one function that turns a template into a response (a whole page, or its live part)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..dashboard import age
from ..models import STATES, format_time
from ..text import printable, safe_block
from .context import web_of

STATE_LABELS = {
    "pending": "Pending",
    "processing": "Processing",
    "completed": "Completed",
    "failed": "Failed",
    "dead": "Dead (DLQ)",
}


def environment() -> jinja2.Environment:
    """Templates from the package; every value is HTML-escaped unless a template says not."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("queuectl.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Escaping makes text inert; these also show control characters and bidi overrides
    # as escapes, as the terminal output does, so text cannot pretend to be other text.
    env.filters["line"] = lambda text, width=None: printable(text, width)
    env.filters["block"] = lambda text: safe_block(text or "")
    env.filters["when"] = lambda ts: format_time(ts) or "-"
    env.filters["age"] = age
    env.filters["segment"] = lambda text: quote(text, safe="")
    env.globals["STATES"] = STATES
    env.globals["STATE_LABELS"] = STATE_LABELS
    env.globals["CANCELABLE"] = ("pending", "failed", "processing")
    return env


def page(
    request: Request, name: str, context: dict[str, Any], status: int = 200, live: bool = True
) -> HTMLResponse:
    """Render `name`, or with `?partial=1` only its live part (`_name`), which the page's
    script fetches to refresh itself (`live=False`: a page that has none)."""
    web = web_of(request)
    partial = live and request.query_params.get("partial") == "1"
    template = web.templates.get_template(f"_{name}" if partial else name)
    html = template.render(
        request=request,
        csrf=request.state.csrf,
        nonce=request.state.nonce,
        logged_in=web.guard.token is not None,
        store_url=web.store.url,
        now=web.clock(),
        **context,
    )
    return HTMLResponse(html, status)
