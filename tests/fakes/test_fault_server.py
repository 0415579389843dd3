"""The fault server answers like llama-server, and each fault mode does what it says to real httpx and SDK clients."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import openai
import pytest

from tests.fakes.fault_server import FaultServer
from tests.testbed.waiting import wait_for

T = TypeVar("T")
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "say something nice"}]}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", total_slots=4) as running:
        yield running


@pytest.fixture
def http(server: FaultServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        yield client


@pytest.fixture
def sdk(server: FaultServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=5.0) as client:
        yield client


def _data_frames(client: httpx.Client, body: dict[str, object]) -> list[str]:
    """The `data:` payloads of a streamed chat answer, read until the stream ends (cleanly or not)."""
    frames: list[str] = []
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                frames.append(line.removeprefix("data: "))
    return frames


def _drain(items: Iterable[T], into: list[T]) -> None:
    for item in items:
        into.append(item)


def _stream_body(include_usage: bool = True) -> dict[str, object]:
    return {**CHAT, "stream": True, "stream_options": {"include_usage": include_usage}}


# --- llama-server's routes in "ok" mode ---


def test_health_props_and_models_answer_like_llama_server(http: httpx.Client, sdk: openai.OpenAI):
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/props").json()["total_slots"] == 4
    assert [model.id for model in sdk.models.list()] == ["tiny"]


def test_ok_chat_answers_deterministically_with_usage(sdk: openai.OpenAI):
    first = sdk.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "say something nice"}])
    second = sdk.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "say something nice"}])

    assert first.choices[0].message.content == second.choices[0].message.content == "fault-server reply"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (3, 2, 5)


def test_ok_stream_sends_one_word_per_chunk_then_usage_then_done(http: httpx.Client, sdk: openai.OpenAI):
    frames = _data_frames(http, _stream_body())
    chunks = list(sdk.chat.completions.create(**_stream_body()))  # type: ignore[call-overload]

    assert frames[-1] == "[DONE]"
    assert [chunk.choices[0].delta.content for chunk in chunks if chunk.choices] == ["fault-server", " reply", None]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 5


def test_stream_without_include_usage_has_no_usage_chunk(http: httpx.Client):
    frames = _data_frames(http, _stream_body(include_usage=False))

    assert frames[-1] == "[DONE]"
    assert all(json.loads(frame).get("usage") is None for frame in frames[:-1])


def test_text_completions_answer_and_stream(sdk: openai.OpenAI):
    answer = sdk.completions.create(model="tiny", prompt="once upon")
    chunks = list(sdk.completions.create(model="tiny", prompt="once upon", stream=True))

    assert answer.choices[0].text == "fault-server reply"
    assert "".join(chunk.choices[0].text for chunk in chunks) == "fault-server reply"


def test_embeddings_are_deterministic_in_floats_and_base64(sdk: openai.OpenAI, http: httpx.Client):
    via_sdk = sdk.embeddings.create(model="tiny", input=["alpha", "beta"])  # the SDK asks for base64
    as_floats = http.post("/v1/embeddings", json={"model": "tiny", "input": ["alpha", "beta"]}).json()

    assert [item.embedding for item in via_sdk.data] == [item["embedding"] for item in as_floats["data"]]
    assert len(via_sdk.data[0].embedding) == 8
    assert via_sdk.data[0].embedding != via_sdk.data[1].embedding


# --- "status" and "times" ---


def test_status_429_raises_rate_limit_error_with_retry_after(server: FaultServer, sdk: openai.OpenAI):
    server.set_mode("status", status=429, retry_after=7)

    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.body == {
        "code": 429,
        "message": "fault-server: injected 429",
        "type": "rate_limit_error",
        "param": None,
    }


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
def test_status_raises_the_matching_sdk_error(server: FaultServer, sdk: openai.OpenAI, status: int, error: type):
    server.set_mode("status", status=status, message="boom")

    with pytest.raises(error) as raised:
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]

    assert raised.value.status_code == status
    assert raised.value.message.endswith("boom")


def test_times_reverts_to_ok_after_k_requests(server: FaultServer, http: httpx.Client):
    server.set_mode("status", status=500, times=2)

    statuses = [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(4)]

    assert statuses == [500, 500, 200, 200]
    assert server.mode == "ok"


def test_health_and_props_do_not_use_up_times(server: FaultServer, http: httpx.Client):
    server.set_mode("status", status=502, times=1)

    assert http.get("/health").status_code == 200
    assert http.get("/props").status_code == 200
    assert http.post("/v1/chat/completions", json=CHAT).status_code == 502
    assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_set_mode_rejects_unknown_modes_options_and_times(server: FaultServer):
    with pytest.raises(ValueError, match="unknown mode"):
        server.set_mode("explode")
    with pytest.raises(TypeError, match="delay_s"):
        server.set_mode("status", delay_s=1)
    with pytest.raises(ValueError, match="times"):
        server.set_mode("hang", times=0)


# --- "hang" ---


def test_hang_times_out_a_short_client_timeout_and_counts_the_disconnect(server: FaultServer):
    server.set_mode("hang")

    with (
        openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=0.3) as sdk,
        pytest.raises(openai.APITimeoutError),
    ):
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]

    wait_for(lambda: server.disconnects == 1 and server.in_flight == 0, "the disconnect to be counted", 2.0)


def test_hang_does_not_block_shutdown():
    with (
        FaultServer() as server,
        httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        server.set_mode("hang")
        pending = pool.submit(http.post, "/v1/chat/completions", json=CHAT)
        wait_for(lambda: server.in_flight == 1, "the request to hang", 2.0)

        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started

        assert stopped_in < 2.0
        assert pending.result(timeout=2.0).status_code == 503


def test_in_flight_counts_requests_being_handled(server: FaultServer):
    server.set_mode("hang")
    with httpx.Client(base_url=server.base_url, timeout=0.5) as http, ThreadPoolExecutor(3) as pool:
        hanging = [pool.submit(http.post, "/v1/chat/completions", json=CHAT) for _ in range(3)]
        wait_for(lambda: server.in_flight == 3, "three requests in flight", 2.0)
        for future in hanging:
            with pytest.raises(httpx.ReadTimeout):
                future.result(timeout=2.0)

    wait_for(lambda: server.in_flight == 0, "no request in flight", 2.0)
    assert server.peak_in_flight == 3


# --- "cut_stream" ---


def test_cut_stream_ends_before_done(server: FaultServer, http: httpx.Client):
    server.set_mode("cut_stream", after_chunks=1)

    with pytest.raises(httpx.RemoteProtocolError):
        _data_frames(http, _stream_body())

    received: list[bytes] = []
    with (
        http.stream("POST", "/v1/chat/completions", json=_stream_body()) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        _drain(response.iter_bytes(), into=received)

    assert b"".join(received).count(b"data: ") == 1
    assert b"[DONE]" not in b"".join(received)


def test_cut_stream_gives_the_sdk_fewer_chunks_and_no_usage(server: FaultServer, sdk: openai.OpenAI):
    server.set_mode("cut_stream")
    chunks: list[openai.types.chat.ChatCompletionChunk] = []

    with (
        sdk.chat.completions.create(**_stream_body()) as stream,
        pytest.raises(  # type: ignore[call-overload]
            openai.APIConnectionError
        ),
    ):
        _drain(stream, into=chunks)

    assert [chunk.choices[0].delta.content for chunk in chunks] == ["fault-server", " reply"]
    assert all(chunk.usage is None for chunk in chunks)


def test_cut_stream_truncates_a_non_streaming_answer(server: FaultServer, sdk: openai.OpenAI, http: httpx.Client):
    server.set_mode("cut_stream", times=2)

    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=CHAT)
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]


# --- "garbage_sse", "slow", "loading" ---


def test_garbage_sse_sends_malformed_frames_and_no_done(server: FaultServer, http: httpx.Client, sdk: openai.OpenAI):
    server.set_mode("garbage_sse")

    with http.stream("POST", "/v1/chat/completions", json=_stream_body()) as response:
        received = response.read()
    with pytest.raises(ValueError, match="Expecting property name"):
        list(sdk.chat.completions.create(**_stream_body()))  # type: ignore[call-overload]

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert received.startswith(b"data: {not json\n\n")
    assert b"[DONE]" not in received


def test_slow_delays_the_first_byte_and_each_chunk(server: FaultServer, http: httpx.Client):
    server.set_mode("slow", delay_s=0.1)
    started = time.monotonic()
    arrivals: list[float] = []

    with http.stream("POST", "/v1/chat/completions", json=_stream_body()) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)

    assert arrivals[0] >= 0.1
    assert min(later - earlier for earlier, later in itertools.pairwise(arrivals)) >= 0.07
    assert len(arrivals) == 5  # two words, the finish chunk, usage, [DONE]


def test_slow_delays_a_non_streaming_answer(server: FaultServer, http: httpx.Client):
    server.set_mode("slow", delay_s=0.3)
    started = time.monotonic()

    response = http.post("/v1/chat/completions", json=CHAT)

    assert time.monotonic() - started >= 0.3
    assert response.json()["choices"][0]["message"]["content"] == "fault-server reply"


def test_loading_makes_health_and_chat_answer_503(server: FaultServer, http: httpx.Client, sdk: openai.OpenAI):
    server.set_mode("loading")

    health = http.get("/health")
    with pytest.raises(openai.InternalServerError) as raised:
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]

    assert health.status_code == 503
    assert health.json() == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    assert raised.value.status_code == 503
    assert raised.value.message.endswith("Loading model")


# --- what is recorded ---


def test_requests_are_recorded_with_headers_and_body(server: FaultServer, sdk: openai.OpenAI, http: httpx.Client):
    sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    http.get("/health")

    (method, path, headers, body), health = server.requests

    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["authorization"] == "Bearer x"
    assert body == CHAT
    assert health == ("GET", "/health", health.headers, None)


def test_client_leaving_a_slow_stream_counts_as_a_disconnect(server: FaultServer, http: httpx.Client):
    server.set_mode("slow", delay_s=0.2)

    with http.stream("POST", "/v1/chat/completions", json=_stream_body()) as response:
        next(response.iter_lines())

    wait_for(lambda: server.disconnects == 1 and server.in_flight == 0, "the disconnect to be counted", 2.0)


def test_completed_answers_do_not_count_as_disconnects(server: FaultServer, http: httpx.Client):
    _data_frames(http, _stream_body())
    http.post("/v1/chat/completions", json=CHAT)

    wait_for(lambda: server.in_flight == 0, "no request in flight", 2.0)
    assert server.disconnects == 0


@pytest.mark.asyncio
async def test_concurrent_async_requests_are_all_answered_and_counted(server: FaultServer):
    server.set_mode("slow", delay_s=0.2)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
        responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(4)))

    assert [response.status_code for response in responses] == [200] * 4
    assert server.peak_in_flight == 4
