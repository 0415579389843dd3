"""The Anthropic adapter translates OpenAI chat requests to the Messages API and the answers back, streams included."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway_core.providers.anthropic import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    AnthropicStreamTranslator,
    AnthropicTranslationError,
    error_from_anthropic,
    from_anthropic_response,
    request_headers,
    to_anthropic_request,
)
from tests.fakes.anthropic_server import AnthropicFakeServer

MODEL = "claude-fake-1"
PUBLIC = "claude"


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_anthropic_request({"model": PUBLIC, **body}, MODEL)


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


def message_start(input_tokens: int = 12, **usage: int) -> bytes:
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
    }
    return sse("message_start", {"type": "message_start", "message": message})


def text_delta(text: str, index: int = 0) -> bytes:
    return sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
    )


def message_end(stop_reason: str = "end_turn", output_tokens: int = 3) -> bytes:
    return sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
    ) + sse("message_stop", {"type": "message_stop"})


def text_stream(*pieces: str, stop_reason: str = "end_turn") -> bytes:
    """Anthropic's event sequence for a text answer, as its API sends it."""
    return (
        message_start()
        + sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        + sse("ping", {"type": "ping"})
        + b"".join(text_delta(piece) for piece in pieces)
        + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        + message_end(stop_reason, output_tokens=len(pieces))
    )


TOOL_STREAM = (
    message_start()
    + sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    + text_delta("Let me check ✓.")
    + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    + sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
        },
    )
    + sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    )
    + sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    )
    + sse("content_block_stop", {"type": "content_block_stop", "index": 1})
    + message_end("tool_use", output_tokens=20)
)


def parse(frames: list[bytes]) -> list[Any]:
    """Each OpenAI SSE frame as JSON (or the string "[DONE]"), `created` dropped so runs compare equal."""
    parsed = []
    for frame in frames:
        assert frame.startswith(b"data: "), frame
        assert frame.endswith(b"\n\n"), frame
        data = frame[len(b"data: ") : -2]
        if data == b"[DONE]":
            parsed.append("[DONE]")
            continue
        payload = orjson.loads(data)
        payload.pop("created", None)
        parsed.append(payload)
    return parsed


def run_stream(data: bytes, include_usage: bool = True, pieces: Iterator[bytes] | None = None) -> list[Any]:
    translator = AnthropicStreamTranslator(PUBLIC, include_usage)
    frames: list[bytes] = []
    for piece in pieces if pieces is not None else [data]:
        frames.extend(translator.feed(piece))
    frames.extend(translator.finish())
    return parse(frames)


def content_of(parsed: list[Any]) -> str:
    return "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in parsed
        if isinstance(chunk, dict) and chunk.get("choices")
    )


def split_at(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    edges = [0, *sorted(cuts), len(data)]
    return (data[start:end] for start, end in itertools.pairwise(edges))


# Requests


def test_system_messages_become_the_top_level_system_prompt():
    request = translate(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
        ]
    )

    assert request["system"] == "You are terse.\n\nAnswer in French."
    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert request["model"] == MODEL


def test_a_request_without_system_messages_has_no_system_field():
    assert "system" not in translate()


def test_user_and_assistant_turns_keep_their_order_and_text():
    request = translate(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}]},
        ]
    )

    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        {"role": "user", "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}]},
    ]


def test_consecutive_messages_of_the_same_role_are_merged_into_one_turn():
    request = translate(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"},
        ]
    )

    assert [turn["role"] for turn in request["messages"]] == ["user", "assistant"]
    assert request["messages"][0]["content"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert request["messages"][1]["content"] == [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}]


def test_empty_messages_are_dropped_rather_than_sent_as_empty_turns():
    request = translate(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])

    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_data_url_images_become_base64_image_blocks():
    request = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ]
    )

    assert request["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }


def test_remote_image_urls_become_url_image_sources():
    request = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                ],
            }
        ]
    )

    assert request["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_a_data_url_that_is_not_base64_is_refused():
    with pytest.raises(AnthropicTranslationError, match="base64"):
        translate(
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain,hello"}}]}
            ]
        )


