"""A streamed answer as the archive keeps it: the text the client assembled from the SSE frames, not the frames.

The pipeline calls `StreamCapture.add` with every chunk it sends the client; that is one list append. The
frames are parsed only when the record is written (`text()`, in the archive's writer thread), or, on a long
stream, each time the raw bytes pass COMPACT_AT_BYTES: then they are folded into text on the event loop (about
2 ms per 256 KiB of chat frames), so a stream of any length holds at most that much raw plus the capped text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway_core.archive.bodies import cut_utf8

COMPACT_AT_BYTES = 256 * 1024


@dataclass(slots=True)
class _ToolCall:
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    calls: dict[int, _ToolCall] = field(default_factory=dict)


class StreamCapture:
    """Implements contracts/archive.py's StreamFrames for OpenAI chat and completions streams.

    `text()` is what a client concatenating the deltas got: choice 0's `delta.content` (chat) or `text`
    (completions); other choices after it, each under a line "--- choice N ---"; streamed tool calls as lines
    "[tool call NAME(ARGUMENTS)]"; an error frame as a line "[error: MESSAGE]". Past `body_cap` UTF-8 bytes of
    text, no more is kept (it is still counted) and the text is flagged as cut.
    """

    __slots__ = ("_cap", "_choices", "_errors", "_kept", "_raw", "_raw_bytes", "_seen", "_tail", "received_bytes")

    def __init__(self, body_cap: int) -> None:
        self._cap = body_cap
        self._raw: list[bytes] = []
        self._raw_bytes = 0  # bytes in _raw, not yet parsed
        self._tail = b""  # an unfinished frame left by the last compaction
        self._choices: dict[int, _Choice] = {}
        self._errors: list[str] = []
        self._kept = 0  # UTF-8 bytes of text kept
        self._seen = 0  # UTF-8 bytes of text seen, kept or not
        self.received_bytes = 0  # every byte the client was sent

    def add(self, chunk: bytes) -> None:
        self._raw.append(chunk)
        self._raw_bytes += len(chunk)
        if self._raw_bytes >= COMPACT_AT_BYTES:
            self._compact(final=False)

    @property
    def retained_bytes(self) -> int:
        """What this capture holds in memory, about: the archive's queue counts it against its byte bound."""
        return self._raw_bytes + len(self._tail) + self._kept

    @property
    def text_bytes(self) -> int:
        """The UTF-8 size of the whole answer's text, kept or not (the lines this class adds aside)."""
        self._compact(final=True)
        return self._seen

    def text(self) -> tuple[str, bool]:
        self._compact(final=True)
        parts: list[str] = []
        for index in sorted(self._choices):
            choice = self._choices[index]
            if index != 0:
                _line(parts, f"--- choice {index} ---")
                parts.append("\n")
            parts.extend(choice.content)
            for call_index in sorted(choice.calls):
                call = choice.calls[call_index]
                _line(parts, f"[tool call {''.join(call.name)}({''.join(call.arguments)})]")
        for message in self._errors:
            _line(parts, f"[error: {message}]")
        text = "".join(parts)
        truncated = self._seen > self._kept
        encoded = text.encode()
        if len(encoded) > self._cap:
            text, truncated = cut_utf8(encoded, self._cap).decode("utf-8", "replace"), True
        return text, truncated

    # -- parsing -------------------------------------------------------------------------------------

    def _compact(self, *, final: bool) -> None:
        if not self._raw and not (final and self._tail):
            return
        data = self._tail + b"".join(self._raw)
        self.received_bytes += self._raw_bytes
        self._raw.clear()
        self._raw_bytes = 0
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        *frames, self._tail = data.split(b"\n\n")
        if final:
            frames.append(self._tail)
            self._tail = b""
        for frame in frames:
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        data = [line[5:].removeprefix(b" ") for line in frame.split(b"\n") if line.startswith(b"data:")]
        if not data:
            return
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        error = event.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            if self._keep(text := str(message)):
                self._errors.append(text)
            return
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index")
        index = index if isinstance(index, int) else 0
        kept = self._choices.get(index)
        if kept is None:
            kept = self._choices[index] = _Choice()
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and self._keep(content):
                kept.content.append(content)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        call_index = call.get("index")
                        self._tool_call(kept, call_index if isinstance(call_index, int) else position, call)
            legacy = delta.get("function_call")  # the deprecated single-function form
            if isinstance(legacy, dict):
                self._tool_call(kept, 0, {"function": legacy})
        text = choice.get("text")
        if isinstance(text, str) and self._keep(text):
            kept.content.append(text)

    def _tool_call(self, choice: _Choice, index: int, call: dict[str, Any]) -> None:
        function = call.get("function")
        if not isinstance(function, dict):
            return
        kept = choice.calls.get(index)
        if kept is None:
            kept = choice.calls[index] = _ToolCall()
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str) and self._keep(name):
            kept.name.append(name)
        if isinstance(arguments, str) and self._keep(arguments):
            kept.arguments.append(arguments)

    def _keep(self, piece: str) -> bool:
        """Whether to keep `piece`: while the text is under the cap (past it, its size is still counted)."""
        if not piece:
            return False
        size = len(piece) if piece.isascii() else len(piece.encode())
        self._seen += size
        if self._kept >= self._cap:
            return False
        self._kept += size
        return True


def _line(parts: list[str], line: str) -> None:
    if parts and not parts[-1].endswith("\n"):
        parts.append("\n")
    parts.append(line)
