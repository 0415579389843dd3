"""The Jobs panel's table and the Callbacks screen's: newest first, rows keyed by job or delivery id.

Formatting only (console/job_format.py writes the values); the screens decide which rows to show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from textual.binding import Binding, BindingType

from console.format import dash
from console.job_format import delivery_outcome, delivery_when, job_age
from console.widgets.live_table import LiveTable, Row
from gateway_core.contracts.jobs import DeliveryView, JobView

JOB_LEVELS: dict[str, str] = {
    "queued": "warn",
    "running": "ok",
    "succeeded": "muted",
    "failed": "bad",
    "cancelled": "muted",
}
DELIVERY_LEVELS: dict[str, str] = {"pending": "warn", "delivered": "ok", "dead": "bad"}


class JobsTable(LiveTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "x,delete",
            "screen.item('cancel')",
            "Cancel job",
            id="job.cancel",
            tooltip="Cancel the selected job (a running one's upstream request too)",
        ),
        Binding("r", "screen.item('retry')", "Retry job", id="job.retry", tooltip="Queue a failed job again"),
        Binding("enter", "screen.item('open')", "Open", id="job.open", tooltip="The job's status and its result"),
    ]
    COLUMNS = (
        ("key", "key", 12),
        ("model", "model", 14),
        ("state", "state", 9),
        ("age", "age", 6),
        ("attempts", "tries", 5),
        ("provider", "provider", 10),
        ("tag", "tag", 8),
        ("id", "id", 30),  # "job_" and 26 characters: all of it, for `corral jobs show`
    )
    IN_GIVEN_ORDER = True  # newest first, as the screen lists them

    def show(self, jobs: Iterable[JobView], key_names: Mapping[str, str]) -> None:
        now = self.now()
        self.sync((job["id"], self._row(job, key_names, now)) for job in jobs)

    def _row(self, job: JobView, key_names: Mapping[str, str], now: float) -> Row:
        state = job["state"]
        return (
            key_names.get(job["key_id"], job["key_id"]),
            job["model"],
            self.level(state, JOB_LEVELS.get(state, "muted")),
            job_age(job, now),
            str(job["attempts"]),
            dash(job["provider"]),
            dash(job["tag"]),
            job["id"],
        )


class DeliveriesTable(LiveTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r",
            "redeliver",
            "Redeliver",
            id="callback.redeliver",
            tooltip="Send the selected delivery again, on a fresh retry schedule",
        ),
    ]
    COLUMNS = (
        ("state", "state", 9),
        ("type", "type", 13),
        ("attempts", "tries", 5),
        ("last", "last answer", 16),
        ("when", "when", 18),
        ("id", "id", 32),  # the webhook-id: "msg_", the job id's 26 characters, "_" and the job's final count
        ("job", "job", 30),
        ("url", "url", 40),
    )
    IN_GIVEN_ORDER = True

    async def action_redeliver(self) -> None:
        # The key is the table's, so that its check_action (read-only mode) decides whether it is offered.
        await self.run_action("screen.redeliver")

    def show(self, deliveries: Iterable[DeliveryView]) -> None:
        now = self.now()
        self.sync((delivery["id"], self._row(delivery, now)) for delivery in deliveries)

    def _row(self, delivery: DeliveryView, now: float) -> Row:
        state = delivery["state"]
        return (
            self.level(state, DELIVERY_LEVELS.get(state, "muted")),
            delivery["type"],
            str(delivery["attempts"]),
            delivery_outcome(delivery),
            delivery_when(delivery, now),
            delivery["id"],
            delivery["job_id"],
            delivery["url"],
        )