def test_max_tokens_defaults_to_4096_because_anthropic_requires_it():
    assert translate()["max_tokens"] == DEFAULT_MAX_TOKENS == 4096


def test_max_completion_tokens_is_preferred_over_max_tokens():
    assert translate(max_tokens=100, max_completion_tokens=50)["max_tokens"] == 50
    assert translate(max_tokens=100)["max_tokens"] == 100


def test_a_non_positive_max_tokens_is_refused_with_the_param_named():
    with pytest.raises(AnthropicTranslationError) as refused:
        translate(max_tokens=0)

    assert refused.value.param == "max_tokens"


def test_sampling_options_and_stream_are_carried_over():
    request = translate(temperature=0.3, top_p=0.9, stream=True, stop=["END", "STOP"], user="alice")

    assert request["temperature"] == 0.3
    assert request["top_p"] == 0.9
    assert request["stream"] is True
    assert request["stop_sequences"] == ["END", "STOP"]
    assert request["metadata"] == {"user_id": "alice"}


def test_a_single_stop_string_becomes_a_one_item_stop_sequence_list():
    assert translate(stop="END")["stop_sequences"] == ["END"]


def test_a_request_without_options_sends_none_of_them():
    request = translate()

    assert set(request) == {"model", "messages", "max_tokens"}


def test_temperature_beyond_anthropics_range_is_refused():
    with pytest.raises(AnthropicTranslationError, match="between 0 and 1") as refused:
        translate(temperature=1.5)

    assert refused.value.param == "temperature"


def test_n_greater_than_one_is_refused_saying_what_to_do():
    with pytest.raises(AnthropicTranslationError, match="separate requests") as refused:
        translate(n=2)

    assert refused.value.param == "n"


def test_an_unknown_role_is_refused_with_the_message_named():
    with pytest.raises(AnthropicTranslationError, match="'function'") as refused:
        translate(messages=[{"role": "user", "content": "hi"}, {"role": "function", "name": "f", "content": "x"}])

    assert refused.value.param == "messages[1].role"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("logprobs", True),
        ("response_format", {"type": "json_object"}),
        ("modalities", ["text", "audio"]),
    ],
)
def test_options_anthropic_cannot_honour_are_refused_not_ignored(option: str, value: Any):
    with pytest.raises(AnthropicTranslationError) as refused:
        translate(**{option: value})

    assert refused.value.param == option


def test_a_conversation_of_only_system_messages_is_refused():
    with pytest.raises(AnthropicTranslationError, match="user message"):
        translate(messages=[{"role": "system", "content": "be nice"}])


def test_unsupported_content_parts_are_refused():
    with pytest.raises(AnthropicTranslationError, match="input_audio"):
        translate(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])


def test_request_headers_carry_the_key_and_api_version():
    assert request_headers("sk-ant-1") == {
        "x-api-key": "sk-ant-1",
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    assert "x-api-key" not in request_headers(None)


# Tools


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_function_tools_become_anthropic_tools():
    request = translate(tools=[WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}])

    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("openai", "anthropic"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_maps_to_anthropics_equivalent(openai: Any, anthropic: dict[str, Any]):
    assert translate(tools=[WEATHER_TOOL], tool_choice=openai)["tool_choice"] == anthropic


def test_parallel_tool_calls_false_disables_parallel_tool_use():
    request = translate(tools=[WEATHER_TOOL], parallel_tool_calls=False)

    assert request["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_an_unknown_tool_choice_is_refused():
    with pytest.raises(AnthropicTranslationError) as refused:
        translate(tools=[WEATHER_TOOL], tool_choice="sometimes")

    assert refused.value.param == "tool_choice"


def test_non_function_tools_are_refused():
    with pytest.raises(AnthropicTranslationError, match="function tools"):
        translate(tools=[{"type": "web_search"}])


def test_tool_calls_round_trip():
    response = from_anthropic_response(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 30, "output_tokens": 10},
        },
        PUBLIC,
    )
    assistant = response["choices"][0]["message"]
    assert response["choices"][0]["finish_reason"] == "tool_calls"
    assert assistant["content"] is None
    assert assistant["tool_calls"] == [
        {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    ]

    # The client sends the call back with its result; Anthropic must see tool_use then tool_result.
    request = translate(
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C and sunny"},
        ],
    )

    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "18C and sunny"}],
                }
            ],
        },
    ]


