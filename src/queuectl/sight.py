"""How long this process has seen the store without a break (SPEC §8).

A reaper may count a lease as stale only over time it could see the store itself: after an
outage (or a freeze of this process) every lease looks old, though the workers that hold them
may be alive and unable to renew until a moment ago. Every store call of the process passes
through `SightedStore`, which tells a `Sight` whether it reached the store.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, cast

from .errors import QueuectlError, StoreUnavailable
from .store.base import Store


class Sight:
    """Since when the store has answered this process without a break: reset by a call that
    could not reach it, and by a gap between answers longer than `max_gap` seconds (the
    process was frozen, or every call hung)."""

    def __init__(self, clock: Callable[[], float] = time.time, max_gap: float = 61.0) -> None:
        self.clock = clock
        self.max_gap = max_gap
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last: float | None = None

    def saw(self) -> None:
        """The store answered just now."""
        now = self.clock()
        with self._lock:
            if self._since is None or self._last is None or now - self._last > self.max_gap:
                self._since = now
            self._last = now

    def lost(self) -> None:
        """A call could not reach the store."""
        with self._lock:
            self._since = None

    def since(self) -> float | None:
        """When the current unbroken view of the store began (None: not seeing it now)."""
        with self._lock:
            return self._since


class SightedStore:
    """A store whose every call reports to a Sight whether it reached the store."""

    def __init__(self, store: Store, sight: Sight) -> None:
        self._store = store
        self._sight = sight
        self.url = store.url

    def __getattr__(self, name: str) -> Any:
        """The store's attribute; a method comes wrapped, so each call is sighted."""
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        sight = self._sight

        def call(*args: Any, **kwargs: Any) -> Any:
            """The store's method, noting whether the store answered."""
            try:
                result = attr(*args, **kwargs)
            except StoreUnavailable:
                sight.lost()
                raise
            except QueuectlError:  # e.g. a duplicate id: the store did answer
                sight.saw()
                raise
            sight.saw()
            return result

        # Kept, so the next call finds it without coming back here (a worker calls the
        # same few methods for every job).
        self.__dict__[name] = call
        return call


def sighted(store: Store, sight: Sight) -> Store:
    """`store`, reporting to `sight` (typed as the Store it stands for)."""
    return cast(Store, SightedStore(store, sight))
