"""Draining a provider for maintenance, through a real corral-core in front of real llama-servers.

A drained provider gets no new requests; the ones it holds run to their end; its state says "draining" while
they do and "drained" once none is left, on the event stream too; the drain outlives a restart until it is
undrained; and a model whose only providers are drained is answered 503 provider_draining, saying what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from gateway_core.client import CorralClient
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
SHORT = {"model": "tiny", "messages": PROMPT, "max_tokens": 4}
# Context shift lets the tiny model generate past its context. 8,000 tokens take the tiny model about a second at
# its fastest (2-3 s on these 2 cores), far longer than the few milliseconds between its first chunks and the drain.
LONG_RUNNING = ("--context-shift",)
LONG_STREAM = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 8000, "ignore_eos": True}


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def provider(daemon: CorralDaemon, name: str) -> dict[str, Any]:
    response = daemon.admin_call("GET", f"/providers/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def served_by(daemon: CorralDaemon, key: str, count: int) -> list[str]:
    """Which provider answered each of `count` short requests."""
    names = []
    with httpx.Client(base_url=daemon.base_url, headers=auth(key), timeout=30) as public:
        for _ in range(count):
            response = public.post("/v1/chat/completions", json=SHORT)
            assert response.status_code == 200, response.text
            names.append(response.headers["x-corral-provider"])
    return names


@pytest.fixture
def two_providers(corral_daemon: CorralDaemon, llama_servers: Any) -> tuple[CorralDaemon, str]:
    """A daemon routing model "tiny" to two llama-servers, gpu-a and gpu-b, and an app's key."""
    first, second = llama_servers(2, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("gpu-a", first.base_url)
    corral_daemon.add_provider("gpu-b", second.base_url)
    wait_for(lambda: sorted(corral_daemon.admin_call("GET", "/models").json()["tiny"]) == ["gpu-a", "gpu-b"], "both")
    return corral_daemon, corral_daemon.create_key("app")


@contextlib.asynccontextmanager
async def provider_states(admin: CorralClient) -> AsyncIterator[list[tuple[str, str]]]:
    """(name, state) of every "provider" event on the admin event stream while the block runs."""
    seen: list[tuple[str, str]] = []
    subscribed = asyncio.Event()

    async def follow() -> None:
        async for event in admin.events():
            match event:
                case ("snapshot", _):
                    subscribed.set()
                case ("provider", view):
                    seen.append((view["name"], view["state"]))

    task = asyncio.create_task(follow())
    await asyncio.wait_for(subscribed.wait(), 10)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_a_drained_providers_stream_in_flight_runs_to_its_end_while_new_requests_go_to_the_other(
    two_providers: tuple[CorralDaemon, str],
) -> None:
    daemon, key = two_providers
    async with (
        CorralClient(daemon.socket_path) as admin,
        provider_states(admin) as states,
        httpx.AsyncClient(base_url=daemon.base_url, headers=auth(key), timeout=60) as public,
    ):
        async with public.stream("POST", "/v1/chat/completions", json=LONG_STREAM) as stream:
            busy = stream.headers["x-corral-provider"]
            other = ({"gpu-a", "gpu-b"} - {busy}).pop()
            lines = stream.aiter_lines()
            for _ in range(5):
                await anext(lines)

            drained = await admin.drain_provider(busy)
            assert (drained["state"], drained["in_flight"], drained["draining"]) == ("draining", 1, True)

            for _ in range(4):
                response = await public.post("/v1/chat/completions", json=SHORT)
                assert response.status_code == 200, response.text
                assert response.headers["x-corral-provider"] == other
            rest = [line async for line in lines if line]

        assert rest[-1] == "data: [DONE]", "the drain cut the stream it held instead of letting it finish"
        assert not any(line.startswith("event: error") for line in rest)
        await wait_for_async(lambda: (busy, "drained") in states, f"{busy} to be announced drained")
        assert [state for name, state in states if name == busy] == ["draining", "drained"]
        view = await admin.provider(busy)
        assert (view["state"], view["in_flight"], view["errors"]) == ("drained", 0, 0)


def test_undrain_routes_to_the_provider_again(two_providers: tuple[CorralDaemon, str]) -> None:
    daemon, key = two_providers

    drained = daemon.admin_call("POST", "/providers/gpu-a/drain").json()
    assert (drained["state"], drained["in_flight"]) == ("drained", 0)  # nothing was in flight
    assert set(served_by(daemon, key, 6)) == {"gpu-b"}

    undrained = daemon.admin_call("POST", "/providers/gpu-a/undrain")
    assert undrained.status_code == 200
    assert (undrained.json()["state"], undrained.json()["draining"]) == ("ready", False)
    assert set(served_by(daemon, key, 6)) == {"gpu-a", "gpu-b"}  # equal providers rotate


def test_draining_twice_or_undraining_a_provider_that_is_not_drained_changes_nothing(
    two_providers: tuple[CorralDaemon, str],
) -> None:
    daemon, _ = two_providers

    assert daemon.admin_call("POST", "/providers/gpu-a/undrain").json()["state"] == "ready"
    daemon.admin_call("POST", "/providers/gpu-a/drain")
    again = daemon.admin_call("POST", "/providers/gpu-a/drain")

    assert again.status_code == 200
    assert again.json()["state"] == "drained"


def test_a_drain_outlives_a_restart_of_corral_core_until_it_is_undrained(
    two_providers: tuple[CorralDaemon, str],
) -> None:
    daemon, key = two_providers
    daemon.admin_call("POST", "/providers/gpu-a/drain")
    assert daemon.stop() == 0

    with restarted(daemon) as again:
        assert provider(again, "gpu-a")["state"] == "drained"
        wait_for(lambda: provider(again, "gpu-b")["state"] == "ready", "gpu-b to be probed ready")
        assert set(served_by(again, key, 4)) == {"gpu-b"}
        assert again.admin_call("POST", "/providers/gpu-a/undrain").status_code == 200
        assert again.stop() == 0

    with restarted(daemon) as third:
        wait_for(lambda: provider(third, "gpu-a")["state"] == "ready", "gpu-a to be ready after the undrain")


@contextlib.contextmanager
def restarted(daemon: CorralDaemon) -> Iterator[CorralDaemon]:
    """corral-core started again on the same data dir (a new port)."""
    again = CorralDaemon(daemon.data_dir).start()
    try:
        yield again
    finally:
        again.stop()


def test_a_model_served_only_by_drained_providers_is_answered_503_provider_draining(
    two_providers: tuple[CorralDaemon, str],
) -> None:
    daemon, key = two_providers
    daemon.admin_call("POST", "/providers/gpu-a/drain")
    daemon.admin_call("POST", "/providers/gpu-b/drain")

    response = httpx.post(daemon.base_url + "/v1/chat/completions", json=SHORT, headers=auth(key), timeout=30)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "provider_draining"
    assert error["type"] == "service_unavailable"
    assert "gpu-a" in error["message"]
    assert "gpu-b" in error["message"]
    assert "undrain" in error["message"]
    assert "retry later" in error["message"]
    assert response.headers["retry-after"]


def test_a_provider_cannot_be_drained_by_patching_its_configuration(two_providers: tuple[CorralDaemon, str]) -> None:
    daemon, _ = two_providers

    response = daemon.admin_call("PATCH", "/providers/gpu-a", {"draining": True})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "draining"
    assert "corral providers drain" in error["message"]
    assert provider(daemon, "gpu-a")["state"] == "ready"


def test_draining_an_unknown_provider_or_deployment_is_404_naming_how_to_list_them(corral_daemon: CorralDaemon) -> None:
    for path, listing in (
        ("/providers/nope/drain", "corral providers list"),
        ("/fleet/deployments/nope/drain", "corral fleet list"),
    ):
        response = corral_daemon.admin_call("POST", path)
        assert response.status_code == 404, path
        assert listing in response.json()["error"]["message"]


def test_a_deployment_is_drained_through_its_provider(two_providers: tuple[CorralDaemon, str]) -> None:
    daemon, key = two_providers  # a deployment is routed as a provider of its own name

    drained = daemon.admin_call("POST", "/fleet/deployments/gpu-b/drain")
    assert drained.status_code == 200
    assert drained.json()["state"] == "drained"
    assert set(served_by(daemon, key, 4)) == {"gpu-a"}

    assert daemon.admin_call("POST", "/fleet/deployments/gpu-b/undrain").json()["state"] == "ready"


def test_a_request_does_not_wait_for_a_slot_on_a_drained_provider_at_its_max_concurrency(
    corral_daemon: CorralDaemon, llama_servers: Any
) -> None:
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("gpu0", server.base_url, max_concurrency=1)
    key = corral_daemon.create_key("app")
    endless = {**LONG_STREAM, "max_tokens": 1_000_000}  # held until this test leaves it
    with httpx.stream(
        "POST", corral_daemon.base_url + "/v1/chat/completions", json=endless, headers=auth(key), timeout=30
    ) as held:
        lines = held.iter_lines()
        for _ in range(5):
            next(lines)
        assert corral_daemon.admin_call("POST", "/providers/gpu0/drain").json()["state"] == "draining"

        # A saturated provider is worth waiting for (up to 30 s); a drained one is not: the answer is at once.
        response = httpx.post(corral_daemon.base_url + "/v1/chat/completions", json=SHORT, headers=auth(key), timeout=5)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_draining"
