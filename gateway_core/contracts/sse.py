"""Server-sent events on the wire: split a byte stream into frames without waiting for more than one frame."""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]"


class FrameSplitter:
    """Feed network chunks, get back the complete frames (each without its blank-line terminator)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        if b"\r" in self._buffer:
            self._buffer = self._buffer.replace(b"\r\n", b"\n")
        *frames, self._buffer = self._buffer.split(b"\n\n")
        return [frame for frame in frames if frame.strip()]

    @property
    def pending(self) -> bytes:
        return self._buffer


def error_frame(message: str, error_type: str = "upstream_error", code: str | None = None) -> bytes:
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"
