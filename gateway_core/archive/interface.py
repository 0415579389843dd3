"""The archive's narrow interface: what the pipeline, the admin API and the daemon's wiring call.

`SqliteArchive` (sqlite_archive.py) implements it over monthly SQLite files; a PostgreSQL implementation
(monthly partitions) can implement the same calls. The pipeline sees only `ArchiveSink.record`
(contracts/archive.py); the admin API (api/history.py) sees the reading half below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway_core.contracts.archive import ArchiveSink
from gateway_core.contracts.history_views import (
    ArchiveStatusView,
    HistoryDetailView,
    HistoryPage,
    PruneAnswer,
    UsageBucket,
    UsageDimension,
    UsageView,
)

ExportFormat = Literal["jsonl", "csv"]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """GET /history's filters; every one optional. Times are Unix seconds."""

    key: str | None = None  # a key id or name
    model: str | None = None
    provider: str | None = None
    status: str | None = None  # "200", "4xx", "5xx", "ok" (2xx) or "error" (everything else)
    since: float | None = None
    until: float | None = None
    text: str | None = None  # full-text search over the captured bodies (FTS5 query syntax)
    limit: int = 100
    cursor: str | None = None  # from the previous page's next_cursor


@dataclass(frozen=True, slots=True)
class UsageQuery:
    by: UsageDimension = "key"
    since: float = 0.0
    until: float = 0.0
    bucket: UsageBucket = "day"


class Archive(ArchiveSink, Protocol):
    """The request archive: a sink on the request path, a searchable history for the admin API."""

    async def start(self) -> None:
        """Open the store and start the writer (and retention)."""
        ...

    async def close(self) -> None:
        """Write everything still queued, then stop: what SIGTERM does."""
        ...

    def status(self) -> ArchiveStatusView: ...

    async def search(self, query: HistoryQuery) -> HistoryPage: ...

    async def get(self, request_id: str) -> HistoryDetailView | None: ...

    async def usage(self, query: UsageQuery) -> UsageView: ...

    def export(self, month: str, fmt: ExportFormat) -> AsyncIterator[bytes]:
        """One month's rows (bodies included), streamed in pieces: never the whole month in memory."""
        ...

    async def prune(self, before: str) -> PruneAnswer:
        """Remove every month file before `before` ("YYYY-MM"), deleted or moved to archive/old/."""
        ...
