"""ReplyTo callbacks through a real corral-core and llama-server: jobs submitted with a reply_to reach a receiver
that fails for a while, each delivery signed with the key's webhook secret from POST /keys, retried on a compressed
schedule until it arrives; an undeliverable reply_to is refused at submit; no secret in the log or callbacks.sqlite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from tests.callbacks.receiver import Receiver
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for_async

pytestmark = [pytest.mark.llama_server, pytest.mark.asyncio]

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
JOBS = 5


@pytest_asyncio.fixture
async def daemon(tmp_path: Path, shared_llama_server: Any) -> AsyncIterator[CorralDaemon]:
    flags = ("--callback-allow", "127.0.0.1/32", "--callback-schedule", "0.05s,0.1s,0.2s,0.4s")
    daemon = await asyncio.to_thread(CorralDaemon(tmp_path / "corral", extra_args=flags).start)
    try:
        await asyncio.to_thread(daemon.add_provider, "local", shared_llama_server.base_url)
        yield daemon
    finally:
        await asyncio.to_thread(daemon.stop)


async def admin(daemon: CorralDaemon, method: str, path: str, json: Any = None) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://corral", timeout=30.0) as client:
        return await client.request(method, path, json=json)


async def test_each_job_callback_arrives_signed_with_the_keys_secret_after_the_receiver_recovers(daemon, tmp_path):
    created = (await admin(daemon, "POST", "/keys", {"name": "app"})).json()
    secret = created["webhook_secret"]
    async with (
        Receiver.running() as receiver,
        httpx.AsyncClient(
            base_url=daemon.base_url, headers={"authorization": f"Bearer {created['key']}"}, timeout=30.0
        ) as public,
    ):
        receiver.answer(503, times=JOBS * 2)  # the first ten attempts fail, whichever deliveries they are
        await wait_for_async(lambda: _serves(public, "tiny"), "the provider to list its model", timeout_s=20)
        submitted = []
        for n in range(JOBS):
            answer = await public.post(
                "/v1/queue/chat/completions",
                json={"request": CHAT, "ref_id": f"order-{n}", "reply_to": receiver.url(f"/hooks/{n}")},
            )
            assert answer.status_code == 202, answer.text
            submitted.append(answer.json()["id"])

        await wait_for_async(lambda: len(_delivered(receiver)) == JOBS, f"{JOBS} callbacks answered 200", timeout_s=30)
        listed = (await admin(daemon, "GET", "/callbacks", None)).json()

    verified = [Webhook(secret).verify(arrival.body, arrival.headers) for arrival in receiver.arrivals]
    assert {payload["data"]["id"] for payload in verified} == set(submitted)  # every attempt verifies
    ids = {arrival.headers["webhook-id"] for arrival in receiver.arrivals}
    assert len(ids) == JOBS  # one delivery per job, the same webhook-id on each of its attempts
    for arrival in _delivered(receiver):
        payload = Webhook(secret).verify(arrival.body, arrival.headers)
        assert payload["type"] == "job.succeeded"
        assert payload["data"]["state"] == "succeeded"
        assert payload["data"]["result"]["choices"]
        assert arrival.path == f"/hooks/{payload['data']['ref_id'].removeprefix('order-')}"
    assert {view["state"] for view in listed["data"]} == {"delivered"}
    assert sum(view["attempts"] for view in listed["data"]) == len(receiver.arrivals)
    assert len(receiver.arrivals) == JOBS * 3

    data = tmp_path / "corral"
    assert secret not in daemon.log_path.read_text()
    assert secret.encode() not in b"".join(path.read_bytes() for path in data.glob("callbacks.sqlite*"))
    assert secret in (data / "config.json").read_text()


async def test_a_reply_to_the_guard_refuses_is_a_400_at_submit(daemon):
    key = (await admin(daemon, "POST", "/keys", {"name": "app"})).json()["key"]
    async with httpx.AsyncClient(
        base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30.0
    ) as public:
        await wait_for_async(lambda: _serves(public, "tiny"), "the provider to list its model", timeout_s=20)
        answers = {
            url: await public.post("/v1/queue/chat/completions", json={"request": CHAT, "reply_to": url})
            for url in ("http://10.1.2.3/hook", "http://169.254.169.254/latest", "ftp://example.com/hook")
        }

    for url, answer in answers.items():
        assert answer.status_code == 400, url
        error = answer.json()["error"]
        assert (error["param"], error["code"]) == ("reply_to", "invalid_reply_to")


async def _serves(public: httpx.AsyncClient, model: str) -> bool:
    return model in {entry["id"] for entry in (await public.get("/v1/models")).json()["data"]}


def _delivered(receiver: Receiver) -> list[Any]:
    """The arrivals the receiver answered 200: those after its scripted failures."""
    return receiver.arrivals[JOBS * 2 :]
