"""Messages between corral-core and its archive writer process: length-prefixed pickles over a pipe.

Pickle because both ends are the same program at the same version, started together (corral-core starts the
child from its own interpreter), and it carries the records as they are, a stream's capture included, for about
2 µs a row. Nothing else ever reads or writes these pipes.
"""

from __future__ import annotations

import pickle
import struct
import threading
from typing import IO, Any

LENGTH = struct.Struct("!I")  # each message's size, before it


class FrameWriter:
    """Writes whole messages; safe from several threads (one lock per message)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._stream.write(LENGTH.pack(len(data)))
            self._stream.write(data)
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.close()


def receive(stream: IO[bytes]) -> Any:
    """The next message; raises EOFError when the other end has closed (or died)."""
    header = _read_exactly(stream, LENGTH.size)
    return pickle.loads(_read_exactly(stream, LENGTH.unpack(header)[0]))


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe")
    return data
