"""Counting what an idle worker asks of its store over simulated time (SPEC §8): shared by
tests/test_idle_load.py and `make bench` (which imports it without pytest)."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from queuectl.app import App
from queuectl.store.base import Store
from queuectl.worker import Worker


class FakeClock:
    """A clock tests move by hand, so timing is checked without sleeping (here: the wall
    clock and the idle loop's interval clock at once). conftest's `clock` fixture is one."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore:
    """A store that counts its calls (by method name, with the clock's time of each)."""

    def __init__(self, store: Any, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self.url = store.url
        self.calls: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append((self._clock(), name))
            return attr(*args, **kwargs)

        return call

    def names(self, since: float = float("-inf"), until: float = float("inf")) -> list[str]:
        """The calls made in [since, until)."""
        with self._lock:
            return [name for at, name in self.calls if since <= at < until]


def run_idle(worker: Worker, clock: Any, seconds: float, during: Callable[[float], None]) -> None:
    """Run the worker's loop for `seconds` of simulated time: each idle wait moves the clock
    by its timeout (and the loop's interval clock with it), heartbeating every
    heartbeat_interval as the heartbeat thread would; `during(elapsed)` runs halfway through
    each wait and at its end."""
    start = clock()
    worker.monotonic = clock
    next_beat = start + float(worker.config.heartbeat_interval)

    def advance_to(when: float) -> None:
        nonlocal next_beat
        if next_beat - clock() > float(worker.config.heartbeat_interval):
            next_beat = clock()  # a shorter interval wakes the heartbeat thread at once
        while next_beat <= when:
            clock.advance(next_beat - clock())
            worker.heartbeat()
            next_beat = clock() + float(worker.config.heartbeat_interval)
        clock.advance(when - clock())
        during(clock() - start)

    def wait(timeout: float) -> None:
        assert timeout > 0, "an idle wait of 0: the loop would spin"
        end = clock() + timeout
        advance_to(clock() + timeout / 2)
        advance_to(end)
        if clock() - start >= seconds:
            worker.stopping = True

    worker._wait = wait  # type: ignore[method-assign]
    worker._heartbeat_loop = lambda: None  # type: ignore[method-assign]
    assert worker.run() == 0


def idle_calls(
    store: Store, seconds: float, config: dict[str, str] | None = None
) -> collections.Counter[str]:
    """The store calls of one idle worker over `seconds` of simulated time after its start,
    with those config values set first (the defaults otherwise)."""
    clock = FakeClock()
    counting = CountingStore(store, clock)
    app = App(store=counting, clock=clock)  # type: ignore[arg-type]
    for key, value in (config or {}).items():
        app.configs.set(key, value)
    worker = app.worker(log=lambda line: None)
    worker.start()
    counting.calls.clear()
    start = clock()
    run_idle(worker, clock, seconds, lambda elapsed: None)
    return collections.Counter(counting.names(start, start + seconds))
