"""Faults a real llama-server will not produce on demand, from the local fault servers.

The gateway runs in-process; the fault servers are real HTTP servers on loopback ports, so everything between
the gateway and its upstreams (aiohttp, connection reuse, SSE parsing) is what the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
import openai
import pytest

from gateway_core.providers.circuit import CircuitBreaker
from tests.fakes.anthropic_server import AnthropicFakeServer
from tests.fakes.fault_server import FaultServer
from tests.fakes.one_shot_server import OneShotServer
from tests.testbed.waiting import wait_for_async

PROMPT = [{"role": "user", "content": "hi"}]


async def stream_frames(gateway, key: str) -> list[str]:
    async with gateway.public.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "tiny", "messages": PROMPT, "stream": True},
        headers={"authorization": f"Bearer {key}"},
    ) as response:
        assert response.status_code == 200
        return [line async for line in response.aiter_lines() if line.startswith("data: ")]


async def provider_state(gateway, name: str) -> str:
    return (await gateway.admin.get(f"/providers/{name}")).json()["state"]


def inference_requests(server: FaultServer) -> list[object]:
    return [r for r in server.requests if r.path == "/v1/chat/completions"]


@pytest.mark.asyncio
async def test_a_loading_provider_gets_no_traffic_until_it_is_ready(start_gateway):
    with FaultServer() as upstream:
        upstream.set_mode("loading")
        async with start_gateway(probe_interval_s=0.1) as gateway:
            await gateway.add_provider("warming", upstream.base_url, models={"tiny": "tiny"})
            key = await gateway.create_key("app")

            assert await provider_state(gateway, "warming") == "loading"
            refused = await gateway.chat(key)
            assert refused.status_code == 503
            assert "model 'tiny'" in refused.json()["error"]["message"]
            assert "warming loading" in refused.json()["error"]["message"]
            assert not inference_requests(upstream)

            upstream.set_mode("ok")

            async def ready() -> bool:
                return await provider_state(gateway, "warming") == "ready"

            await wait_for_async(ready, "the probe loop to see it ready")
            assert (await gateway.chat(key)).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_an_upstream_error_before_the_first_byte_fails_over_to_the_next_provider(gateway, status):
    with FaultServer() as failing, FaultServer(reply="backup answered") as backup:
        failing.set_mode("status", status=status)
        await gateway.add_provider("failing", failing.base_url, priority=10)
        await gateway.add_provider("backup", backup.base_url, priority=0)
        key = await gateway.create_key("app")

        response = await gateway.chat(key)

        assert response.status_code == 200
        assert response.headers["x-corral-provider"] == "backup"
        assert response.json()["choices"][0]["message"]["content"] == "backup answered"
        assert len(inference_requests(failing)) == 1


@pytest.mark.asyncio
async def test_a_model_not_yet_listed_by_a_loading_provider_is_retry_later_not_unknown(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("loading")
        await gateway.add_provider("warming", upstream.base_url)  # models to be discovered once it is ready

        refused = await gateway.chat(await gateway.create_key("app"))

        assert refused.status_code == 503
        assert "warming have not listed their models yet" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "2"


@pytest.mark.asyncio
async def test_repeated_failures_open_the_circuit_and_traffic_skips_the_provider(gateway):
    with FaultServer() as failing, FaultServer() as backup:
        failing.set_mode("status", status=500)
        await gateway.add_provider("failing", failing.base_url, priority=10)
        await gateway.add_provider("backup", backup.base_url, priority=0)
        key = await gateway.create_key("app")

        statuses = [(await gateway.chat(key)).status_code for _ in range(8)]

        assert statuses == [200] * 8
        assert len(inference_requests(failing)) == 3
        assert await provider_state(gateway, "failing") == "circuit_open"


@pytest.mark.asyncio
async def test_an_open_circuit_lets_one_trial_through_after_its_cooldown_and_closes_when_it_succeeds(gateway):
    with FaultServer() as flaky, FaultServer() as backup:
        flaky.set_mode("status", status=500)
        await gateway.add_provider("flaky", flaky.base_url, priority=10)
        await gateway.add_provider("backup", backup.base_url, priority=0)
        key = await gateway.create_key("app")
        for _ in range(3):
            assert (await gateway.chat(key)).status_code == 200  # each failed over to the backup
        assert await provider_state(gateway, "flaky") == "circuit_open"
        flaky.set_mode("ok")

        resting = await gateway.chat(key)
        gateway.clock.advance(CircuitBreaker().cooldown_s)  # the circuit's rest, without waiting for it
        trial = await gateway.chat(key)

        assert resting.headers["x-corral-provider"] == "backup"
        assert trial.headers["x-corral-provider"] == "flaky"
        assert await provider_state(gateway, "flaky") == "ready"


@pytest.mark.asyncio
async def test_when_every_provider_fails_the_client_gets_the_upstream_failure(gateway):
    with FaultServer() as only:
        only.set_mode("status", status=500, message="CUDA out of memory")
        await gateway.add_provider("only", only.base_url)

        async with gateway.openai(await gateway.create_key("app")) as client:
            with pytest.raises(openai.APIStatusError, match="CUDA out of memory") as raised:
                await client.chat.completions.create(model="tiny", messages=PROMPT)
        assert raised.value.status_code == 502


@pytest.mark.asyncio
async def test_a_stream_cut_mid_answer_ends_with_an_error_event(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("cut_stream", after_chunks=3)
        await gateway.add_provider("cutter", upstream.base_url)

        frames = await stream_frames(gateway, await gateway.create_key("app"))

        assert "data: [DONE]" not in frames
        assert '"error"' in frames[-1]
        assert len(frames) == 4, "three upstream chunks, then the error event"


@pytest.mark.asyncio
async def test_garbage_sse_does_not_end_as_a_clean_stream(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("garbage_sse")
        await gateway.add_provider("garbage", upstream.base_url)

        frames = await stream_frames(gateway, await gateway.create_key("app"))

        assert "data: [DONE]" not in frames
        assert "ended the stream before it finished" in frames[-1]


@pytest.mark.asyncio
async def test_a_hung_provider_does_not_stall_requests_to_other_models(gateway):
    with FaultServer(model="stuck") as stuck, FaultServer(model="tiny") as healthy:
        stuck.set_mode("hang")
        await gateway.add_provider("stuck", stuck.base_url)
        await gateway.add_provider("healthy", healthy.base_url)
        key = await gateway.create_key("app")
        hung = asyncio.ensure_future(gateway.chat(key, model="stuck"))
        await wait_for_async(lambda: stuck.in_flight == 1, "the request to the stuck provider to hang there")

        started = time.monotonic()
        assert (await gateway.chat(key)).status_code == 200
        assert time.monotonic() - started < 1.0
        assert not hung.done(), "the stuck provider still holds its request"
    hung.cancel()  # the client gives up (the stuck server stopped with the block)
    with contextlib.suppress(asyncio.CancelledError):
        await hung


@pytest.mark.asyncio
async def test_openai_clients_can_use_an_anthropic_provider_streaming_included(gateway):
    with AnthropicFakeServer(api_key="sk-ant-test-1234") as upstream:
        await gateway.add_provider(
            "claude",
            upstream.base_url,
            type_="anthropic",
            api_key="sk-ant-test-1234",
            models={"claude": "claude-fake-1"},
        )
        async with gateway.openai(await gateway.create_key("app")) as client:
            messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
            reply = await client.chat.completions.create(model="claude", messages=messages)
            stream = await client.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "hello there"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]

    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.model == "claude"
    assert reply.usage.completion_tokens == 3
    assert upstream.requests[0]["system"] == "be brief"
    assert upstream.requests[0]["model"] == "claude-fake-1"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage.completion_tokens == 3


@pytest.mark.asyncio
async def test_the_upstream_key_never_appears_in_admin_answers_or_logs(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    with AnthropicFakeServer(api_key="sk-ant-secret-abcd") as upstream:
        await gateway.add_provider(
            "claude",
            upstream.base_url,
            type_="anthropic",
            api_key="sk-ant-secret-abcd",
            models={"claude": "claude-fake-1"},
        )
        paths = ("/providers", "/status", "/providers/claude")
        answers = [(await gateway.admin.get(path)).text for path in paths]

    for answer in answers:
        assert "sk-ant-secret-abcd" not in answer
    assert "…abcd" in answers[0]
    assert caplog.records, "the daemon logged nothing to look through"
    assert "sk-ant-secret" not in caplog.text
    assert "sk-ant-secret" not in (gateway.data_dir / "config.json").read_text().replace(
        '"api_key": "sk-ant-secret-abcd"', ""
    )


@pytest.mark.asyncio
async def test_max_concurrency_is_respected_and_extra_requests_wait_for_a_slot(gateway):
    with FaultServer(total_slots=8) as upstream:
        upstream.set_mode("slow", delay_s=0.3)
        await gateway.add_provider("capped", upstream.base_url, max_concurrency=2)
        key = await gateway.create_key("app")

        responses = await asyncio.gather(*(gateway.chat(key) for _ in range(6)))

        assert [r.status_code for r in responses] == [200] * 6
        assert upstream.peak_in_flight == 2


def test_a_client_that_stops_reading_does_not_stall_other_requests(corral_daemon):
    # On the real daemon: a client that stops reading is a full socket buffer, which only a socket has.
    with FaultServer(model="tiny") as upstream:
        corral_daemon.add_provider("local", upstream.base_url)
        key = corral_daemon.create_key("app")
        chat = {"model": "tiny", "messages": PROMPT}
        headers = {"authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=corral_daemon.base_url, headers=headers, timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}),
        ):
            # The stream is held open without reading a byte.
            started = time.monotonic()
            statuses = [client.post("/v1/chat/completions", json=chat).status_code for _ in range(5)]
            elapsed = time.monotonic() - started

    assert statuses == [200] * 5
    assert elapsed < 2.0


@pytest.mark.asyncio
async def test_a_reused_connection_the_upstream_already_closed_is_retried_not_counted_as_a_failure(gateway):
    with OneShotServer() as upstream:
        await gateway.add_provider("one-shot", upstream.base_url)
        key = await gateway.create_key("app")

        statuses = [(await gateway.chat(key)).status_code for _ in range(6)]
        provider = (await gateway.admin.get("/providers/one-shot")).json()

    assert statuses == [200] * 6
    assert upstream.hung_up >= 1, "the gateway did reuse a connection the server had given up on"
    assert provider["errors"] == 0
    assert provider["circuit"] == "closed"
