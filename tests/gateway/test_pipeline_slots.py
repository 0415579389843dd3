"""Whichever way a request ends, the provider slots its attempts held are given back, once each.

Each attempt holds a `Slot` (providers/registry.py); a leaked one would make the provider look busier for good
(and, at its max concurrency, unroutable), a double release would let it take more than its capacity. The
gateway runs in-process against the local fault servers.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.requests import Request

from gateway_core.gateway.stream_response import EventStreamResponse
from tests.fakes.fault_server import FaultServer
from tests.testbed.waiting import wait_for_async

PROMPT = [{"role": "user", "content": "hi"}]


def slots_held(gateway, *names: str) -> dict[str, tuple[int, float | None]]:
    """Each provider's in-flight count and its in-flight metric."""
    metrics = gateway.state.metrics.registry
    return {
        name: (
            gateway.state.registry.require(name).in_flight,
            metrics.get_sample_value("corral_requests_in_flight", {"provider": name}),
        )
        for name in names
    }


async def all_given_back(gateway, *names: str) -> None:
    await wait_for_async(
        lambda: all(held == (0, 0.0) for held in slots_held(gateway, *names).values()),
        f"the slots of {', '.join(names)} to be given back",
    )


async def streamed(gateway, key: str) -> list[str]:
    async with gateway.public.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "tiny", "messages": PROMPT, "stream": True},
        headers={"authorization": f"Bearer {key}"},
    ) as response:
        return [line async for line in response.aiter_lines() if line.startswith("data: ")]


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_an_answered_request_gives_its_slot_back(gateway, stream):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")

        if stream:
            assert (await streamed(gateway, key))[-1] == "data: [DONE]"
        else:
            assert (await gateway.chat(key)).status_code == 200

        await all_given_back(gateway, "local")


@pytest.mark.asyncio
async def test_a_failed_over_request_gives_back_the_slots_of_both_providers(gateway):
    with FaultServer() as failing, FaultServer() as backup:
        failing.set_mode("status", status=500)
        await gateway.add_provider("failing", failing.base_url, priority=10)
        await gateway.add_provider("backup", backup.base_url)

        response = await gateway.chat(await gateway.create_key("app"))

        assert response.headers["x-corral-provider"] == "backup"
        await all_given_back(gateway, "failing", "backup")


@pytest.mark.asyncio
async def test_a_client_error_passed_through_gives_its_slot_back(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("status", status=400, message="bad request")
        await gateway.add_provider("local", upstream.base_url)

        assert (await gateway.chat(await gateway.create_key("app"))).status_code == 400

        await all_given_back(gateway, "local")


@pytest.mark.asyncio
async def test_a_stream_cut_mid_answer_gives_its_slot_back(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("cut_stream", after_chunks=2)
        await gateway.add_provider("local", upstream.base_url)

        frames = await streamed(gateway, await gateway.create_key("app"))

        assert '"error"' in frames[-1]
        await all_given_back(gateway, "local")


@pytest.mark.asyncio
async def test_a_provider_at_its_max_concurrency_is_routable_again_once_its_request_ends(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("single", upstream.base_url, max_concurrency=1)
        key = await gateway.create_key("app")

        statuses = [(await gateway.chat(key)).status_code for _ in range(3)]

        assert statuses == [200, 200, 200]
        await all_given_back(gateway, "single")


def _chat_request(key: str, *, stream: bool) -> Request:
    """A public chat request as uvicorn would hand it to the pipeline."""
    body = orjson.dumps({"model": "tiny", "messages": PROMPT, "stream": stream})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-length", str(len(body)).encode())],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def nothing_held(gateway, key_id: str) -> bool:
    usage = gateway.state.limiter.usage(key_id)
    return len(gateway.state.live) == 0 and usage["in_flight"] == 0


@pytest.mark.asyncio
async def test_a_stream_whose_client_leaves_before_its_first_byte_gives_everything_back(gateway):
    # The response's chunks are closed before they were ever iterated: what EventStreamResponse does when the
    # client is gone by the time the answer's headers are written.
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")
        key_id = key.split("-")[2]

        response = await gateway.state.pipeline.handle("chat", _chat_request(key, stream=True))
        assert isinstance(response, EventStreamResponse)
        await response.chunks.aclose()

        await all_given_back(gateway, "local")
        assert nothing_held(gateway, key_id)


@pytest.mark.asyncio
async def test_a_request_cancelled_while_its_provider_thinks_gives_everything_back(gateway):
    # What the server does to requests still running when its drain timeout ends.
    with FaultServer() as upstream:
        upstream.set_mode("hang")
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")
        key_id = key.split("-")[2]
        ended = gateway.state.events.subscribe()

        task = asyncio.ensure_future(gateway.state.pipeline.handle("chat", _chat_request(key, stream=False)))
        await wait_for_async(lambda: slots_held(gateway, "local")["local"][0] == 1, "the request to reach its provider")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        await all_given_back(gateway, "local")
        assert nothing_held(gateway, key_id)
        published = []
        while not ended.empty():
            published.append(ended.get_nowait())
        assert [(e.kind, e.data["status"]) for e in published if e is not None and e.kind == "request.end"] == [
            ("request.end", 499)
        ]
