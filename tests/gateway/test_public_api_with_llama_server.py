"""The official OpenAI SDK against a real corral-core process, in front of a real llama-server (one for the module)."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "Say something."}]
GENERATION = {"max_tokens": 8, "temperature": 0, "extra_body": {"ignore_eos": True}}


@pytest.fixture
def gateway(corral_daemon, shared_llama_server):
    server = shared_llama_server
    corral_daemon.add_provider("local", server.base_url)
    key = corral_daemon.create_key("app")
    client = openai.OpenAI(base_url=corral_daemon.base_url + "/v1", api_key=key, max_retries=0)
    yield corral_daemon, server, client, key
    client.close()


def test_chat_through_the_gateway_says_what_llama_server_says_directly(gateway):
    _, server, client, _ = gateway
    via_gateway = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0) as direct:
        expected = direct.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)

    assert via_gateway.choices[0].message.content == expected.choices[0].message.content
    assert via_gateway.model == "tiny"
    assert via_gateway.usage.completion_tokens == 8
    assert via_gateway.usage.prompt_tokens == expected.usage.prompt_tokens


def test_streamed_chat_arrives_in_chunks_with_usage_when_asked(gateway):
    _, _, client, _ = gateway
    expected = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION).choices[0].message.content

    stream = client.chat.completions.create(
        model="tiny", messages=PROMPT, stream=True, stream_options={"include_usage": True}, **GENERATION
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert len(chunks) > 3
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


def test_stream_usage_is_counted_even_when_the_client_did_not_ask(gateway):
    daemon, _, client, _ = gateway

    chunks = list(client.chat.completions.create(model="tiny", messages=PROMPT, stream=True, **GENERATION))

    assert all(chunk.usage is None for chunk in chunks), "the client did not ask for usage, so it gets none"
    stats = daemon.admin_call("GET", "/stats").json()
    assert stats["key"]["app"]["completion_tokens"] == 8
    assert stats["key"]["app"]["prompt_tokens"] > 0
    assert stats["provider"]["local"]["requests"] == 1


def test_text_completions_pass_through(gateway):
    _, _, client, _ = gateway

    reply = client.completions.create(model="tiny", prompt="Once upon a time", **GENERATION)

    assert reply.choices[0].text
    assert reply.usage.completion_tokens == 8


def test_models_lists_only_what_the_key_may_use(gateway):
    daemon, _, client, _ = gateway
    scoped = daemon.create_key("scoped", models=["something-else"])

    assert [m.id for m in client.models.list()] == ["tiny"]
    scoped_client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=scoped, max_retries=0)
    assert [m.id for m in scoped_client.models.list()] == []
    scoped_client.close()


def test_every_response_carries_server_timing(gateway):
    daemon, _, _, key = gateway
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 2}

    responses = [
        httpx.post(daemon.base_url + "/v1/chat/completions", json=body, headers=headers),
        httpx.post(daemon.base_url + "/v1/chat/completions", json={**body, "model": "nope"}, headers=headers),
        httpx.get(daemon.base_url + "/v1/models", headers=headers),
        httpx.get(daemon.base_url + "/health"),
    ]

    for response in responses:
        timing = response.headers.get("server-timing", "")
        assert "gateway;dur=" in timing, (response.request.url, timing)
        assert "upstream;dur=" in timing, (response.request.url, timing)


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_an_image_for_a_llama_server_without_a_projector_is_the_clients_400_not_the_providers_failure(gateway):
    daemon, server, client, _ = gateway
    looking = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, IMAGE]}]
    direct = httpx.post(f"{server.base_url}/v1/chat/completions", json={"messages": looking}, timeout=10)
    assert direct.status_code == 500, "llama-server itself answers 500: without Corral's check, the provider's fault"

    for _ in range(5):  # more than the circuit breaker's threshold of failures
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="tiny", messages=looking, max_tokens=4)
        assert refused.value.code == "unsupported_input"
        assert refused.value.param == "messages[0].content[1]"
        assert "--mmproj" in refused.value.message

    provider = daemon.admin_call("GET", "/providers/local").json()
    assert (provider["state"], provider["errors"]) == ("ready", 0)
    assert client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION).choices
