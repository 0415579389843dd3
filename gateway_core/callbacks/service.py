"""CallbackService: the ReplyTo deliveries of finished jobs, durable, signed, retried on a schedule.

A delivery is enqueued (on disk before `enqueue` returns) when a job reaches a final state, and its first
attempt is due at once. The delivery loop keeps the pending deliveries in a heap by due time and one asyncio timer
armed for the earliest, so nothing polls: when the timer fires, every due delivery starts (up to
`concurrency` at once), and each attempt's end re-arms it. A 2xx is delivered; a 410 is dead at once (the
receiver said to stop); anything else (another status, a redirect, a timeout, no connection, a destination the
SSRF guard refuses) waits the schedule's next step, stretched by jitter and at least the receiver's Retry-After
(capped at the schedule's longest wait), and after the last step the delivery is dead-lettered. `redeliver` gives
a dead or delivered one a fresh schedule. Every change is saved before it is published as a "delivery" event, so
a kill -9 loses none: `start` resumes whatever was pending (an attempt cut by the kill is sent again: receivers
de-duplicate on webhook-id).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import CallbackType, DeliveryPage, DeliveryState, DeliveryView, JobView
from gateway_core.events import EventBus

from .delivery import Outcome, Sender
from .destination import AddressPolicy, GetAddrInfo, RefusedDestination, parse_destination
from .metrics import CallbackMetrics
from .settings import CallbackSettings
from .signing import UnsignableError, signed_headers
from .store import Delivery, DeliveryStore

log = logging.getLogger("corral.callbacks")

DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "delivered", "dead")
MAX_PAGE = 200
CLOSE_GRACE_S = 2.0  # at shutdown, how long attempts in flight may take to end before they are cut
SUBMIT_RESOLVE_S = 5.0  # the longest a submit waits for its reply_to's name to resolve
Secrets = Callable[[str], list[str]]  # key id -> the secrets to sign with now (current first)


class CallbackService:
    def __init__(
        self,
        path: Path,
        settings: CallbackSettings,
        *,
        secrets: Secrets,
        events: EventBus,
        metrics_registry: CollectorRegistry,
        clock: Clock = SYSTEM_CLOCK,
        getaddrinfo: GetAddrInfo | None = None,  # the loop's own by default; tests give names their own answers
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._store = DeliveryStore(path)
        self._secrets = secrets
        self._events = events
        self._metrics = CallbackMetrics(metrics_registry)
        self._clock = clock
        self._getaddrinfo = getaddrinfo
        self._random = rng or random.Random()
        self._policy = AddressPolicy(settings.allow)
        self._sender = Sender(
            self._policy, timeout_s=settings.timeout_s, concurrency=settings.concurrency, getaddrinfo=getaddrinfo
        )
        # Waiting or in flight, by id; one in flight has next_attempt_at None until its attempt settles.
        self._pending: dict[str, Delivery] = {}
        # (next_attempt_at, seq, id): an entry whose time is not its delivery's (any more) is stale and skipped.
        self._due: list[tuple[float, int, str]] = []
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the deliveries file and resume every pending delivery, each at its own due time."""
        for delivery in await self._store.open():
            self._track(delivery)
        self._metrics.dead_letters.set((await self._store.counts())["dead"])
        self._sender.start()
        self._started = True
        self._arm()
        if self._pending:
            log.info("resuming %d pending callback deliveries", len(self._pending))

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop the loop; attempts in flight get `grace_s` to end, then are cut and stay pending on disk, to be
        sent again at the next start (the receiver may then see that webhook-id twice)."""
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sender.close()
        await self._store.close()

    # -- what the job service calls -------------------------------------------------------------------

    async def check_reply_to(self, url: str) -> None:
        """Refuse, at submit, a reply_to that could never be delivered: GatewayError 400 saying why."""
        try:
            destination = parse_destination(url)
            self._policy.check_literal(destination)
            if destination.literal is None:
                getaddrinfo = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
                async with asyncio.timeout(SUBMIT_RESOLVE_S):
                    await self._policy.checked(destination.host, destination.port, getaddrinfo)
        except TimeoutError:
            raise GatewayError(
                400,
                f"reply_to refused: its host did not resolve within {SUBMIT_RESOLVE_S:g} s; check the name",
                param="reply_to",
                code="invalid_reply_to",
            ) from None
        except RefusedDestination as refused:
            raise GatewayError(400, f"reply_to refused: {refused}", param="reply_to", code="invalid_reply_to") from None

    async def enqueue(self, delivery_id: str, key_id: str, url: str, type: CallbackType, data: JobView) -> None:
        """A delivery of `data` to `url`, due at once; durable when it returns. The same id again changes nothing."""
        now = self._clock.time()
        body = orjson.dumps({"type": type, "timestamp": _iso(now), "data": data})  # the exact bytes every attempt sends
        delivery = Delivery(
            id=delivery_id,
            job_id=data["id"],
            key_id=key_id,
            url=url,
            type=type,
            state="pending",
            attempts=0,
            step=0,
            created_at=now,
            next_attempt_at=now,
        )
        stored, created = await self._store.add(delivery, body)
        if created:
            self._track(stored)
            self._events.publish("delivery", stored.view())
            self._arm()

    # -- what the admin API calls ---------------------------------------------------------------------

    async def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> DeliveryPage:
        """Newest first; `cursor` is the previous page's next_cursor."""
        if state is not None and state not in DELIVERY_STATES:
            raise GatewayError(
                400, f"unknown delivery state '{state}': use one of {', '.join(DELIVERY_STATES)}", param="state"
            )
        if not 1 <= limit <= MAX_PAGE:
            raise GatewayError(400, f"limit must be between 1 and {MAX_PAGE}", param="limit")
        before: int | None = None
        if cursor is not None:
            if not cursor.isdigit():
                raise GatewayError(
                    400,
                    "invalid cursor: pass the next_cursor of the previous page",
                    param="cursor",
                    code="invalid_cursor",
                )
            before = int(cursor)
        rows, more = await self._store.page(_state(state), limit, before)
        return {
            "object": "list",
            "data": [row.view() for row in rows],
            "next_cursor": str(rows[-1].seq) if more and rows else None,
        }

    async def get(self, delivery_id: str) -> DeliveryView:
        return (await self._require(delivery_id)).view()

    async def redeliver(self, delivery_id: str) -> DeliveryView:
        """A dead or delivered delivery pending again, due at once, with the whole schedule ahead of it."""
        delivery = await self._require(delivery_id)
        if delivery.state == "pending":
            raise GatewayError(
                409,
                f"delivery '{delivery_id}' is still pending (attempt {delivery.attempts + 1} is due); "
                "redeliver a dead or delivered one",
                code="delivery_pending",
            )
        now = self._clock.time()
        again = replace(delivery, state="pending", step=0, next_attempt_at=now, delivered_at=None)
        await self._store.save(again)
        if delivery.state == "dead":
            self._metrics.dead_letters.dec()
        self._track(again)
        self._events.publish("delivery", again.view())
        self._arm()
        return again.view()

    async def _require(self, delivery_id: str) -> Delivery:
        delivery = await self._store.get(delivery_id)
        if delivery is None:
            raise GatewayError(
                404,
                f"no callback delivery '{delivery_id}': list them with `corral callbacks list`",
                code="delivery_not_found",
            )
        return delivery

    # -- the delivery loop ----------------------------------------------------------------------------

    def _track(self, delivery: Delivery) -> None:
        due = delivery.next_attempt_at if delivery.next_attempt_at is not None else self._clock.time()
        self._pending[delivery.id] = replace(delivery, next_attempt_at=due)
        heapq.heappush(self._due, (due, delivery.seq, delivery.id))
        self._metrics.pending.set(len(self._pending))

    def _arm(self) -> None:
        """One timer, for the earliest due delivery, unless the bound on attempts in flight is reached."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._started:
            return
        self._drop_stale()
        if not self._due or len(self._in_flight) >= self.settings.concurrency:
            return  # an attempt that ends re-arms
        delay = max(0.0, self._due[0][0] - self._clock.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _drop_stale(self) -> None:
        while self._due:
            at, _, delivery_id = self._due[0]
            delivery = self._pending.get(delivery_id)
            if delivery is not None and delivery.next_attempt_at == at:
                return
            heapq.heappop(self._due)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.time()
        while len(self._in_flight) < self.settings.concurrency:
            self._drop_stale()
            if not self._due or self._due[0][0] > now:
                break
            _, _, delivery_id = heapq.heappop(self._due)
            delivery = self._pending[delivery_id]
            self._pending[delivery_id] = replace(delivery, next_attempt_at=None)  # in flight: no heap entry is its
            task = asyncio.create_task(self._attempt(delivery), name=f"callback-{delivery_id}")
            self._in_flight[delivery_id] = task
            task.add_done_callback(partial(self._attempt_ended, delivery_id))
        self._arm()

    def _attempt_ended(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._arm()

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            body = await self._store.body(delivery.id)
            try:
                headers = signed_headers(delivery.id, body, self._secrets(delivery.key_id), self._clock.time())
            except UnsignableError:
                outcome, result = self._unsigned(delivery), "unsigned"
            else:
                outcome = await self._sender.send(delivery.url, body, headers, self._clock.time())
                result = _result(outcome)
            after = self._after(delivery, outcome)
            await self._store.save(after)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a failing disk: the delivery stays pending and is tried again after the schedule's next wait.
            log.exception("callback delivery %s: the attempt failed inside Corral", delivery.id)
            wait = self.settings.schedule_s[min(delivery.step, len(self.settings.schedule_s) - 1)]
            self._track(replace(delivery, next_attempt_at=self._clock.time() + wait))
            return
        self._metrics.attempts.labels(result).inc()
        self._settle(delivery, after)

    def _unsigned(self, delivery: Delivery) -> Outcome:
        return Outcome(
            "failed",
            error=f"key {delivery.key_id} has no webhook secret to sign with: give it one with "
            f"`corral keys rotate-webhook-secret {delivery.key_id}` (a deleted key never will)",
        )

    def _after(self, delivery: Delivery, outcome: Outcome) -> Delivery:
        """The delivery once this attempt's outcome is known."""
        now = self._clock.time()
        tried = replace(delivery, attempts=delivery.attempts + 1, last_status=outcome.status, last_error=outcome.error)
        if outcome.kind == "delivered":
            return replace(tried, state="delivered", delivered_at=now, next_attempt_at=None)
        schedule = self.settings.schedule_s
        if outcome.kind == "gone" or delivery.step >= len(schedule):
            return replace(tried, state="dead", next_attempt_at=None)
        jitter = self.settings.jitter
        wait = schedule[delivery.step] * self._random.uniform(1 - jitter, 1 + jitter)
        if outcome.retry_after_s is not None:
            wait = max(wait, min(outcome.retry_after_s, max(schedule)))
        return replace(tried, step=delivery.step + 1, next_attempt_at=now + wait)

    def _settle(self, before: Delivery, after: Delivery) -> None:
        if after.state == "pending":
            self._track(after)
        else:
            self._pending.pop(after.id, None)
            self._metrics.pending.set(len(self._pending))
            if after.state == "delivered":
                self._metrics.deliveries.labels("delivered").inc()
            else:
                outcome = "gone" if after.last_status == 410 else "dead_lettered"
                self._metrics.deliveries.labels(outcome).inc()
                self._metrics.dead_letters.inc()
                log.warning(
                    "callback delivery %s (job %s) is dead after %d attempts: %s",
                    after.id,
                    after.job_id,
                    after.attempts,
                    after.last_error,
                )
        self._events.publish("delivery", after.view())


def _result(outcome: Outcome) -> str:
    if outcome.kind != "failed":
        return outcome.kind
    if outcome.refused:
        return "refused"
    return "http_error" if outcome.status is not None else "no_answer"


def _state(state: str | None) -> DeliveryState | None:
    return next((known for known in DELIVERY_STATES if known == state), None)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
