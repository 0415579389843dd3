"""A streamed answer is archived as the text its client assembled from the frames, bounded in memory and size."""

from __future__ import annotations

import orjson

from gateway_core.archive.capture import COMPACT_AT_BYTES, StreamCapture
from gateway_core.contracts.sse import error_frame


def chat_frame(content: str | None = None, index: int = 0, **delta: object) -> bytes:
    if content is not None:
        delta["content"] = content
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def completion_frame(text: str, index: int = 0) -> bytes:
    chunk = {"object": "text_completion", "choices": [{"index": index, "text": text, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def captured(chunks: list[bytes], cap: int = 64 * 1024) -> tuple[str, bool]:
    capture = StreamCapture(cap)
    for chunk in chunks:
        capture.add(chunk)
    return capture.text()


def test_chat_stream_text_is_the_concatenated_deltas_a_client_assembles():
    pieces = ["Par", "is", " is", " the capital", " of Fran", "ce. ", "Ça va? ", "日本語"]
    frames = [chat_frame(role="assistant"), *(chat_frame(p) for p in pieces), chat_frame(), DONE]

    assert captured(frames) == ("".join(pieces), False)


def test_frames_split_across_chunks_and_crlf_line_ends_assemble_the_same():
    stream = b"".join([chat_frame("Hello"), chat_frame(", world"), DONE]).replace(b"\n", b"\r\n")
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]

    assert captured(chunks) == ("Hello, world", False)


def test_completions_stream_text_is_the_concatenated_choice_texts():
    assert captured([completion_frame("Once upon"), completion_frame(" a time"), DONE]) == ("Once upon a time", False)


def test_other_choices_follow_choice_zero_each_under_its_own_line():
    frames = [chat_frame("first", 0), chat_frame("second", 1), chat_frame(" answer", 0), chat_frame(" one", 1), DONE]

    assert captured(frames) == ("first answer\n--- choice 1 ---\nsecond one", False)


def test_streamed_tool_calls_are_appended_as_lines_with_their_name_and_arguments():
    def call(index: int, name: str | None = None, arguments: str = "") -> bytes:
        function: dict[str, str] = {"arguments": arguments}
        if name is not None:
            function["name"] = name
        return chat_frame(
            tool_calls=[{"index": index, "id": f"call_{index}", "type": "function", "function": function}]
        )

    frames = [
        chat_frame("Let me check."),
        call(0, "get_weather", ""),
        call(0, arguments='{"city": '),
        call(0, arguments='"Paris"}'),
        call(1, "get_time", '{"tz": "CET"}'),
        DONE,
    ]

    text, cut = captured(frames)

    assert text == 'Let me check.\n[tool call get_weather({"city": "Paris"})]\n[tool call get_time({"tz": "CET"})]'
    assert cut is False


def test_an_error_frame_after_some_text_is_appended_as_an_error_line():
    frames = [chat_frame("Partial answ"), error_frame("the provider closed the stream", "upstream_error")]

    assert captured(frames) == ("Partial answ\n[error: the provider closed the stream]", False)


def test_a_long_stream_is_compacted_as_it_goes_and_gives_the_same_text():
    pieces = [f"token{i} " for i in range(30_000)]  # about 3 MB of frames, 300 KB of text
    capture = StreamCapture(body_cap=10 * 1024 * 1024)
    most_held = 0
    for piece in pieces:
        capture.add(chat_frame(piece))
        most_held = max(most_held, capture.retained_bytes)
    capture.add(DONE)

    text, cut = capture.text()

    assert (text, cut) == ("".join(pieces), False)
    assert sum(len(chat_frame(p)) for p in pieces) > 10 * COMPACT_AT_BYTES
    assert most_held < COMPACT_AT_BYTES + len(text) + 200  # the raw frames never piled up past the threshold


def test_past_the_cap_no_more_text_is_kept_and_the_text_is_flagged_as_cut():
    pieces = ["é" * 100 for _ in range(5_000)]  # 1 MB of text (2 bytes a character), cap 1 KiB
    capture = StreamCapture(body_cap=1024)
    for piece in pieces:
        capture.add(chat_frame(piece))

    text, cut = capture.text()

    assert cut is True
    assert text == "é" * 512  # 1,024 bytes: cut between characters, never inside one
    assert capture.text_bytes == 1_000_000
    assert capture.retained_bytes < COMPACT_AT_BYTES + 2 * 1024 + 200


def test_a_stream_with_nothing_but_done_is_empty_text():
    assert captured([DONE]) == ("", False)


def test_keep_alive_comments_and_non_json_data_are_ignored():
    assert captured([b": keep-alive\n\n", b"data: not json\n\n", chat_frame("ok"), DONE]) == ("ok", False)
