"""The queue half of CorralClient: every key's jobs, their counts, cancel and retry; callback deliveries and
redelivery; rotating a key's webhook secret."""

from __future__ import annotations

from urllib.parse import quote

from gateway_core.client_transport import AdminTransport
from gateway_core.contracts.jobs import (
    DeliveryPage,
    DeliveryState,
    DeliveryView,
    JobCounts,
    JobPage,
    JobState,
    JobView,
    WebhookSecretView,
)


def _quoted(segment: str) -> str:
    return quote(segment, safe="")


class JobCalls:
    """The admin API's /jobs and /callbacks routes, on the transport CorralClient hands it (CorralClient is one)."""

    def __init__(self, transport: AdminTransport) -> None:
        self._transport = transport

    # -- jobs -----------------------------------------------------------------------------------------

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        key: str | None = None,
        tag: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """Every key's jobs, newest first; pass the page's `next_cursor` back for the next one. `key` is a key's id
        or name."""
        filters = {"state": state, "key": key, "tag": tag, "limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in filters.items() if value is not None}
        return await self._transport.call(JobPage, "GET", "/jobs", params=params)

    async def job(self, job_id: str) -> JobView:
        """One job with its result or error (CorralError with status 404 when there is none)."""
        return await self._transport.call(JobView, "GET", f"/jobs/{_quoted(job_id)}")

    async def job_counts(self) -> JobCounts:
        """How many jobs are in each state now."""
        return await self._transport.call(JobCounts, "GET", "/jobs/counts")

    async def cancel_job(self, job_id: str) -> JobView:
        """Cancel a queued job, or a running one (its upstream request is cancelled, which frees its slot)."""
        return await self._transport.call(JobView, "POST", f"/jobs/{_quoted(job_id)}/cancel")

    async def retry_job(self, job_id: str) -> JobView:
        """Queue a failed or cancelled job again."""
        return await self._transport.call(JobView, "POST", f"/jobs/{_quoted(job_id)}/retry")

    # -- callbacks ------------------------------------------------------------------------------------

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 100, cursor: str | None = None
    ) -> DeliveryPage:
        """Callback deliveries, newest first: pending, delivered or dead (dead-lettered)."""
        filters = {"state": state, "limit": limit, "cursor": cursor}
        params = {name: str(value) for name, value in filters.items() if value is not None}
        return await self._transport.call(DeliveryPage, "GET", "/callbacks", params=params)

    async def redeliver(self, delivery_id: str) -> DeliveryView:
        """Make a dead or delivered delivery pending again, on a fresh schedule."""
        return await self._transport.call(DeliveryView, "POST", f"/callbacks/{_quoted(delivery_id)}/redeliver")

    async def rotate_webhook_secret(self, id_or_name: str) -> WebhookSecretView:
        """A new webhook secret for the key, shown this once; the old one keeps signing until
        `previous_valid_until`."""
        return await self._transport.call(WebhookSecretView, "POST", f"/keys/{_quoted(id_or_name)}/webhook-secret")
