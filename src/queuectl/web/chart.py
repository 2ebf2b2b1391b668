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
    """One minute: a completed segment on top of a dead one."""

    x: float
    width: float
    completed_y: float
    completed_h: float
    dead_y: float
    dead_h: float
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


def build_chart(minutes: Sequence[Minute], width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """Bars scaled to the busiest minute."""
    base = float(height - BOTTOM)
    room = base - TOP
    peak = max((m.completed + m.dead for m in minutes), default=0)
    step = width / max(len(minutes), 1)
    bars = []
    for index, minute in enumerate(minutes):
        scale = room / peak if peak else 0.0
        dead_h = minute.dead * scale
        completed_h = minute.completed * scale
        when = datetime.fromtimestamp(minute.start, timezone.utc).strftime("%H:%M UTC")
        title = f"{when}: {minute.completed} completed, {minute.dead} dead"
        bars.append(
            Bar(
                x=round(index * step + 1, 2),
                width=round(max(step - 2, 1), 2),
                completed_y=round(base - dead_h - completed_h, 2),
                completed_h=round(completed_h, 2),
                dead_y=round(base - dead_h, 2),
                dead_h=round(dead_h, 2),
                title=title,
            )
        )
    return Chart(
        width=width,
        height=height,
        base=base,
        bars=bars,
        peak=peak,
        total_completed=sum(m.completed for m in minutes),
        total_dead=sum(m.dead for m in minutes),
    )
