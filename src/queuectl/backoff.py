"""What happens after a failed attempt: one rule, used by the worker and the reaper. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .models import DEAD, FAILED


def retry_delay(
    failures: int, base: float, maximum: float, jitter: float = 0.0, rand: float | None = None
) -> float:
    """Seconds to wait after the n-th failure: min(base ** n, maximum), scaled by jitter.

    With jitter x the delay is multiplied by a factor in [1 - x, 1]; `rand` (in [0, 1))
    picks the factor so tests can pin it.
    """
    try:
        delay = min(float(base) ** failures, float(maximum))
    except OverflowError:
        delay = float(maximum)
    if jitter > 0:
        r = random.random() if rand is None else rand
        delay *= 1.0 - jitter * r
    return delay


@dataclass(frozen=True)
class Outcome:
    """The next state of a job after a failed attempt, and when it may run again."""

    state: str
    run_at: float | None
    delay: float | None


def after_failure(
    attempts: int,
    max_retries: int,
    now: float,
    base: float,
    maximum: float,
    jitter: float = 0.0,
) -> Outcome:
    """Decide the fate of a job whose `attempts`-th attempt just failed (SPEC §4)."""
    if attempts > max_retries:
        return Outcome(DEAD, None, None)
    delay = retry_delay(attempts, base, maximum, jitter)
    return Outcome(FAILED, now + delay, delay)