def test_tool_results_lead_the_user_turn_they_are_merged_into():
    request = translate(
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "user", "content": "And tomorrow?"},
        ]
    )

    assert request["messages"][1]["content"][0] == {"type": "text", "text": "Checking."}
    assert [block["type"] for block in request["messages"][2]["content"]] == ["tool_result", "text"]


def test_tool_call_arguments_that_are_not_json_are_refused():
    with pytest.raises(AnthropicTranslationError, match="not valid JSON"):
        translate(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
                },
            ]
        )


# Responses


def anthropic_message(**fields: Any) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 2},
        **fields,
    }


def test_a_response_becomes_an_openai_chat_completion():
    response = from_anthropic_response(
        anthropic_message(content=[{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]), PUBLIC
    )

    assert response["id"] == "chatcmpl-msg_01"
    assert response["object"] == "chat.completion"
    assert isinstance(response["created"], int)
    assert response["model"] == PUBLIC
    assert response["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert response["usage"] == {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons_map_to_openai_finish_reasons(stop_reason: str | None, expected: str):
    response = from_anthropic_response(anthropic_message(stop_reason=stop_reason), PUBLIC)

    assert response["choices"][0]["finish_reason"] == expected


def test_max_tokens_stop_reason_maps_to_length():
    response = from_anthropic_response(anthropic_message(stop_reason="max_tokens"), PUBLIC)

    assert response["choices"][0]["finish_reason"] == "length"


def test_cached_input_tokens_count_as_prompt_tokens():
    usage = {"input_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20, "output_tokens": 7}

    response = from_anthropic_response(anthropic_message(usage=usage), PUBLIC)

    assert response["usage"] == {"prompt_tokens": 125, "completion_tokens": 7, "total_tokens": 132}


def test_anthropic_error_bodies_become_openai_errors():
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    assert error_from_anthropic(body) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }


# Streams


def test_stream_text_deltas_become_content_chunks_ending_with_done():
    parsed = run_stream(text_stream("Hel", "lo", "!"), include_usage=False)

    first = parsed[0]
    assert first["object"] == "chat.completion.chunk"
    assert first["id"] == "chatcmpl-msg_01"
    assert first["model"] == PUBLIC
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("role" not in chunk["choices"][0]["delta"] for chunk in parsed[1:-1])
    assert content_of(parsed) == "Hello!"
    assert parsed[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert parsed[-1] == "[DONE]"
    assert all("usage" not in chunk for chunk in parsed[:-1])


def test_stream_usage_chunk_comes_last_when_the_client_asked_for_it():
    parsed = run_stream(text_stream("a", "b"), include_usage=True)

    assert parsed[-1] == "[DONE]"
    assert parsed[-2]["choices"] == []
    assert parsed[-2]["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    assert all(chunk["usage"] is None for chunk in parsed[:-2])


def test_stream_usage_is_counted_even_when_the_client_did_not_ask():
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=False)

    translator.feed(message_start(input_tokens=4, cache_read_input_tokens=6))
    assert (translator.usage.prompt_tokens, translator.finished) == (10, False)
    translator.feed(text_delta("x") + message_end(output_tokens=9))

    assert translator.usage.prompt_tokens == 10
    assert translator.usage.completion_tokens == 9
    assert translator.usage.total_tokens == 19
    assert translator.finished
    assert translator.error is None


def test_stream_split_at_arbitrary_byte_boundaries_translates_identically():
    data = TOOL_STREAM
    whole = run_stream(data)
    rng = random.Random(20240601)

    for size in (1, 2, 3, 7, 64):
        assert run_stream(data, pieces=iter([data[i : i + size] for i in range(0, len(data), size)])) == whole
    for _ in range(50):
        cuts = rng.sample(range(1, len(data)), rng.randint(1, 40))
        assert run_stream(data, pieces=split_at(data, cuts)) == whole


def test_stream_split_inside_a_multibyte_character_keeps_the_text_intact():
    data = text_stream("héllo ✓", " 日本")
    cut = data.index("✓".encode()) + 1

    assert content_of(run_stream(data, pieces=split_at(data, [cut]))) == "héllo ✓ 日本"


def test_stream_with_crlf_line_endings_translates_identically_even_split_between_cr_and_lf():
    data = text_stream("one", " two")
    crlf = data.replace(b"\n", b"\r\n")
    whole = run_stream(data)

    assert run_stream(crlf) == whole
    assert run_stream(crlf, pieces=iter([crlf[i : i + 1] for i in range(len(crlf))])) == whole


def test_stream_tool_use_becomes_tool_call_deltas():
    parsed = run_stream(TOOL_STREAM, include_usage=False)
    calls = [
        chunk["choices"][0]["delta"]["tool_calls"][0]
        for chunk in parsed[:-1]
        if "tool_calls" in chunk["choices"][0]["delta"]
    ]

    assert content_of(parsed) == "Let me check ✓."
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(call["index"] == 0 for call in calls)
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'
    assert parsed[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_max_tokens_stop_reason_maps_to_length():
    parsed = run_stream(text_stream("cut", stop_reason="max_tokens"), include_usage=False)

    assert parsed[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_ping_events_produce_nothing():
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=True)

    assert translator.feed(sse("ping", {"type": "ping"}) + b": keep-alive comment\n\n") == []


def test_stream_error_event_becomes_an_error_frame_and_ends_the_stream():
    error = sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=True)

    frames = translator.feed(message_start() + text_delta("partial") + error + text_delta("after") + message_end())
    frames += translator.finish()
    parsed = parse(frames)

    assert parsed[-1] == {"error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}}
    assert "[DONE]" not in parsed
    assert content_of(parsed) == "partial"
    assert translator.finished
    assert translator.error == parsed[-1]


def test_stream_without_message_stop_ends_with_an_error_event_not_done():
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=True)
    frames = translator.feed(message_start() + text_delta("half an ans"))

    ending = parse(translator.finish())

    assert parse(frames)[-1] != "[DONE]"
    assert len(ending) == 1
    assert "ended before message_stop" in ending[0]["error"]["message"]
    assert ending[0]["error"]["type"] == "upstream_error"
    assert translator.finished


def test_stream_unreadable_event_data_ends_with_an_error_event():
    parsed = parse(AnthropicStreamTranslator(PUBLIC, include_usage=False).feed(message_start() + b"data: {nope\n\n"))

    assert "unreadable" in parsed[-1]["error"]["message"]


def test_finish_after_a_complete_stream_adds_nothing():
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=False)
    translator.feed(text_stream("done"))

    assert translator.finish() == []


# End to end against the local Anthropic-format server


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicFakeServer]:
    with AnthropicFakeServer() as server:
        yield server


def post(server: AnthropicFakeServer, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return client.post("/v1/messages", headers=request_headers(key or server.api_key), json=body)


def test_fake_server_answer_translates_back_to_a_chat_completion(anthropic_server: AnthropicFakeServer):
    openai_body = {
        "model": PUBLIC,
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hello there"},
        ],
    }

    answer = post(anthropic_server, to_anthropic_request(openai_body, MODEL))
    completion = from_anthropic_response(answer.json(), PUBLIC)

    assert answer.status_code == 200
    assert anthropic_server.requests[-1]["system"] == "Be kind."
    assert anthropic_server.requests[-1]["max_tokens"] == 4096
    assert anthropic_server.request_headers[-1]["anthropic-version"] == ANTHROPIC_VERSION
    assert completion["choices"][0]["message"]["content"] == "echo: hello there"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_fake_server_truncation_translates_to_finish_reason_length(anthropic_server: AnthropicFakeServer):
    body = to_anthropic_request(
        {"messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 3}, MODEL
    )

    completion = from_anthropic_response(post(anthropic_server, body).json(), PUBLIC)

    assert completion["choices"][0]["message"]["content"] == "echo: one two"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 3


def test_fake_server_stream_translates_back_with_content_and_usage(anthropic_server: AnthropicFakeServer):
    openai_body = {
        "model": PUBLIC,
        "stream": True,
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": "the quick brown fox"},
        ],
    }
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=True)
    frames: list[bytes] = []

    with (
        httpx.Client(base_url=anthropic_server.base_url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/messages",
            headers=request_headers(anthropic_server.api_key),
            json=to_anthropic_request(openai_body, MODEL),
        ) as response,
    ):
        assert response.status_code == 200
        for raw in response.iter_raw():
            frames.extend(translator.feed(raw))
    frames.extend(translator.finish())
    parsed = parse(frames)

    assert content_of(parsed) == "echo: the quick brown fox"
    assert parsed[-2]["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert parsed[-1] == "[DONE]"
    assert translator.finished
    assert translator.error is None


@pytest.mark.asyncio
async def test_fake_server_stream_translates_back_over_an_async_client(anthropic_server: AnthropicFakeServer):
    body = to_anthropic_request({"stream": True, "messages": [{"role": "user", "content": "async works"}]}, MODEL)
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=False)
    frames: list[bytes] = []

    async with (
        httpx.AsyncClient(base_url=anthropic_server.base_url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/messages",
            headers=request_headers(anthropic_server.api_key),
            json=body,
        ) as response,
    ):
        async for raw in response.aiter_raw():
            frames.extend(translator.feed(raw))
    frames.extend(translator.finish())

    assert content_of(parse(frames)) == "echo: async works"
    assert translator.usage.completion_tokens == 3


