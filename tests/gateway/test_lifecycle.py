"""A client that goes away frees its llama-server slot, an operator can cancel a request, and SIGTERM lets requests
in flight finish. Leaving and SIGTERM need the real daemon: uvicorn's socket is what notices a client gone."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.testbed.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
# Context shift lets the tiny model generate past its context, so a generation lasts as long as a test needs.
LONG_RUNNING = ("--context-shift",)


def slots_busy(server) -> int:
    return sum(1 for slot in httpx.get(server.base_url + "/slots").json() if slot["is_processing"])


def leave_mid_stream(corral_daemon, server, key: str) -> None:
    body = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 1_000_000, "ignore_eos": True}
    with httpx.stream(
        "POST",
        corral_daemon.base_url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        lines = response.iter_lines()  # keep a reference: a dropped iterator would close the stream itself
        for index, _ in enumerate(lines):
            if index == 10:
                break
        assert slots_busy(server) == 1, "the generation should be running while the client reads"
    # Leaving the block closed the connection mid-stream.


def test_client_disconnect_cancels_the_upstream_request_and_frees_the_slot(corral_daemon, llama_servers):
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("only", server.base_url)
    key = corral_daemon.create_key("app")

    leave_mid_stream(corral_daemon, server, key)

    wait_for(lambda: slots_busy(server) == 0, "llama-server to stop generating for the client that left")
    wait_for(lambda: corral_daemon.admin_call("GET", "/requests").json() == [], "no request in flight")


def test_clients_that_leave_mid_stream_are_not_counted_against_the_provider(corral_daemon, llama_servers):
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("only", server.base_url)
    key = corral_daemon.create_key("app")

    for _ in range(3):  # three failures in a row would open the circuit
        leave_mid_stream(corral_daemon, server, key)
        wait_for(lambda: corral_daemon.admin_call("GET", "/requests").json() == [], "no request in flight")

    (provider,) = corral_daemon.admin_call("GET", "/providers").json()
    assert (provider["state"], provider["circuit"], provider["errors"]) == ("ready", "closed", 0)
    assert provider["requests"] == 3


@pytest.mark.asyncio
async def test_operator_can_cancel_a_live_request_from_the_admin_api(gateway, llama_servers):
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    await gateway.add_provider("only", server.base_url)
    key = await gateway.create_key("app")
    body = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 1_000_000, "ignore_eos": True}

    last_line = ""
    async with gateway.public.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        index = 0
        async for line in response.aiter_lines():
            if index == 5:
                (live,) = (await gateway.admin.get("/requests")).json()
                assert live["key_name"] == "app"
                assert live["provider"] == "only"
                assert (await gateway.admin.delete(f"/requests/{live['id']}")).status_code == 200
            if line:
                last_line = line
            index += 1

    assert "cancelled by an operator" in last_line
    await wait_for_async(lambda: slots_busy(server) == 0, "llama-server's slot to be free")


def test_sigterm_drains_a_request_in_flight_then_exits_zero(corral_daemon, llama_servers):
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("only", server.base_url)
    key = corral_daemon.create_key("app")
    body = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 3000, "ignore_eos": True}
    lines: list[str] = []

    def read_stream() -> None:
        with httpx.stream(
            "POST",
            corral_daemon.base_url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        ) as response:
            lines.extend(line for line in response.iter_lines() if line)

    reader = threading.Thread(target=read_stream)
    reader.start()
    wait_for(lambda: len(corral_daemon.admin_call("GET", "/requests").json()) == 1, "the request to be in flight")

    exit_code = corral_daemon.stop()
    reader.join(timeout=30)

    assert exit_code == 0
    assert lines[-1] == "data: [DONE]", "the stream in flight was cut instead of drained"
    log = corral_daemon.log_tail()
    assert "draining 1 request(s)" in log
    assert "corral-core stopped" in log
