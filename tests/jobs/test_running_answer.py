"""A job's answer assembled from the stream its attempt read: what a non-streamed request would have had.

The frames here are the OpenAI chunks the pipeline relays (as llama-server and the Anthropic translation send
them); the end-to-end path runs in test_running.py and test_scheduler.py against a real llama-server.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway_core.jobs.runner import assemble


def frames(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "tiny"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_a_chat_answer_joins_the_content_and_keeps_the_finish_reason_and_usage():
    answer = orjson.loads(
        assemble(
            "chat",
            frames(
                {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {**HEAD, "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
                {**HEAD, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
                {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {**HEAD, "choices": [], "usage": USAGE, "timings": {"predicted_n": 3}},
            ),
        )
    )

    assert answer == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "timings": {"predicted_n": 3},
    }


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **fields: Any) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **fields}


def call(index: int, arguments: str, **fields: Any) -> dict[str, Any]:
    function = {"arguments": arguments, **({"name": fields.pop("name")} if "name" in fields else {})}
    return {"index": index, "function": function, **fields}


def test_tool_calls_arriving_in_pieces_are_joined_by_index():
    answer = orjson.loads(
        assemble(
            "chat",
            frames(
                chunk({"role": "assistant", "content": None}),
                chunk({"tool_calls": [call(0, "", id="call_1", type="function", name="get_weather")]}),
                chunk({"tool_calls": [call(0, '{"city": ')]}),
                chunk({"tool_calls": [call(0, '"Oslo"}'), call(1, "{}", id="call_2", name="get_time")]}),
                chunk({}, "tool_calls", usage=USAGE),
            ),
        )
    )

    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"type": "function", "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}},
        ],
    }


def test_reasoning_and_logprobs_are_kept_and_choices_stay_apart():
    token = {"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []}
    answer = orjson.loads(
        assemble(
            "chat",
            frames(
                {**HEAD, "choices": [{"index": 1, "delta": {"content": "b"}, "logprobs": {"content": [token]}}]},
                {**HEAD, "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
                {**HEAD, "choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": {"content": [token]}}]},
                {**HEAD, "choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": {"content": [token]}}]},
            ),
        )
    )

    first, second = answer["choices"]
    assert first["message"] == {"role": "assistant", "content": "aa", "reasoning_content": "think"}
    assert first["logprobs"] == {"content": [token, token]}
    assert (second["index"], second["message"]["content"]) == (1, "b")
    assert answer["usage"] is None  # the stream carried none


def test_a_text_completion_joins_its_text():
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "tiny"}
    answer = orjson.loads(
        assemble(
            "completions",
            frames(
                {**head, "choices": [{"index": 0, "text": "Once upon", "finish_reason": None}]},
                {**head, "choices": [{"index": 0, "text": " a time", "finish_reason": "length"}]},
                {**head, "choices": [], "usage": USAGE},
            ),
        )
    )

    assert answer["object"] == "text_completion"
    assert answer["choices"] == [{"index": 0, "text": "Once upon a time", "logprobs": None, "finish_reason": "length"}]
    assert answer["usage"] == USAGE
