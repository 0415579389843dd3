"""The job store's narrow interface: what the job service calls, so a PostgreSQL store can replace SQLite's.

Every write is durable when its call returns (the 202 is answered only after `add`). `SqliteJobStore`
(sqlite_store.py) implements it over `<data-dir>/jobs.sqlite`; only the job service writes through it.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from gateway_core.contracts.jobs import JobCounts, JobError, JobState, JobUsage
from gateway_core.jobs.model import Job


class JobStore(Protocol):
    async def open(self) -> list[Job]:
        """Open the store; answer the jobs to run, oldest first: the queued ones, and those running at a crash
        (turned back to queued, their attempts kept)."""
        ...

    async def close(self) -> None:
        """Finish pending writes and close; later calls raise."""
        ...

    async def add(self, job: Job) -> tuple[Job, bool]:
        """Store a new job and assign its `seq`: (the job, True). If the key already has a job with this ref_id:
        (that job, False), nothing written."""
        ...

    async def started(self, job_id: str, attempt: int, provider: str, at: float) -> Job | None:
        """An attempt began (state running, attempts = attempt). None: no such job."""
        ...

    async def requeue(self, job_id: str, error: JobError | None) -> Job | None:
        """An attempt failed and the job will run again: queued, attempts kept, `error` the last failure."""
        ...

    async def finished(
        self,
        job_id: str,
        state: JobState,
        at: float,
        usage: JobUsage | None,
        result: bytes | None,
        error: JobError | None,
        callback_due: bool,
    ) -> Job | None:
        """The job reached a final state (finals + 1); `callback_due` in the same commit, so a crash before its
        delivery is enqueued loses no callback."""
        ...

    async def callback_enqueued(self, job_id: str) -> None:
        """The callback service has the delivery durably: callback_due cleared."""
        ...

    async def retry(self, job_id: str, at: float) -> Job | None:
        """An operator's retry of a failed or cancelled job: queued again with a fresh attempt budget
        (base_attempts = attempts) and timeout (queued_at = at); result, usage and error cleared."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def find_ref(self, key_id: str, ref_id: str) -> Job | None: ...

    async def list(
        self, key_id: str | None, tag: str | None, state: JobState | None, limit: int, cursor: str | None
    ) -> tuple[builtins.list[Job], str | None]:
        """Newest first (by seq), at most `limit`; the second item is the cursor of the next page, None if last."""
        ...

    async def callbacks_due(self) -> builtins.list[Job]:
        """Final jobs whose delivery was not yet enqueued (a crash between the two): re-enqueued at start."""
        ...

    async def counts(self) -> JobCounts: ...
