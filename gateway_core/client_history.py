"""The archive half of CorralClient: request history, one request, exports, pruning and usage over time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import httpx

from gateway_core.client_transport import DEFAULT_TIMEOUT_S, AdminTransport
from gateway_core.contracts.history_views import (
    ArchiveStatusView,
    HistoryDetailView,
    HistoryPage,
    PruneAnswer,
    UsageBucket,
    UsageDimension,
    UsageView,
)

# A search or a usage query over many months may read several files.
QUERY_TIMEOUT_S = 120.0


class HistoryCalls:
    """The archive's admin routes, on the transport CorralClient hands it (CorralClient is a HistoryCalls).

    Times (`since`, `until`) are what the admin API reads: Unix seconds, an ISO 8601 time or date, or a
    duration before now ("7d"), as gateway_core/contracts/instants.py parses them.
    """

    def __init__(self, transport: AdminTransport) -> None:
        self._transport = transport

    async def history(
        self,
        *,
        key: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        status: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        text: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> HistoryPage:
        """Archived requests, newest first; pass the page's `next_cursor` back for the next one."""
        filters = {
            "key": key,
            "model": model,
            "provider": provider,
            "status": status,
            "since": since,
            "until": until,
            "text": text,
            "limit": limit,
            "cursor": cursor,
        }
        params = {name: str(value) for name, value in filters.items() if value is not None}
        return await self._transport.call(HistoryPage, "GET", "/history", params=params, read_timeout_s=QUERY_TIMEOUT_S)

    async def history_entry(self, request_id: str) -> HistoryDetailView:
        """One archived request with its bodies (CorralError with status 404 when there is none)."""
        return await self._transport.call(HistoryDetailView, "GET", f"/history/{quote(request_id, safe='')}")

    async def export_history(self, month: str, fmt: str = "jsonl") -> AsyncIterator[bytes]:
        """One month's rows as JSON lines or CSV, in pieces as the daemon streams them."""
        query = urlencode({"month": month, "format": fmt})
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=QUERY_TIMEOUT_S)
        async with self._transport.stream("GET", f"/history/export?{query}", timeout=timeout) as response:
            async for piece in response.aiter_bytes():
                yield piece

    async def prune_history(self, before: str) -> PruneAnswer:
        """Remove every month before `before` ("YYYY-MM"), as the daemon's --pruned setting says."""
        return await self._transport.call(PruneAnswer, "POST", "/history/prune", {"before": before})

    async def usage(
        self,
        *,
        by: UsageDimension = "key",
        since: str | float = "7d",
        until: str | float | None = None,
        bucket: UsageBucket = "day",
    ) -> UsageView:
        """Requests, tokens, errors, latency, GPU time and energy per group over time, from the rollups."""
        params = {"by": by, "since": str(since), "bucket": bucket}
        if until is not None:
            params["until"] = str(until)
        return await self._transport.call(UsageView, "GET", "/usage", params=params, read_timeout_s=QUERY_TIMEOUT_S)

    async def archive_status(self) -> ArchiveStatusView:
        return await self._transport.call(ArchiveStatusView, "GET", "/archive")
