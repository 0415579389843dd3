"""The first-run demo brings up a real llama.cpp server with the tiny model and routes to it."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from console.demo import DEMO_MODEL, DEMO_PROVIDER, start_demo
from gateway_core.client import CorralClient


@pytest.fixture
def demo_dir(tmp_path):
    yield tmp_path / "demo-data"
    pid_file = tmp_path / "demo-data" / "demo" / "llama-server.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.mark.asyncio
async def test_the_demo_starts_a_local_server_registers_it_and_the_chat_streams(corral_daemon, demo_dir):
    async with CorralClient(corral_daemon.socket_path) as client:
        started = await start_demo(client, demo_dir)
        again = await start_demo(client, demo_dir)
        providers = {p["name"]: p for p in await client.providers()}
        text = ""
        async with client.chat_stream(DEMO_MODEL, [{"role": "user", "content": "hello"}], max_tokens=16) as stream:
            async for chunk in stream:
                if chunk.get("choices"):
                    text += chunk["choices"][0]["delta"].get("content") or ""

    assert "added as provider 'demo'" in started
    assert "is ready" in again, "a second start reuses the running demo"
    assert providers[DEMO_PROVIDER]["state"] == "ready"
    assert providers[DEMO_PROVIDER]["models"] == {DEMO_MODEL: DEMO_MODEL}
    assert text
    assert stream.provider == DEMO_PROVIDER
