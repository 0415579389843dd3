"""The testbed's llama-server processes are real servers that the official OpenAI SDK can talk to."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.testbed import LlamaServerPool

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "Say something."}]
# The tiny model rarely samples end-of-sequence, but ignoring it makes the token count exact.
GENERATION = {"max_tokens": 8, "temperature": 0, "extra_body": {"ignore_eos": True}}


def test_chat_completion_from_real_llama_server_has_text_and_exact_usage(llama_servers):
    (server,) = llama_servers(1)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)

    first = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)
    second = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)

    text = first.choices[0].message.content
    assert text, "the model generated no text"
    assert first.choices[0].finish_reason == "length"
    assert first.usage.completion_tokens == 8
    assert first.usage.prompt_tokens > len("Say something.") // 2
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert second.choices[0].message.content == text, "temperature 0 must be deterministic"


def test_streamed_chat_completion_matches_the_unstreamed_text_and_reports_usage(llama_servers):
    (server,) = llama_servers(1)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    expected = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION).choices[0].message.content

    stream = client.chat.completions.create(
        model="tiny", messages=PROMPT, stream=True, stream_options={"include_usage": True}, **GENERATION
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage

    assert len(pieces) > 1, "a stream should arrive in several chunks"
    assert "".join(pieces) == expected
    assert usage is not None
    assert usage.completion_tokens == 8


def test_fixture_starts_n_servers_on_distinct_loopback_ports_with_requested_slots(llama_servers):
    servers = llama_servers(3, parallel=2)

    assert len({server.port for server in servers}) == 3
    for server in servers:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(server.base_url + "/health").status_code == 200
        assert httpx.get(server.base_url + "/props").json()["total_slots"] == 2


def test_pool_kills_its_servers_when_the_test_body_fails(llama_server_binary, tiny_model, tmp_path):
    pool = LlamaServerPool(llama_server_binary, tiny_model, tmp_path)

    def failing_test_body() -> None:
        with pool:
            pool.start(2)
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()

    assert len(pool.servers) == 2
    for server in pool.servers:
        assert server.process is not None
        assert server.process.poll() is not None, "llama-server outlived the pool"
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.base_url + "/health", timeout=1.0)
