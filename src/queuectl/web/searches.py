"""Text searches a live page repeats: answered again from memory for a few seconds.

A text search reads up to SEARCH_SCAN jobs' ids and commands (no index holds the text inside
commands). A page left open on a search refreshes every second or two; it runs the search
again at most once per `every` seconds, however many pages show it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")
SEARCH_EVERY = 5.0  # seconds a live page shows one search's answer before asking again
KEPT = 64  # searches remembered (the least recently asked go first)


class RecentSearches:
    """The answers of the last KEPT searches, each for `every` seconds."""

    def __init__(
        self,
        every: float = SEARCH_EVERY,
        kept: int = KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.kept = kept
        self.clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()

    def answer(self, key: Hashable, search: Callable[[], T]) -> T:
        """`search()`'s answer for `key`: the one given less than `every` seconds ago, or a
        new one. Two pages asking at once may both search (no lock held while it runs)."""
        now = self.clock()
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and now - kept[0] < self.every:
                self._answers.move_to_end(key)
                return kept[1]  # type: ignore[return-value]
        found = search()
        with self._lock:
            self._answers[key] = (now, found)
            self._answers.move_to_end(key)
            while len(self._answers) > self.kept:
                self._answers.popitem(last=False)
        return found
