"""The records waiting for the writer: bounded in rows and in body bytes, shared by exactly two threads.

The event loop offers (appends, and counts what it accepted); the writer takes and, once a row is on disk (or
given up), settles it. Each counter has one writing thread, and a deque's append and popleft are atomic, so no
lock is taken on the request path. A row the writer has taken but not yet written still counts against the
bounds: while the writer is failing, what it holds and what waits are bounded together.
"""

from __future__ import annotations

from collections import deque

from gateway_core.contracts.archive import RequestRecord


class RecordQueue:
    __slots__ = ("_done", "_done_bytes", "_items", "accepted", "accepted_bytes", "max_bytes", "max_rows")

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._items: deque[tuple[RequestRecord, int]] = deque()
        self.accepted = 0  # written by the loop only
        self.accepted_bytes = 0
        self._done = 0  # written by the writer only
        self._done_bytes = 0

    def offer(self, record: RequestRecord, size: int) -> bool:
        """Queue `record` (whose bodies take `size` bytes), or refuse it when either bound would be passed."""
        if (
            self.accepted - self._done >= self.max_rows
            or self.accepted_bytes - self._done_bytes + size > self.max_bytes
        ):
            return False
        self._items.append((record, size))
        self.accepted += 1
        self.accepted_bytes += size
        return True

    def waiting(self) -> int:
        """Records offered and not yet taken by the writer."""
        return len(self._items)

    def take(self) -> list[tuple[RequestRecord, int]]:
        """Everything queued now (the writer's side)."""
        taken = []
        items = self._items
        while items:
            taken.append(items.popleft())
        return taken

    def settle(self, rows: int, size: int) -> None:
        """Rows taken earlier are written (or given up): they no longer count against the bounds."""
        self._done += rows
        self._done_bytes += size

    @property
    def depth(self) -> int:
        """Rows accepted and not yet settled: waiting, or held by the writer."""
        return self.accepted - self._done

    @property
    def done(self) -> int:
        return self._done

    @property
    def done_bytes(self) -> int:
        return self._done_bytes
