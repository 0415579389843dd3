"""OpenAI fields are checked before routing: a bad field is the client's 400, naming it, and never goes upstream."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.openai_request import validate
from gateway_core.contracts.request import parse
from tests.fakes.fault_server import FaultServer

USER = {"role": "user", "content": "hi"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [USER], **fields}


def refusal(route: str, body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        validate(route, body)
    assert refused.value.status == 400
    return refused.value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (chat(stream_options=1), "stream_options", "expected an object or null, got an integer"),
        (chat(stream_options="yes"), "stream_options", "got a string"),
        (chat(stream_options=[]), "stream_options", "got an array"),
        (chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage", "expected a boolean"),
        (chat(tools=5), "tools", "expected an array or null"),
        (chat(tools=[{"type": "function"}]), "tools[0].function", "is required"),
        (chat(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name", "length >= 1"),
        (chat(tool_choice="sometimes"), "tool_choice", '"none", "auto", "required"'),
        (chat(response_format={"type": "xml"}), "response_format.type", '"text", "json_object" or "json_schema"'),
        (chat(response_format=5), "response_format", "expected an object or null"),
        (chat(stream="yes"), "stream", "expected a boolean"),
        (chat(max_tokens=0), "max_tokens", ">= 1"),
        (chat(max_tokens=2.5), "max_tokens", "got a number"),
        (chat(max_tokens=True), "max_tokens", "got a boolean"),
        (chat(max_completion_tokens=-1), "max_completion_tokens", ">= 1"),
        (chat(temperature="hot"), "temperature", "expected a number"),
        (chat(temperature=-0.5), "temperature", ">= 0"),
        (chat(top_p=1.5), "top_p", "<= 1"),
        (chat(n=0), "n", ">= 1"),
        (chat(stop=5), "stop", "expected a string, an array or null"),
        (chat(stop=["end", 3]), "stop[1]", "expected a string"),
        (chat(logprobs=3), "logprobs", "expected a boolean"),
        (chat(top_logprobs=-1), "top_logprobs", ">= 0"),
        (chat(seed="random"), "seed", "expected an integer"),
        ({"model": "", "messages": [USER]}, "model", "length >= 1"),
        ({"model": 7, "messages": [USER]}, "model", "expected a string"),
        ({"messages": [USER]}, "model", "is required"),
        ({"model": "tiny"}, "messages", "is required"),
        (chat(messages=[]), "messages", "length >= 1"),
        (chat(messages={"role": "user"}), "messages", "expected an array"),
        (chat(messages=["hi"]), "messages[0]", "expected an object"),
        (chat(messages=[USER, USER, {"role": "user", "content": 5}]), "messages[2].content", "got an integer"),
        (chat(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role", "system, developer, user"),
        (chat(messages=[{"content": "hi"}]), "messages[0].role", "is required"),
        (chat(messages=[{"role": "user"}]), "messages[0].content", "is required"),
        (chat(messages=[USER, {"role": "assistant"}]), "messages[1]", "needs content or tool_calls"),
        (chat(messages=[{"role": "tool", "content": "42"}]), "messages[0].tool_call_id", "is required"),
        (chat(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages[0].content[0].text", "required"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]),
            "messages[0].content[0].type",
            "text, image_url, input_audio, file or refusal",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}]),
            "messages[0].content[0].image_url",
            "expected an object",
        ),
        (
            chat(messages=[USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}]),
            "messages[1].tool_calls[0].function",
            "is required",
        ),
    ],
)
def test_a_bad_chat_field_is_refused_naming_it(body, param, words):
    error = refusal("chat", body)

    assert error.param == param
    assert error.code in ("invalid_field", "missing_field")
    assert words in error.message
    assert error.message.startswith(f"{param}:") or error.message == f"'{param}' is required"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "tiny"}, "prompt", "is required"),
        ({"model": "tiny", "prompt": {"text": "hi"}}, "prompt", "expected a string or an array"),
        ({"model": "tiny", "prompt": []}, "prompt", "must not be an empty array"),
        ({"model": "tiny", "prompt": ["a", 2]}, "prompt[1]", "array of strings"),
        ({"model": "tiny", "prompt": [1, 2, -3]}, "prompt[2]", "array of token ids"),
        ({"model": "tiny", "prompt": [[1], []]}, "prompt[1]", "array of token-id arrays"),
        ({"model": "tiny", "prompt": [True]}, "prompt[0]", "got a boolean"),
        ({"model": "tiny", "prompt": "hi", "logprobs": True}, "logprobs", "expected an integer"),
        ({"model": "tiny", "prompt": "hi", "echo": 1}, "echo", "expected a boolean"),
    ],
)
def test_a_bad_completions_field_is_refused_naming_it(body, param, words):
    error = refusal("completions", body)

    assert error.param == param
    assert words in error.message


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "tiny"}, "input", "is required"),
        ({"model": "tiny", "input": ""}, "input", "must not be empty"),
        ({"model": "tiny", "input": []}, "input", "must not be an empty array"),
        ({"model": "tiny", "input": [["a"]]}, "input[0]", "array of token-id arrays"),
        ({"model": "tiny", "input": "hi", "encoding_format": "hex"}, "encoding_format", '"float" or "base64"'),
        ({"model": "tiny", "input": "hi", "dimensions": 0}, "dimensions", ">= 1"),
    ],
)
def test_a_bad_embeddings_field_is_refused_naming_it(body, param, words):
    error = refusal("embeddings", body)

    assert error.param == param
    assert words in error.message


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("chat", chat()),
        ("chat", chat(messages=[{"role": "user", "content": None}])),  # the "string, null or parts"
        (
            "chat",
            chat(
                messages=[
                    {"role": "system", "content": "be brief"},
                    {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "42"},
                    {"role": "assistant", "content": "it is 42"},
                ],
                tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                tool_choice={"type": "function", "function": {"name": "f"}},
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=8,
                max_completion_tokens=8,
                temperature=0,
                top_p=1,
                n=1,
                stop=["\n"],
                logprobs=True,
                top_logprobs=2,
                seed=-1,
                presence_penalty=0.5,
                logit_bias={"15": -100},
                user="u-1",
                parallel_tool_calls=False,
            ),
        ),
        ("chat", chat(temperature=3.5, stop=["a", "b", "c", "d", "e"])),
        (
            "chat",  # the deprecated functions API, as older clients still send it
            chat(
                messages=[
                    USER,
                    {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
                    {"role": "function", "name": "f", "content": "42"},
                ],
                functions=[{"name": "f", "parameters": {}}],
                function_call="auto",
            ),
        ),  # the provider's own limits, not ours
        ("chat", chat(cache_prompt=True, n_probs=3, samplers=["top_k"], id_slot=0)),  # llama-server extensions
        ("completions", {"model": "tiny", "prompt": ""}),
        ("completions", {"model": "tiny", "prompt": ["a", "b"], "logprobs": 2, "echo": True, "best_of": 1}),
        ("completions", {"model": "tiny", "prompt": [1, 2, 3]}),
        ("completions", {"model": "tiny", "prompt": [[1, 2], [3]]}),
        ("embeddings", {"model": "tiny", "input": "hi", "encoding_format": "base64", "dimensions": 8}),
        ("embeddings", {"model": "tiny", "input": ["a", "b"]}),
        ("embeddings", {"model": "tiny", "input": [[1, 2], [3]]}),
    ],
)
def test_requests_openai_accepts_pass(route, body):
    validate(route, body)  # no error


def test_the_parsed_request_is_the_body_as_sent_extensions_and_all():
    raw = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"cache_prompt":true,"stream":true}'

    parsed = parse("chat", raw)

    assert parsed.body == {"model": "tiny", "messages": [USER], "cache_prompt": True, "stream": True}
    assert parsed.stream is True
    assert parsed.wants_usage is False


def test_stream_means_nothing_to_embeddings():
    parsed = parse("embeddings", b'{"model":"tiny","input":"hi","stream":true}')

    assert parsed.stream is False


@pytest.mark.asyncio
async def test_a_bad_field_is_answered_400_and_never_reaches_the_provider(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")

        refused = await gateway.chat(key, stream_options=1)
        also_refused = await gateway.chat(key, tools=5)

        for response in (refused, also_refused):
            assert response.status_code == 400
            assert response.headers["content-type"] == "application/json"
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            assert response.json()["error"]["type"] == "invalid_request_error"
        assert refused.json()["error"]["param"] == "stream_options"
        assert also_refused.json()["error"]["param"] == "tools"
        assert not [r for r in upstream.requests if r.path == "/v1/chat/completions"]
        provider = (await gateway.admin.get("/providers/local")).json()
        assert provider["state"] == "ready"
        assert provider["errors"] == 0


@pytest.mark.asyncio
async def test_extension_fields_reach_the_provider_untouched(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")

        answered = await gateway.chat(key, cache_prompt=True, n_probs=3, custom={"nested": [1, "x"]})

        assert answered.status_code == 200
        [sent] = [r.json for r in upstream.requests if r.path == "/v1/chat/completions"]
        assert sent["cache_prompt"] is True
        assert sent["n_probs"] == 3
        assert sent["custom"] == {"nested": [1, "x"]}


@pytest.mark.asyncio
async def test_the_official_sdk_raises_bad_request_naming_the_field(gateway):
    import openai

    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")

        async with gateway.openai(key) as client:
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(
                    model="tiny",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=0,
                )

        assert refused.value.param == "max_tokens"
        assert refused.value.code == "invalid_field"
        assert refused.value.request_id is not None


def test_images_and_audio_are_named_with_the_first_part_holding_them():
    parsed = parse(
        "chat",
        b'{"model":"tiny","messages":[{"role":"user","content":"hi"},{"role":"user","content":['
        b'{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"http://x/a.png"}},'
        b'{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}},'
        b'{"type":"image_url","image_url":{"url":"http://x/b.png"}}]}]}',
    )

    assert dict(parsed.media) == {"vision": "messages[1].content[1]", "audio": "messages[1].content[2]"}
    assert not parse("chat", b'{"model":"tiny","messages":[{"role":"user","content":"hi"}]}').media


@pytest.mark.asyncio
async def test_images_go_to_a_provider_that_says_it_takes_them_or_to_one_that_has_not_said(gateway):
    with FaultServer() as unknown, FaultServer() as blind:
        await gateway.add_provider("unknown", unknown.base_url, priority=0)
        await gateway.add_provider("blind", blind.base_url, priority=10)
        gateway.state.registry.get("blind").discovered_media = frozenset()  # as a llama-server's /props says
        key = await gateway.create_key("app")
        image = {"type": "image_url", "image_url": {"url": "http://x/a.png"}}

        answered = await gateway.chat(key, messages=[{"role": "user", "content": [image]}])
        text = await gateway.chat(key)

        assert answered.status_code == 200
        assert answered.headers["x-corral-provider"] == "unknown"
        assert text.headers["x-corral-provider"] == "blind", "text still goes to the higher priority"


@pytest.mark.asyncio
async def test_a_providers_400_reaches_the_client_and_is_not_counted_as_the_providers_error(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")
        upstream.set_mode("status", status=400, message="no such sampler", times=1)

        refused = await gateway.chat(key, samplers=["nonsense"])

        assert refused.status_code == 400
        assert "no such sampler" in refused.json()["error"]["message"]
        provider = (await gateway.admin.get("/providers/local")).json()
        assert (provider["state"], provider["errors"]) == ("ready", 0)
