"""The in-process gateway behaves as the daemon does where tests rely on it: streams, disconnects, timeouts, errors."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.fault_server import FaultServer
from tests.testbed.asgi_stream import StreamingASGITransport
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.asyncio


async def test_the_event_stream_starts_with_a_snapshot_then_carries_changes(gateway):
    async with gateway.admin.stream("GET", "/events") as events:
        lines = events.aiter_lines()
        assert await anext(lines) == "event: snapshot"
        await gateway.create_key("watched")

        kinds = []
        async for line in lines:  # GPU samples may come in between: they are published every second
            if line.startswith("event: "):
                kinds.append(line.removeprefix("event: "))
                if kinds[-1] == "key":
                    break
    assert kinds[-1] == "key"
    assert set(kinds) <= {"key", "gpus"}, kinds


async def test_a_client_that_leaves_mid_stream_ends_the_request_in_the_gateway(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("slow", delay_s=0.5)
        await gateway.add_provider("slow", upstream.base_url)
        key = await gateway.create_key("app")
        body = {"model": "tiny", "messages": [{"role": "user", "content": "a b c d e f"}], "stream": True}

        async with gateway.public.stream(
            "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as response:
            await anext(response.aiter_lines())
            assert len(gateway.state.live) == 1

        await wait_for_async(lambda: len(gateway.state.live) == 0, "the gateway to end the abandoned request")
        await wait_for_async(lambda: upstream.disconnects == 1, "the gateway to hang up on the upstream")


async def test_a_request_that_gets_no_answer_in_its_read_timeout_raises_read_timeout(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("hang")
        await gateway.add_provider("stuck", upstream.base_url)
        key = await gateway.create_key("app")

        async with gateway.public_client(timeout_s=0.2) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post(
                    "/v1/chat/completions",
                    json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {key}"},
                )


async def test_an_error_the_app_raises_reaches_the_test():
    async def broken(scope, receive, send):
        raise RuntimeError("a bug in the handler")

    async with httpx.AsyncClient(transport=StreamingASGITransport(broken), base_url="http://app") as client:
        with pytest.raises(RuntimeError, match="a bug in the handler"):
            await client.get("/")


async def test_the_gateway_reads_the_tests_clock_which_moves_only_when_told(gateway):
    assert (await gateway.admin.get("/status")).json()["uptime_s"] == 0

    gateway.clock.advance(3600)

    assert (await gateway.admin.get("/status")).json()["uptime_s"] == 3600