def test_fake_server_stream_cut_short_ends_with_an_error_not_done(anthropic_server: AnthropicFakeServer):
    anthropic_server.stream_fault = "cut"
    body = to_anthropic_request({"stream": True, "messages": [{"role": "user", "content": "a b c"}]}, MODEL)
    translator = AnthropicStreamTranslator(PUBLIC, include_usage=True)
    frames: list[bytes] = []

    with (
        httpx.Client(base_url=anthropic_server.base_url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/messages",
            headers=request_headers(anthropic_server.api_key),
            json=body,
        ) as response,
    ):
        for raw in response.iter_raw():
            frames.extend(translator.feed(raw))
    frames.extend(translator.finish())
    parsed = parse(frames)

    assert content_of(parsed) == "echo:"
    assert "[DONE]" not in parsed
    assert "ended before message_stop" in parsed[-1]["error"]["message"]


def test_fake_server_refuses_a_wrong_key_with_anthropics_error_shape(anthropic_server: AnthropicFakeServer):
    answer = post(anthropic_server, translate(), key="sk-ant-wrong")

    assert answer.status_code == 401
    assert answer.json() == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    assert error_from_anthropic(answer.json())["error"]["type"] == "authentication_error"


def test_fake_server_requires_the_version_header_and_max_tokens(anthropic_server: AnthropicFakeServer):
    with httpx.Client(base_url=anthropic_server.base_url, timeout=10) as client:
        no_version = client.post("/v1/messages", headers={"x-api-key": anthropic_server.api_key}, json=translate())
        body = translate()
        del body["max_tokens"]
        no_max_tokens = client.post("/v1/messages", headers=request_headers(anthropic_server.api_key), json=body)

    assert no_version.status_code == 400
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"]["message"].startswith("max_tokens")


AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        (
            [{"role": "user", "content": [{"type": "text", "text": "hear"}, AUDIO_PART]}],
            "messages[0].content[1]",
            "'input_audio' part",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}],
            "messages[0].content[0]",
            "'file' part",
        ),
        (
            [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]},
            ],
            "messages[1].content[0]",
            "only in user messages",
        ),
    ],
)
def test_a_part_anthropic_cannot_take_is_refused_naming_that_part(messages, param, words):
    with pytest.raises(AnthropicTranslationError) as refused:
        to_anthropic_request({"model": "claude", "messages": messages}, "claude-x")

    assert refused.value.param == param
    assert param in refused.value.message
    assert words in refused.value.message
