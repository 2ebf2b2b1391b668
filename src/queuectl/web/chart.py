"""The overview's bar chart of jobs finished per minute, as SVG geometry (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Sequence

from .finished import Minute

WIDTH, HEIGHT = 960, 150
TOP = 16  # room above the tallest bar for its label
BOTTOM = 18  # room below the bars for the time axis


@dataclass(frozen=True)
class Bar:
    """One minute: a completed segment on top of a dead one, or an 'unknown' mark."""

    x: float
    width: float
    completed_y: float
    completed_h: float
    dead_y: float
    dead_h: float
    known: bool
    title: str


@dataclass(frozen=True)
class Chart:
    """What the template draws."""

    width: int
    height: int
    base: float  # y of the time axis
    bars: List[Bar]
    peak: int
    total_completed: int
    total_dead: int
    unknown: int  # minutes that could not be seen whole


def build_chart(minutes: Sequence[Minute], width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """Bars scaled to the busiest minute; unknown minutes drawn as a low grey mark."""
    base = float(height - BOTTOM)
    room = base - TOP
    peak = max((m.completed + m.dead for m in minutes if m.known), default=0)
    step = width / max(len(minutes), 1)
    bars = []
    for index, minute in enumerate(minutes):
        scale = room / peak if peak else 0.0
        dead_h = minute.dead * scale if minute.known else 0.0
        completed_h = minute.completed * scale if minute.known else 0.0
        when = datetime.fromtimestamp(minute.start, timezone.utc).strftime("%H:%M UTC")
        title = (
            f"{when}: {minute.completed} completed, {minute.dead} dead"
            if minute.known
            else f"{when}: not known (finished before the dashboard could see them all)"
        )
        bars.append(
            Bar(
                x=round(index * step + 1, 2),
                width=round(max(step - 2, 1), 2),
                completed_y=round(base - dead_h - completed_h, 2),
                completed_h=round(completed_h, 2),
                dead_y=round(base - dead_h, 2),
                dead_h=round(dead_h, 2),
                known=minute.known,
                title=title,
            )
        )
    return Chart(
        width=width,
        height=height,
        base=base,
        bars=bars,
        peak=peak,
        total_completed=sum(m.completed for m in minutes if m.known),
        total_dead=sum(m.dead for m in minutes if m.known),
        unknown=sum(1 for m in minutes if not m.known),
    )
