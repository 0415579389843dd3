"""Deliveries survive the service (a new one on the same file resumes them); reply_to refused at submit when it
could never be delivered; the guard at delivery time connects only to checked addresses; no secret on disk but
in config.json, none in the log; the admin routes."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.api.callbacks_admin import CallbacksApi
from gateway_core.api.responses import json_app
from gateway_core.contracts.admin_requests import KeySpec
from gateway_core.contracts.errors import GatewayError
from gateway_core.events import EventBus
from gateway_core.gateway.key_store import KeyStore
from gateway_core.gateway.limits import RateLimiter
from gateway_core.store.config_store import ConfigStore
from tests.callbacks.conftest import KEY_ID, job_view, settled
from tests.fakes.clock import FakeClock
from tests.testbed.waiting import wait_for_async

DELIVERY_ID = "msg_01JF0000000000000000000001_1"


def resolving(answers: dict[str, list[str]]) -> Any:
    """A getaddrinfo answering from a table that the test may change between lookups (DNS rebinding)."""

    async def getaddrinfo(host: str, port: int, *, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    return getaddrinfo


async def enqueue(service: Any, url: str, delivery_id: str = DELIVERY_ID, key_id: str = KEY_ID) -> None:
    await service.enqueue(delivery_id, key_id, url, "job.succeeded", job_view())


# -- durability -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_delivery_pending_between_retries_resumes_in_a_new_service_on_the_same_file(callbacks, receiver):
    receiver.answer(503, times=1)

    async with callbacks(schedule_s=(0.5,)) as first:
        await enqueue(first, receiver.url())
        await wait_for_async(
            lambda: _attempts(first, DELIVERY_ID, 1), "the first attempt to be recorded"
        )  # failed, the retry due in 0.5 s

    async with callbacks(schedule_s=(0.5,)) as second:
        view = await settled(second, DELIVERY_ID, "delivered")

    assert view["attempts"] == 2
    assert [arrival.headers["webhook-id"] for arrival in receiver.arrivals] == [DELIVERY_ID] * 2


async def _attempts(service: Any, delivery_id: str, attempts: int) -> bool:
    return (await service.get(delivery_id))["attempts"] == attempts


@pytest.mark.asyncio
async def test_an_attempt_cut_by_a_stop_is_sent_again_by_the_next_service(callbacks, receiver):
    receiver.answer(200, times=1, delay_s=5.0)  # the first attempt is still in flight when the service stops

    async with callbacks(close_grace_s=0.1) as first:
        await enqueue(first, receiver.url())
        await wait_for_async(lambda: receiver.in_flight == 1, "the first attempt to reach the receiver")

    async with callbacks() as second:
        view = await settled(second, DELIVERY_ID, "delivered")

    assert view["attempts"] == 1  # the cut attempt never ended, so it was never counted
    assert len(receiver.arrivals) == 2


@pytest.mark.asyncio
async def test_an_attempt_in_flight_at_a_stop_may_finish_within_the_grace_and_is_not_sent_again(callbacks, receiver):
    receiver.answer(200, times=1, delay_s=0.3)

    async with callbacks(close_grace_s=5.0) as first:
        await enqueue(first, receiver.url())
        await wait_for_async(lambda: receiver.in_flight == 1, "the attempt to reach the receiver")

    async with callbacks() as second:
        view = await second.get(DELIVERY_ID)

    assert view["state"] == "delivered"
    assert len(receiver.arrivals) == 1


@pytest.mark.asyncio
async def test_an_enqueued_delivery_is_on_disk_when_enqueue_returns(callbacks, tmp_path):
    async with callbacks(schedule_s=(60.0,)) as service:
        await enqueue(service, "http://127.0.0.1:9/hook")  # nobody listens: fails, then waits a minute

    async with callbacks(schedule_s=(60.0,)) as reopened:
        page = await reopened.list()

    assert [view["id"] for view in page["data"]] == [DELIVERY_ID]


# -- refused at submit ----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "localhost resolves to"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("ftp://example.com/hook", "http"),
        ("http:///hook", "no host"),
    ],
)
async def test_a_reply_to_that_could_never_be_delivered_is_refused_at_submit(callbacks, url, says):
    async with callbacks(allow=()) as service:
        with pytest.raises(GatewayError) as refused:
            await service.check_reply_to(url)

    assert refused.value.status == 400
    assert refused.value.param == "reply_to"
    assert refused.value.code == "invalid_reply_to"
    assert says in refused.value.message


@pytest.mark.asyncio
async def test_a_name_resolving_to_a_private_address_is_refused_at_submit(callbacks):
    getaddrinfo = resolving({"intranet.example": ["192.168.10.4"]})

    async with callbacks(allow=(), getaddrinfo=getaddrinfo) as service:
        with pytest.raises(GatewayError) as private:
            await service.check_reply_to("https://intranet.example/hook")
        with pytest.raises(GatewayError) as unresolved:
            await service.check_reply_to("https://nowhere.example/hook")

    assert "intranet.example resolves to 192.168.10.4, which is a private address" in private.value.message
    assert "nowhere.example does not resolve" in unresolved.value.message


@pytest.mark.asyncio
async def test_the_allow_list_admits_a_loopback_reply_to_by_address_and_by_name(callbacks):
    getaddrinfo = resolving({"receiver.test": ["127.0.0.1"]})

    async with callbacks(getaddrinfo=getaddrinfo) as service:  # --callback-allow 127.0.0.1/32
        await service.check_reply_to("http://127.0.0.1:8080/hook")
        await service.check_reply_to("http://receiver.test:8080/hook")


# -- the guard at delivery time -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_delivery_connects_to_the_address_the_guard_checked_and_keeps_the_name_as_host(callbacks, receiver):
    getaddrinfo = resolving({"receiver.test": ["127.0.0.1"]})

    async with callbacks(getaddrinfo=getaddrinfo) as service:
        await enqueue(service, receiver.url(host="receiver.test"))
        await settled(service, DELIVERY_ID, "delivered")

    (arrival,) = receiver.arrivals
    assert arrival.host == f"receiver.test:{receiver.port}"


@pytest.mark.asyncio
async def test_a_name_rebound_to_loopback_after_the_submit_check_is_refused_at_delivery(callbacks, receiver):
    answers = {"rebind.test": ["93.184.216.34"]}

    async with callbacks(allow=(), schedule_s=(0.05,), getaddrinfo=resolving(answers)) as service:
        url = receiver.url(host="rebind.test")
        await service.check_reply_to(url)  # passes: the name is public now
        answers["rebind.test"] = ["127.0.0.1"]  # then its DNS answers with the gateway's own loopback
        await enqueue(service, url)
        view = await settled(service, DELIVERY_ID, "dead")

    assert receiver.arrivals == []
    assert view["last_status"] is None
    assert "refused" in view["last_error"]
    assert "loopback" in view["last_error"]


@pytest.mark.asyncio
async def test_a_literal_address_refused_at_delivery_is_never_connected_to(callbacks, receiver):
    async with callbacks(allow=(), schedule_s=(0.05,)) as service:
        await enqueue(service, receiver.url())
        view = await settled(service, DELIVERY_ID, "dead")

    assert receiver.arrivals == []
    assert "loopback" in view["last_error"]


# -- secrets --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_webhook_secret_is_in_config_json_but_not_in_the_deliveries_file_nor_the_log(
    callbacks, receiver, tmp_path, caplog
):
    config = ConfigStore(tmp_path / "config.json")
    clock = FakeClock()
    keys = KeyStore(config, RateLimiter(clock=clock.monotonic), EventBus(), clock)
    key, _ = keys.create(KeySpec(name="app"))
    old = key.webhook_secret
    new = keys.rotate_webhook_secret(key)["webhook_secret"]
    assert old is not None
    receiver.answer(500, times=2)
    caplog.set_level(logging.DEBUG)

    async with callbacks(schedule_s=(0.05,), secrets=keys.webhook_secrets) as service:  # as the daemon wires it
        await service.enqueue("msg_dead_1", key.id, receiver.url(), "job.succeeded", job_view())
        await settled(service, "msg_dead_1", "dead")  # logged as a dead letter
        await service.enqueue("msg_ok_1", key.id, receiver.url(), "job.succeeded", job_view())
        await settled(service, "msg_ok_1", "delivered")
    config.close()

    on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("callbacks.sqlite*"))
    assert b"msg_ok_1" in on_disk  # the file is the one the deliveries went to
    for secret in (old, new):
        assert secret.encode() not in on_disk
        assert secret.removeprefix("whsec_").encode() not in on_disk
        assert secret not in caplog.text
        assert secret in (tmp_path / "config.json").read_text()
    assert "dead" in caplog.text


@pytest.mark.asyncio
async def test_the_deliveries_file_is_private_to_the_daemon(callbacks, tmp_path):
    async with callbacks():
        pass

    assert (tmp_path / "callbacks.sqlite").stat().st_mode & 0o777 == 0o600


# -- the admin routes -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_admin_routes_list_deliveries_and_redeliver_a_dead_one(callbacks, receiver, tmp_path: Path):
    receiver.answer(500, times=2)

    async with callbacks(schedule_s=(0.05,)) as service:
        app = json_app(CallbacksApi(service).routes())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://corral") as admin:
            await enqueue(service, receiver.url())
            await settled(service, DELIVERY_ID, "dead")

            dead = (await admin.get("/callbacks", params={"state": "dead"})).json()
            redelivered = await admin.post(f"/callbacks/{DELIVERY_ID}/redeliver")
            await settled(service, DELIVERY_ID, "delivered")
            missing = await admin.post("/callbacks/msg_nope_1/redeliver")
            bad_limit = await admin.get("/callbacks", params={"limit": "many"})
            unknown = await admin.get("/callbacks", params={"status": "dead"})

    assert dead["object"] == "list"
    assert [view["id"] for view in dead["data"]] == [DELIVERY_ID]
    assert redelivered.status_code == 200
    assert redelivered.json()["state"] == "pending"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "delivery_not_found"
    assert bad_limit.status_code == 400
    assert bad_limit.json()["error"]["param"] == "limit"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "status"
