"""Load is spread across equal providers, and a provider that dies under load costs no request."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import openai
import pytest

from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]


async def fire(base_url: str, key: str, count: int, **params) -> list[object]:
    """`count` concurrent chat requests; each result is the response or the exception it raised."""
    async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=60) as client:
        calls = [client.chat.completions.create(model="tiny", messages=PROMPT, **params) for _ in range(count)]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=120)


def test_three_equal_providers_each_get_a_third_of_300_concurrent_requests(corral_daemon, llama_servers):
    for index, server in enumerate(llama_servers(3, parallel=4)):
        corral_daemon.add_provider(f"gpu{index}", server.base_url)
    key = corral_daemon.create_key("load")

    results = asyncio.run(fire(corral_daemon.base_url, key, 300, max_tokens=1))

    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures[:3]
    per_provider = corral_daemon.admin_call("GET", "/stats").json()["provider"]
    counts = {name: per_provider[name]["requests"] for name in ("gpu0", "gpu1", "gpu2")}
    assert all(85 <= count <= 115 for count in counts.values()), counts
    assert sum(counts.values()) == 300


def test_higher_priority_tier_takes_all_traffic_while_it_is_healthy(corral_daemon, llama_servers):
    primary, backup = llama_servers(2)
    corral_daemon.add_provider("primary", primary.base_url, priority=10)
    corral_daemon.add_provider("backup", backup.base_url, priority=0)
    key = corral_daemon.create_key("app")

    results = asyncio.run(fire(corral_daemon.base_url, key, 20, max_tokens=1))

    assert not [r for r in results if isinstance(r, Exception)]
    per_provider = corral_daemon.admin_call("GET", "/stats").json()["provider"]
    assert per_provider["primary"]["requests"] == 20
    assert "backup" not in per_provider


def test_killing_a_provider_under_load_fails_no_request(corral_daemon, llama_servers):
    servers = llama_servers(3, parallel=2)
    for index, server in enumerate(servers):
        corral_daemon.add_provider(f"gpu{index}", server.base_url)
    key = corral_daemon.create_key("load")
    victim = servers[1]

    async def every_provider_is_busy(admin: httpx.AsyncClient) -> bool:
        return all(p["in_flight"] > 0 for p in (await admin.get("/providers")).json())

    async def scenario() -> list[object]:
        load = asyncio.create_task(
            fire(corral_daemon.base_url, key, 120, max_tokens=64, extra_body={"ignore_eos": True})
        )
        transport = httpx.AsyncHTTPTransport(uds=str(corral_daemon.socket_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://corral") as admin:
            await wait_for_async(lambda: every_provider_is_busy(admin), "requests in flight on every provider")
        os.kill(victim.process.pid, signal.SIGKILL)
        return await load

    results = asyncio.run(scenario())

    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, f"{len(failures)} failed, e.g. {failures[:2]}"
    assert all(r.usage.completion_tokens == 64 for r in results)
    providers = {p["name"]: p for p in corral_daemon.admin_call("GET", "/providers").json()}
    assert providers["gpu1"]["errors"] >= 1, "the killed provider should have been tried and failed"


def test_a_stream_cut_by_a_dying_provider_ends_with_an_error_event_not_a_clean_finish(corral_daemon, llama_servers):
    (server,) = llama_servers(1)
    corral_daemon.add_provider("only", server.base_url)
    key = corral_daemon.create_key("app")
    body = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 100000, "ignore_eos": True}

    frames = []
    with httpx.stream(
        "POST",
        corral_daemon.base_url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                frames.append(line)
            if len(frames) == 5:
                os.kill(server.process.pid, signal.SIGKILL)

    assert response.status_code == 200
    assert frames[-1] != "data: [DONE]"
    assert '"error"' in frames[-1]
    assert "mid-stream" in frames[-1] or "ended the stream" in frames[-1]
