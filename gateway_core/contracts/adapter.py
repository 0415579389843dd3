"""The provider adapter: what the pipeline asks of a provider type, whatever wire format it speaks.

The pipeline holds an `Adapter` for the provider it forwards to (providers/adapters.py picks one by
`ProviderConfig.type`). It never looks inside the upstream's bytes itself: the adapter builds the upstream
request, reads a whole answer, or hands back a `StreamRelay` that turns the upstream's stream into
OpenAI-style SSE frames for the client and counts usage on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gateway_core.contracts.request import ParsedRequest


@dataclass(slots=True)
class Usage:
    """Tokens one request used, as the upstream reported them (0 when it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class UpstreamCall(NamedTuple):
    """What to send upstream: `POST url` with `body` and `headers`."""

    url: str
    body: bytes
    headers: dict[str, str]


class StreamRelay(Protocol):
    """One streamed answer on its way through: upstream bytes in, the client's SSE bytes out.

    `feed` and `finish` may return b"" (nothing to send yet). The counters are read while the stream runs,
    for the live request view; `usage` is final once `finish` has been called.
    """

    @property
    def usage(self) -> Usage:
        """Token counts from the upstream's usage report (zeros until it comes)."""
        ...

    @property
    def finished(self) -> bool:
        """The upstream ended the answer properly ([DONE], or its own error frame), so nothing is cut."""
        ...

    @property
    def content_frames(self) -> int:
        """Frames that carried part of the answer: the live view's token count until usage arrives."""
        ...

    @property
    def has_content(self) -> bool:
        """The first answer text has been seen: the moment time-to-first-token is measured at."""
        ...

    def feed(self, chunk: bytes) -> bytes:
        """Relay a network chunk of the upstream's stream: the complete frames it finishes, translated."""
        ...

    def finish(self) -> bytes:
        """The upstream closed: b"" when the answer was complete, else an error frame for the client."""
        ...


class Adapter(Protocol):
    """How to talk to one provider type. Raises `GatewayError` (400) for a request the type cannot serve."""

    def build(self, parsed: ParsedRequest, upstream_model: str) -> UpstreamCall:
        """The upstream request for `parsed`, addressed to the provider's name for the model."""
        ...

    def response(self, raw: bytes, public_model: str) -> tuple[bytes, Usage]:
        """A whole (non-streamed) upstream answer as the client's OpenAI-shaped body, and its usage."""
        ...

    def stream(self, public_model: str, upstream_model: str, wants_usage: bool) -> StreamRelay:
        """A relay for one streamed answer; `wants_usage`: the client asked for the usage frame."""
        ...
