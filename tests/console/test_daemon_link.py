"""The console starts corral-core when nobody answers, says why when it cannot, and follows its events forever."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import httpx
import pytest

from console.daemon_link import DaemonStartFailed, EventFeed, ensure_daemon
from gateway_core.client import CorralClient
from tests.testbed import daemons_on
from tests.testbed.ports import free_port

STEP_S = 10.0  # bound on each wait for the next event


async def next_event(feed: EventFeed) -> tuple[str, Any]:
    return await asyncio.wait_for(anext(feed), STEP_S)


async def next_of_kind(feed: EventFeed, kind: str) -> Any:
    for _ in range(200):
        got, data = await next_event(feed)
        if got == kind:
            return data
    raise AssertionError(f"no {kind!r} event")


@pytest.mark.asyncio
async def test_ensure_daemon_starts_a_detached_corral_core_when_none_answers(tmp_path, socket_path):
    port = free_port()

    outcome = await ensure_daemon(socket_path, tmp_path / "data", listen=f"127.0.0.1:{port}")

    assert outcome.started
    assert outcome.pid in daemons_on(socket_path)
    assert os.getsid(outcome.pid) == outcome.pid, "the daemon should lead its own session, apart from the console"
    async with CorralClient(socket_path) as client:
        assert (await client.health())["status"] == "ok"
    async with httpx.AsyncClient() as public:
        assert (await public.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    assert "corral started" in (tmp_path / "data" / "corral-core.log").read_text()


@pytest.mark.asyncio
async def test_ensure_daemon_leaves_a_running_daemon_alone(tmp_path, socket_path, monkeypatch):
    monkeypatch.setenv("CORRAL_LISTEN", f"127.0.0.1:{free_port()}")
    first = await ensure_daemon(socket_path, tmp_path / "data")

    again = await ensure_daemon(socket_path, tmp_path / "data")

    assert first.started
    assert not again.started
    assert again.version == first.version
    assert daemons_on(socket_path) == [first.pid]


@pytest.mark.asyncio
async def test_corral_listen_from_the_environment_is_passed_to_the_daemon(tmp_path, socket_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("CORRAL_LISTEN", f"127.0.0.1:{port}")

    await ensure_daemon(socket_path, tmp_path / "data")

    async with httpx.AsyncClient() as public:
        assert (await public.get(f"http://127.0.0.1:{port}/health")).status_code == 200


@pytest.mark.asyncio
async def test_a_daemon_that_cannot_start_raises_with_the_reason_from_its_log(tmp_path, socket_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(DaemonStartFailed) as caught:
            await ensure_daemon(socket_path, tmp_path / "data", listen=f"127.0.0.1:{port}", timeout_s=20)

    message = caught.value.message
    assert "exited with code 1" in message
    assert f"cannot listen on 127.0.0.1:{port}" in message, message
    assert str(tmp_path / "data" / "corral-core.log") in message
    assert daemons_on(socket_path) == []


@pytest.mark.asyncio
async def test_event_feed_follows_the_daemon_through_a_restart(corral_daemon):
    async with EventFeed(corral_daemon.socket_path) as feed:
        assert await next_event(feed) == ("connection", {"state": "connected"})
        kind, snapshot = await next_event(feed)
        assert kind == "snapshot"
        assert snapshot["keys"] == []

        async with CorralClient(corral_daemon.socket_path) as client:
            await client.create_key("app")
        assert (await next_of_kind(feed, "key"))["name"] == "app"

        await asyncio.to_thread(corral_daemon.stop)
        assert (await next_of_kind(feed, "connection"))["state"] == "lost"

        await asyncio.to_thread(corral_daemon.start)
        assert await next_event(feed) == ("connection", {"state": "connected"}), "lost is reported only once"
        kind, snapshot = await next_event(feed)
        assert kind == "snapshot"
        assert [key["name"] for key in snapshot["keys"]] == ["app"]


@pytest.mark.asyncio
async def test_event_feed_reports_an_absent_daemon_once_and_backs_off(tmp_path):
    async with EventFeed(tmp_path / "nobody.sock") as feed:
        kind, data = await next_event(feed)
        assert (kind, data["state"]) == ("connection", "lost")
        assert "not running" in data["reason"]

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(feed), 1.0)  # no repeated "lost" while it stays down

        assert feed.connect_attempts <= 4, "retries should back off (0.2 s, 0.4 s, 0.8 s...), not spin"


@pytest.mark.asyncio
async def test_closing_the_feed_ends_a_waiting_iteration(tmp_path):
    feed = EventFeed(tmp_path / "nobody.sock")
    assert (await next_event(feed))[0] == "connection"
    closing: list[asyncio.Task[None]] = []
    # Runs once this task blocks in the iteration below: the close lands while the iteration waits.
    asyncio.get_running_loop().call_soon(lambda: closing.append(asyncio.ensure_future(feed.aclose())))

    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(STEP_S):
            await anext(feed)
    assert closing, "the iteration ended before the close was even asked for"
    await closing[0]
