"""Full garbage collections while the operator is not typing.

CPython starts a full (generation 2) collection on its own schedule, and it stops the console for as long as
it takes to scan every object the console holds. The console benchmark measured 30-55 ms every few seconds on
the dashboard at the issue's scale, and 90-280 ms every second while a long chat answer streams: the keys that
landed in one waited for it (bench/README.md, "Console cost"). Young generations stay automatic; they take under
4 ms. Full collections run once the keyboard and mouse have been quiet for QUIET_S, and at the latest MAX_DEFER_S
after the previous one, so memory stays bounded through any length of typing.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET_S = 1.0  # no key or mouse event for this long: the operator is reading, not typing
FULL_EVERY_S = 10.0  # a full collection at most this often
MAX_DEFER_S = 60.0  # and at least this often
NEVER = 1_000_000_000  # gen2 threshold: CPython's own full collections never come due


class QuietCollector:
    """Moves CPython's full collections to quiet moments; `tick()` is called about once a second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, collect: Callable[[], object] = gc.collect) -> None:
        self.clock = clock
        self.collect = collect
        self.last_input = self.last_full = clock()
        self.full_collections = 0
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Take over full collections. What exists now (modules, the app) is frozen out of every later scan."""
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            gc.collect()
            gc.freeze()
            young, middle, _ = self._thresholds
            gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        """Hand full collections back to CPython (and the frozen objects with them)."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            gc.unfreeze()
            self._thresholds = None

    def input_seen(self) -> None:
        self.last_input = self.clock()

    def tick(self) -> bool:
        """Run a full collection if one is due and the operator is quiet (or it is overdue); True if it ran."""
        now = self.clock()
        since_full = now - self.last_full
        quiet = now - self.last_input >= QUIET_S
        if not (since_full >= MAX_DEFER_S or (since_full >= FULL_EVERY_S and quiet)):
            return False
        self.collect()
        self.last_full = self.clock()
        self.full_collections += 1
        return True
