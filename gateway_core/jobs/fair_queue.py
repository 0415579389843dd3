"""The queued jobs, fair across keys: round-robin among the keys with queued work, by priority then order within one.

Each key holds one heap per target (what a job can run on: its model, a pinned provider, providers to avoid), so
a key whose head job waits for a busy model does not hold back its jobs for another. Picking walks the keys in
rotation and asks the caller which (key, target) pairs can run now; the key served goes to the back. Every
operation is O(log n) in the jobs queued (plus the keys and targets skipped as not ready); removal is lazy.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
Target = Hashable


class _Entry(Generic[T]):
    __slots__ = ("alive", "item", "item_id", "rank", "target")

    def __init__(self, rank: tuple[int, int], item_id: str, target: Target, item: T) -> None:
        self.rank = rank  # (-priority, seq): the smallest runs first
        self.item_id = item_id
        self.target = target
        self.item = item
        self.alive = True

    def __lt__(self, other: _Entry[T]) -> bool:
        return self.rank < other.rank


class _KeyQueue(Generic[T]):
    __slots__ = ("count", "heaps")

    def __init__(self) -> None:
        self.heaps: dict[Target, list[_Entry[T]]] = {}
        self.count = 0

    def head(self, target: Target) -> _Entry[T] | None:
        heap = self.heaps[target]
        while heap and not heap[0].alive:
            heapq.heappop(heap)
        return heap[0] if heap else None


class FairQueue(Generic[T]):
    """Items (jobs) by key and target; `pop_next` picks the next to run among the pairs the caller says are ready."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyQueue[T]] = {}
        self._rotation: OrderedDict[str, None] = OrderedDict()  # keys with queued items, the next to serve first
        self._entries: dict[str, tuple[str, _Entry[T]]] = {}  # item id -> (key, entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def depth(self, key: str) -> int:
        queue = self._keys.get(key)
        return queue.count if queue is not None else 0

    def push(self, key: str, target: Target, priority: int, seq: int, item_id: str, item: T) -> None:
        """Queue an item; an id already queued is replaced."""
        self.remove(item_id)
        queue = self._keys.get(key)
        if queue is None:
            queue = self._keys[key] = _KeyQueue()
        entry = _Entry((-priority, seq), item_id, target, item)
        heapq.heappush(queue.heaps.setdefault(target, []), entry)
        queue.count += 1
        self._entries[item_id] = (key, entry)
        if key not in self._rotation:
            self._rotation[key] = None

    def remove(self, item_id: str) -> T | None:
        """Take an item out of the queue (it stays in its heap, dead, until it reaches the top)."""
        found = self._entries.pop(item_id, None)
        if found is None:
            return None
        key, entry = found
        entry.alive = False
        self._forget(key, entry.target)
        return entry.item

    def pop_next(self, ready: Callable[[str, Target], bool]) -> tuple[str, Target, T] | None:
        """The next item to run: the first key in rotation with a ready target, its best such item (highest
        priority, then earliest seq). `ready(key, target)` is asked at most once per pair."""
        for key in self._rotation:
            queue = self._keys[key]
            best: _Entry[T] | None = None
            for target in queue.heaps:
                head = queue.head(target)
                if head is not None and (best is None or head < best) and ready(key, target):
                    best = head
            if best is not None:
                heapq.heappop(queue.heaps[best.target])
                del self._entries[best.item_id]
                self._forget(key, best.target)
                if key in self._rotation:
                    self._rotation.move_to_end(key)
                return key, best.target, best.item
        return None

    def items(self) -> Iterator[T]:
        """Every queued item, in no particular order."""
        return (entry.item for _, entry in self._entries.values())

    def _forget(self, key: str, target: Target) -> None:
        queue = self._keys[key]
        queue.count -= 1
        heap = queue.heaps[target]
        while heap and not heap[0].alive:
            heapq.heappop(heap)
        if not heap:
            del queue.heaps[target]
        if queue.count == 0:
            del self._keys[key]
            self._rotation.pop(key, None)
