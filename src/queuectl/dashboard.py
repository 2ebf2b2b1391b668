"""`queuectl dashboard`: a live terminal view of jobs and workers.

One pure function draws a frame from a snapshot (`render_frame`); one loop takes snapshots,
draws them with plain ANSI codes and sleeps. No curses: the view must work over ssh, in any
terminal, and in tests through a pseudo-terminal.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Optional, Sequence, TextIO, Tuple

from . import render
from .errors import QueuectlError
from .models import DEAD, STATES, Job, WorkerInfo, WorkerStatus
from .text import printable

if TYPE_CHECKING:
    from .app import App

RECENT_JOBS = 50  # more than any screen shows; the frame keeps what fits
HOME, CLEAR, ERASE_LINE, ERASE_BELOW = "\x1b[H", "\x1b[2J", "\x1b[K", "\x1b[J"
GAP = "  "
ERROR_LINES = 3  # a long driver message is wrapped, then cut

# A line is a list of segments: (text, colour key or None). Widths are counted on the text,
# so colour codes never make a line longer than the terminal.
Segment = Tuple[str, Optional[str]]


@dataclass(frozen=True)
class Snapshot:
    """What one refresh read from the store. `error` is set when the last refresh failed;
    the data is then the last good one (taken at `taken_at`, None if there never was one)."""

    store: str
    interval: float
    counts: dict[str, int] | None = None
    workers: Sequence[WorkerInfo] = field(default_factory=tuple)
    jobs: Sequence[Job] = field(default_factory=tuple)
    taken_at: float | None = None
    error: str | None = None


def take_snapshot(app: App, interval: float, now: float | None = None) -> Snapshot:
    """Read counts, live workers and recent jobs. Raises QueuectlError if the store fails."""
    return Snapshot(
        store=app.store.url,
        interval=interval,
        counts=app.jobs.counts(),
        workers=tuple(app.workers.list()),
        jobs=tuple(app.jobs.list(None, RECENT_JOBS)),
        taken_at=time.time() if now is None else now,
    )


def refresh(get_app: Callable[[], App], interval: float, previous: Snapshot | None) -> Snapshot:
    """A new snapshot, or the previous data marked with the error that stopped the read."""
    try:
        return take_snapshot(get_app(), interval)
    except QueuectlError as exc:
        last = previous or Snapshot(store="", interval=interval)
        return replace(last, interval=interval, error=str(exc) or type(exc).__name__)


# -- drawing (pure) -------------------------------------------------------------------------
def age(seconds: float) -> str:
    """A short age: 5s, 3m, 2h, 4d."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def clock_time(ts: float) -> str:
    """Time of day in UTC, as the header shows it."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%SZ")


def fit_line(segments: Sequence[Segment], width: int, colour: bool) -> str:
    """Join segments, cut to `width` visible characters, colour the coloured ones."""
    out, room = [], max(width, 0)
    for text, key in segments:
        if room <= 0:
            break
        piece = text[:room]
        room -= len(piece)
        code = render.STATE_COLOURS.get(key or "")
        out.append(f"\x1b[{code}m{piece}\x1b[0m" if colour and code else piece)
    return "".join(out)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Segment]], caps: Sequence[int], width: int
) -> list[list[Segment]]:
    """Columns sized to their content (each at most its cap); the last one takes the rest."""
    widths = [
        min(cap, max([len(header)] + [len(row[i][0]) for row in rows]))
        for i, (header, cap) in enumerate(zip(headers[:-1], caps, strict=True))
    ]
    used = sum(widths) + len(GAP) * len(widths)
    last = max(width - used, len(headers[-1]))
    lines = []
    for row in [[(h, None) for h in headers], *rows]:
        line: list[Segment] = []
        for i, (text, key) in enumerate(row[:-1]):
            line += [(printable(text, widths[i]).ljust(widths[i]), key), (GAP, None)]
        line.append((printable(row[-1][0], last), row[-1][1]))
        lines.append(line)
    return lines


def _header(snap: Snapshot, width: int, now: float) -> list[list[Segment]]:
    title = f"queuectl dashboard - every {snap.interval:g}s - Ctrl+C to quit"
    stamp = clock_time(now)
    pad = max(width - len(title) - len(stamp), 1)
    lines: list[list[Segment]] = [[(title + " " * pad + stamp, None)]]
    if snap.store:
        lines.append([("Store: " + printable(snap.store), None)])
    if snap.error:
        seen = (
            "never read"
            if snap.taken_at is None
            else f"showing data from {age(now - snap.taken_at)} ago"
        )
        lines.append(
            [
                ("Store unreachable", DEAD),
                (f" - retrying every {snap.interval:g}s ({seen}):", None),
            ]
        )
        wrapped = textwrap.wrap(printable(snap.error), max(width - 2, 10))
        lines += [[("  " + part, None)] for part in wrapped[:ERROR_LINES]]
    elif snap.taken_at is None:
        lines.append([("Reading the store...", None)])
    return lines


def _counts(snap: Snapshot) -> list[Segment]:
    if snap.counts is None:
        return [("Jobs: unknown", None)]
    line: list[Segment] = [("Jobs:", None)]
    for state in STATES:
        line += [("  ", None), (state, state), (f" {snap.counts.get(state, 0)}", None)]
    return line


def _workers(snap: Snapshot, width: int, now: float) -> list[list[Segment]]:
    active = sum(1 for w in snap.workers if w.status != WorkerStatus.LOST)
    lines: list[list[Segment]] = [[(f"Workers: {active} active", None)]]
    if not snap.workers:
        return lines + [[("  (no worker is running)", None)]]
    rows = [
        [
            (w.id, None),
            (w.status, w.status),
            (age(now - w.last_heartbeat) + " ago", None),
            (str(w.jobs_done), None),
            (str(w.jobs_failed), None),
            (w.current_job or "-", None),
        ]
        for w in snap.workers
    ]
    return lines + table(
        ["ID", "Status", "Heartbeat", "Done", "Failed", "Current job"],
        rows,
        [32, 8, 9, 6, 6],
        width,
    )


def _jobs(snap: Snapshot, width: int, now: float) -> list[list[Segment]]:
    lines: list[list[Segment]] = [[("Recent jobs", None)]]
    if not snap.jobs:
        return lines + [[("  (no jobs)", None)]]
    rows = [
        [
            (j.id, None),
            (j.state, j.state),
            (f"{j.attempts}/{j.max_retries + 1}", None),
            (age(now - j.updated_at) + " ago", None),
            (j.command, None),
        ]
        for j in snap.jobs
    ]
    return lines + table(
        ["ID", "State", "Tries", "Updated", "Command"], rows, [26, 10, 7, 8], width
    )


def render_frame(
    snapshot: Snapshot, width: int, now: float, height: int | None = None, colour: bool = False
) -> str:
    """The whole screen as text: every line at most `width` visible characters, at most
    `height` lines (recent jobs are cut first), control characters escaped."""
    width = max(width, 1)
    lines = _header(snapshot, width, now) + [[], [*_counts(snapshot)], []]
    lines += _workers(snapshot, width, now) + [[]] + _jobs(snapshot, width, now)
    if height is not None:
        lines = lines[: max(height, 1)]
    return "\n".join(fit_line(line, width, colour) for line in lines)


# -- the loop -------------------------------------------------------------------------------
def draw(out: TextIO, frame: str, rows: int | None) -> None:
    """Paint a frame over the previous one: in place on a terminal of `rows` lines, appended
    otherwise. Each line is erased before it is written, never after: erasing after a line
    that fills the width would wipe its last character on most terminals."""
    if rows is not None:
        lines = frame.split("\n")
        tail = "\n" + ERASE_BELOW if len(lines) < rows else ""
        out.write(HOME + "\n".join(ERASE_LINE + line for line in lines) + tail)
    else:
        out.write(frame + "\n\n")
    out.flush()


def run_dashboard(get_app: Callable[[], App], interval: float, out: TextIO | None = None) -> None:
    """Refresh every `interval` seconds until Ctrl+C, which ends it quietly. A store that
    cannot be reached is shown on screen and tried again at the next refresh."""
    out = out or sys.stdout
    # A malformed URL is an input error for the CLI to report, not something to retry.
    snapshot = Snapshot(store=get_app().store.url, interval=interval)
    tty = out.isatty()
    try:
        if tty:
            out.write(HOME + CLEAR)
            # The first read can take seconds (an unreachable MongoDB): show a frame at once.
            size = shutil.get_terminal_size()
            draw(out, render_frame(snapshot, size.columns, time.time(), size.lines), size.lines)
        while True:
            started = time.monotonic()
            snapshot = refresh(get_app, interval, snapshot)
            size = shutil.get_terminal_size()
            rows = size.lines if tty else None
            draw(
                out,
                render_frame(
                    snapshot, size.columns, time.time(), rows, tty and render.use_colour()
                ),
                rows,
            )
            time.sleep(max(interval - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        pass  # Ctrl+C is how a user leaves the view: no traceback, exit 0
    finally:
        if tty:
            out.write("\n")
            out.flush()
