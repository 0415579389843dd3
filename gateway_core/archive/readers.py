"""Read-only connections to the month files, kept for reuse: each one used by one worker thread at a time.

Reads never use the writer's connections, so a search waits neither for a batch nor for the event loop.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from gateway_core.archive.months import month_path
from gateway_core.archive.schema import open_for_reading

IDLE_PER_MONTH = 4


class ReaderPool:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._idle: dict[str, list[sqlite3.Connection]] = {}
        self._generation: dict[str, int] = {}  # bumped when a month is pruned: its connections are not reused
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reading(self, month: str) -> Iterator[sqlite3.Connection | None]:
        """A connection to `month`'s file; None when there is no such file (or it holds no schema yet)."""
        with self._lock:
            idle = self._idle.get(month)
            connection = idle.pop() if idle else None
            generation = self._generation.get(month, 0)
        if connection is None:
            path = month_path(self._directory, month)
            connection = open_for_reading(path) if path.exists() else None
        try:
            yield connection
        finally:
            if connection is not None:
                self._release(month, generation, connection)

    def _release(self, month: str, generation: int, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:  # a read left open by an abandoned iteration
            connection.rollback()
        with self._lock:
            idle = self._idle.setdefault(month, [])
            if self._generation.get(month, 0) == generation and len(idle) < IDLE_PER_MONTH:
                idle.append(connection)
                return
        connection.close()

    def forget(self, months: list[str]) -> None:
        """Close the idle connections to these months, and never reuse the busy ones (the files are going)."""
        with self._lock:
            closing = [c for month in months for c in self._idle.pop(month, [])]
            for month in months:
                self._generation[month] = self._generation.get(month, 0) + 1
        for connection in closing:
            connection.close()

    def close(self) -> None:
        with self._lock:
            closing = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in closing:
            connection.close()
