"""The upstream HTTP client: which proxy a provider goes through, and which failures are a stale pooled connection."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import orjson
import pytest

from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.upstream import (
    describe,
    env_proxy,
    is_stale_connection,
    make_session,
    stream_request_headers,
)
from tests.testbed.ports import free_port

HOSTED = "https://api.mistral.ai/v1"


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in (
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_hosted_api_goes_through_the_https_proxy_the_environment_names(no_proxy_env):
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")

    assert env_proxy(HOSTED) == "http://127.0.0.1:3128"
    assert env_proxy("http://127.0.0.1:8080") is None  # plain HTTP has no proxy set


def test_hosts_in_no_proxy_are_reached_directly(no_proxy_env):
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    no_proxy_env.setenv("NO_PROXY", "api.mistral.ai,localhost")

    assert env_proxy(HOSTED) is None


def test_without_proxy_variables_every_provider_is_reached_directly(no_proxy_env):
    assert env_proxy(HOSTED) is None


def test_only_streams_to_llama_server_ask_for_the_connection_to_close():
    def config(type_: str) -> ProviderConfig:
        return ProviderConfig(name="p", type=type_, base_url="http://127.0.0.1:8080")

    sent = {"content-type": "application/json"}
    assert stream_request_headers(config("llama-server"), sent) == {**sent, "connection": "close"}
    assert stream_request_headers(config("ollama"), sent) == sent
    assert stream_request_headers(config("openai"), sent) == sent


@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_back_to_back_streams_to_llama_server_never_reuse_a_connection_it_closed(llama_servers):
    (server,) = llama_servers(1, parallel=8)
    config = ProviderConfig(name="p", type="llama-server", base_url=server.base_url)
    body = orjson.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}
    )
    headers = stream_request_headers(config, {"content-type": "application/json"})
    session = make_session(config)
    failures: list[str] = []

    async def client() -> None:
        for _ in range(12):  # without the header, most of these fail writing to a pooled, closed connection
            try:
                async with session.post(server.base_url + "/v1/chat/completions", data=body, headers=headers) as r:
                    await r.read()
            except aiohttp.ClientError as error:
                failures.append(describe(error))

    try:
        await asyncio.gather(*(client() for _ in range(16)))
    finally:
        await session.close()

    assert failures == []


def test_a_reused_connection_closed_by_the_server_is_stale_but_a_refused_one_is_not():
    assert is_stale_connection(aiohttp.ServerDisconnectedError())
    assert is_stale_connection(aiohttp.ClientOSError(None, "Can not write request body"))
    assert not is_stale_connection(TimeoutError())


async def post_once(port: int) -> None:
    session = make_session(ProviderConfig(name="p", type="llama-server", base_url=f"http://127.0.0.1:{port}"))
    try:
        await session.post(f"http://127.0.0.1:{port}/v1/chat/completions", data=b"{}")
    finally:
        await session.close()


@pytest.mark.asyncio
async def test_a_refused_connection_is_not_retried_as_stale():
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        await post_once(free_port())  # nothing listens there

    assert not is_stale_connection(refused.value)


@pytest.mark.asyncio
async def test_a_refused_connection_is_described_in_words_without_aiohttps_tls_setting():
    port = free_port()
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        await post_once(port)  # nothing listens there

    said = describe(refused.value)

    assert said == f"connection refused: nothing listens on 127.0.0.1:{port} (ClientConnectorError)"
    assert "ssl" not in said


@pytest.mark.asyncio
async def test_a_server_that_closes_without_answering_is_reported_as_a_disconnect():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def accept_and_close() -> None:
            connection, _ = server.accept()
            connection.recv(65536)
            connection.close()

        closer = asyncio.get_running_loop().run_in_executor(None, accept_and_close)
        try:
            with pytest.raises(aiohttp.ServerDisconnectedError) as cut:
                await post_once(port)
        finally:
            await closer

    assert is_stale_connection(cut.value)
    assert describe(cut.value) == "the server closed the connection without answering (ServerDisconnectedError)"
