"""Deliveries to a real receiver on 127.0.0.1: signed as Standard Webhooks, retried on a compressed schedule,
Retry-After honoured, 410 and the last step final, redirects never followed, timeouts failed, redelivery."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from gateway_core.callbacks.delivery import retry_after_s
from gateway_core.contracts.errors import GatewayError
from gateway_core.events import EventBus
from gateway_core.gateway.keys import new_webhook_secret
from tests.callbacks.conftest import KEY_ID, job_view, settled
from tests.testbed.waiting import wait_for_async

DELIVERY_ID = "msg_01JF0000000000000000000001_1"
# Timer and scheduling slack on a busy 2-core box: a gap may come late, never early.
LATE_S = 0.5


async def enqueue(service, delivery_id=DELIVERY_ID, url=None, type="job.succeeded", **view):
    await service.enqueue(delivery_id, KEY_ID, url, type, job_view(**view))


def gaps(receiver):
    times = [arrival.at for arrival in receiver.arrivals]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.asyncio
async def test_a_delivery_arrives_signed_with_the_exact_body_and_verifies(callbacks, receiver, secrets):
    async with callbacks() as service:
        await enqueue(service, url=receiver.url())

        view = await settled(service, DELIVERY_ID, "delivered")

    (arrival,) = receiver.arrivals
    payload = Webhook(secrets(KEY_ID)[0]).verify(arrival.body, arrival.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"] == job_view()
    assert payload["timestamp"].endswith("Z")
    assert list(payload) == ["type", "timestamp", "data"]
    assert arrival.headers["webhook-id"] == DELIVERY_ID
    assert abs(int(arrival.headers["webhook-timestamp"]) - time.time()) < 60
    assert arrival.headers["Content-Type"] == "application/json"
    assert view["attempts"] == 1
    assert view["last_status"] == 200
    assert view["delivered_at"] is not None
    assert view["next_attempt_at"] is None


@pytest.mark.asyncio
async def test_during_a_rotation_each_attempt_carries_both_signatures_and_verifies_with_either(
    callbacks, receiver, secrets
):
    old, new = secrets(KEY_ID)[0], new_webhook_secret()
    secrets.by_key[KEY_ID] = [new, old]

    async with callbacks() as service:
        await enqueue(service, url=receiver.url())
        await settled(service, DELIVERY_ID, "delivered")

    (arrival,) = receiver.arrivals
    assert len(arrival.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(arrival.body, arrival.headers)["data"]["id"] == job_view()["id"]
    assert Webhook(new).verify(arrival.body, arrival.headers)["data"]["id"] == job_view()["id"]


@pytest.mark.asyncio
async def test_a_receiver_that_fails_for_a_while_gets_the_delivery_after_retries_on_the_schedule(
    callbacks, receiver, secrets
):
    receiver.answer(503, times=3)
    schedule = (0.1, 0.2, 0.3, 0.4)

    async with callbacks(schedule_s=schedule) as service:
        await enqueue(service, url=receiver.url())
        view = await settled(service, DELIVERY_ID, "delivered")

    assert view["attempts"] == 4
    assert [arrival.headers["webhook-id"] for arrival in receiver.arrivals] == [DELIVERY_ID] * 4
    bodies = {arrival.body for arrival in receiver.arrivals}
    assert len(bodies) == 1  # every attempt sends the same bytes
    for gap, step in zip(gaps(receiver), schedule, strict=False):
        assert step * 0.9 - 0.01 <= gap <= step * 1.1 + LATE_S
    for arrival in receiver.arrivals:  # each attempt is signed afresh, and verifies
        Webhook(secrets(KEY_ID)[0]).verify(arrival.body, arrival.headers)


@pytest.mark.asyncio
async def test_retry_after_in_seconds_is_honoured_over_a_shorter_step(callbacks, receiver):
    receiver.answer(503, times=1, Retry_After="1")

    async with callbacks(schedule_s=(0.05, 5.0)) as service:
        await enqueue(service, url=receiver.url())
        await settled(service, DELIVERY_ID, "delivered")

    (gap,) = gaps(receiver)
    assert 1.0 - 0.01 <= gap <= 1.0 + LATE_S


@pytest.mark.asyncio
async def test_retry_after_is_capped_at_the_schedules_longest_wait(callbacks, receiver):
    receiver.answer(503, times=1, Retry_After="3600")

    async with callbacks(schedule_s=(0.05, 0.3)) as service:
        await enqueue(service, url=receiver.url())
        await settled(service, DELIVERY_ID, "delivered")

    (gap,) = gaps(receiver)
    assert 0.3 - 0.01 <= gap <= 0.3 + LATE_S


def test_retry_after_may_be_an_http_date():
    now = 1_790_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))

    assert retry_after_s(date, now) == pytest.approx(120)
    assert retry_after_s("7", now) == 7
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


@pytest.mark.asyncio
async def test_a_receiver_answering_410_gets_no_further_attempts(callbacks, receiver):
    receiver.answer(410)
    registry = CollectorRegistry()

    async with callbacks(registry=registry, schedule_s=(0.05, 0.05, 0.05)) as service:
        await enqueue(service, url=receiver.url())
        view = await settled(service, DELIVERY_ID, "dead")
        pending = registry.get_sample_value("corral_callback_pending")

    assert len(receiver.arrivals) == 1
    assert view["attempts"] == 1
    assert view["last_status"] == 410
    assert view["next_attempt_at"] is None
    assert pending == 0  # nothing left scheduled
    assert registry.get_sample_value("corral_callback_deliveries_total", {"outcome": "gone"}) == 1


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(callbacks, receiver):
    receiver.answer(307, Location=receiver.url("/elsewhere"))

    async with callbacks(schedule_s=(0.05,)) as service:
        await enqueue(service, url=receiver.url("/hook"))
        view = await settled(service, DELIVERY_ID, "dead")

    assert [arrival.path for arrival in receiver.arrivals] == ["/hook", "/hook"]
    assert view["last_status"] == 307
    assert "not followed" in view["last_error"]


@pytest.mark.asyncio
async def test_an_attempt_with_no_answer_in_time_counts_as_a_failure(callbacks, receiver):
    receiver.answer(200, times=1, delay_s=5.0)

    async with callbacks(timeout_s=0.3, schedule_s=(0.05,)) as service:
        await enqueue(service, url=receiver.url())
        view = await settled(service, DELIVERY_ID, "delivered")

    assert view["attempts"] == 2
    assert len(receiver.arrivals) == 2


@pytest.mark.asyncio
async def test_a_timed_out_attempt_says_so(callbacks, receiver):
    receiver.answer(200, delay_s=5.0)

    async with callbacks(timeout_s=0.3, schedule_s=(0.05,)) as service:
        await enqueue(service, url=receiver.url())
        view = await settled(service, DELIVERY_ID, "dead")

    assert view["last_status"] is None
    assert view["last_error"] == "no answer within 0.3 s"


@pytest.mark.asyncio
async def test_after_the_last_step_the_delivery_is_dead_lettered_and_can_be_redelivered(callbacks, receiver):
    receiver.answer(500, times=3)
    registry = CollectorRegistry()
    events = EventBus()
    stream = events.subscribe()

    async with callbacks(events=events, registry=registry, schedule_s=(0.05, 0.05)) as service:
        await enqueue(service, url=receiver.url())
        dead = await settled(service, DELIVERY_ID, "dead")
        dead_letters = registry.get_sample_value("corral_callback_dead_letters")

        again = await service.redeliver(DELIVERY_ID)
        delivered = await settled(service, DELIVERY_ID, "delivered")

        assert registry.get_sample_value("corral_callback_dead_letters") == 0

    assert dead["attempts"] == 3
    assert dead["last_status"] == 500
    assert dead_letters == 1
    assert again["state"] == "pending"
    assert delivered["attempts"] == 4
    assert registry.get_sample_value("corral_callback_deliveries_total", {"outcome": "dead_lettered"}) == 1
    assert registry.get_sample_value("corral_callback_deliveries_total", {"outcome": "delivered"}) == 1
    states = []
    while not stream.empty():
        event = stream.get_nowait()
        assert event is not None
        assert event.kind == "delivery"
        states.append((event.data["state"], event.data["attempts"]))
    assert states == [
        ("pending", 0),
        ("pending", 1),
        ("pending", 2),
        ("dead", 3),
        ("pending", 3),
        ("delivered", 4),
    ]


@pytest.mark.asyncio
async def test_a_delivered_delivery_can_be_redelivered_with_the_same_webhook_id(callbacks, receiver):
    async with callbacks() as service:
        await enqueue(service, url=receiver.url())
        await settled(service, DELIVERY_ID, "delivered")
        await service.redeliver(DELIVERY_ID)
        await wait_for_async(lambda: len(receiver.arrivals) == 2, "the redelivery")
        await settled(service, DELIVERY_ID, "delivered")

    assert next(arrival.body for arrival in receiver.arrivals) == receiver.arrivals[1].body
    assert {arrival.headers["webhook-id"] for arrival in receiver.arrivals} == {DELIVERY_ID}


@pytest.mark.asyncio
async def test_a_pending_delivery_cannot_be_redelivered_and_an_unknown_one_is_not_found(callbacks, receiver):
    receiver.answer(503)

    async with callbacks(schedule_s=(60.0,)) as service:
        await enqueue(service, url=receiver.url())
        await wait_for_async(lambda: len(receiver.arrivals) == 1, "the first attempt")
        with pytest.raises(GatewayError) as pending:
            await service.redeliver(DELIVERY_ID)
        with pytest.raises(GatewayError) as unknown:
            await service.redeliver("msg_nope_1")

    assert (pending.value.status, pending.value.code) == (409, "delivery_pending")
    assert (unknown.value.status, unknown.value.code) == (404, "delivery_not_found")


@pytest.mark.asyncio
async def test_the_same_delivery_id_enqueued_twice_is_delivered_once(callbacks, receiver):
    async with callbacks() as service:
        await enqueue(service, url=receiver.url())
        await enqueue(service, url=receiver.url())
        await settled(service, DELIVERY_ID, "delivered")
        page = await service.list()

    assert len(receiver.arrivals) == 1
    assert [view["id"] for view in page["data"]] == [DELIVERY_ID]


@pytest.mark.asyncio
async def test_a_key_without_a_webhook_secret_has_its_callbacks_never_sent_unsigned(callbacks, receiver, secrets):
    secrets.by_key.clear()

    async with callbacks(schedule_s=(0.05,)) as service:
        await enqueue(service, url=receiver.url())
        view = await settled(service, DELIVERY_ID, "dead")

    assert receiver.arrivals == []
    assert "rotate-webhook-secret" in view["last_error"]


@pytest.mark.asyncio
async def test_attempts_in_flight_are_bounded(callbacks, receiver):
    receiver.answer(200, delay_s=0.3)

    async with callbacks(concurrency=2) as service:
        for n in range(6):
            await enqueue(service, delivery_id=f"msg_{n}_1", url=receiver.url(), job_id=f"job_{n}")
        for n in range(6):
            await settled(service, f"msg_{n}_1", "delivered")

    assert len(receiver.arrivals) == 6
    assert receiver.most_in_flight == 2


@pytest.mark.asyncio
async def test_the_list_pages_newest_first_and_filters_by_state(callbacks, receiver):
    receiver.answer(410, times=1)

    async with callbacks() as service:
        for n in range(5):
            await enqueue(service, delivery_id=f"msg_{n}_1", url=receiver.url(), job_id=f"job_{n}")
        for n in range(5):
            await wait_for_async(lambda n=n: _not_pending(service, f"msg_{n}_1"), f"delivery {n} to settle")
        first = await service.list(limit=2)
        second = await service.list(limit=2, cursor=first["next_cursor"])
        third = await service.list(limit=2, cursor=second["next_cursor"])
        dead = await service.list(state="dead")
        with pytest.raises(GatewayError) as bad_state:
            await service.list(state="lost")

    assert [view["id"] for view in first["data"] + second["data"] + third["data"]] == [
        f"msg_{n}_1" for n in (4, 3, 2, 1, 0)
    ]
    assert third["next_cursor"] is None
    assert [view["id"] for view in dead["data"]] == ["msg_0_1"]
    assert bad_state.value.param == "state"


async def _not_pending(service, delivery_id):
    return (await service.get(delivery_id))["state"] != "pending"


@pytest.mark.asyncio
async def test_the_body_is_the_job_view_with_its_result_encoded_once(callbacks, receiver):
    async with callbacks() as service:
        await enqueue(service, url=receiver.url(), type="job.failed", state="failed", result=None)
        await settled(service, DELIVERY_ID, "delivered")

    body = orjson.loads(receiver.arrivals[0].body)
    assert body["type"] == "job.failed"
    assert body["data"]["state"] == "failed"
