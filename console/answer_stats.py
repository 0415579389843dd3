"""What the line under a chat answer says: who served it, how soon the first token came, how fast the rest did,
and how many tokens it took. Timing only; the chat log shows the line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway_core.client import ChatStream


@dataclass(frozen=True)
class AnswerStats:
    """What the line under an answer says: who served it, how soon, how fast, how many tokens."""

    provider: str | None
    first_token_s: float | None
    tokens_per_s: float | None
    completion_tokens: int
    prompt_tokens: int | None
    counted_by_server: bool  # False: the daemon sent no usage, so tokens are counted from chunks

    def line(self) -> str:
        parts = [f"via {self.provider or 'an unknown provider'}"]
        if self.first_token_s is not None:
            first = self.first_token_s
            parts.append(f"first token {first * 1000:.0f} ms" if first < 1 else f"first token {first:.2f} s")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        approx = "" if self.counted_by_server else "~"
        parts.append(f"{approx}{self.completion_tokens} tokens")
        return " · ".join(parts)


class AnswerMeter:
    """Times one answer: from sending to the first token, then the token rate after it."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first: float | None = None
        self.last: float | None = None
        self.chunks = 0

    def token(self) -> None:
        self.last = time.monotonic()
        self.first = self.first or self.last
        self.chunks += 1

    def stats(self, stream: ChatStream) -> AnswerStats:
        usage = stream.usage
        # Read with .get although the contract lists both: a relayed upstream's usage may leave either out.
        reported = usage.get("completion_tokens") if usage else None
        counted = isinstance(reported, int)
        tokens = reported if isinstance(reported, int) else self.chunks
        rate = None
        if self.first is not None and self.last is not None and self.last > self.first and tokens > 1:
            rate = (tokens - 1) / (self.last - self.first)
        first = None if self.first is None else self.first - self.started
        return AnswerStats(
            provider=stream.provider,
            first_token_s=first,
            tokens_per_s=rate,
            completion_tokens=tokens,
            prompt_tokens=usage.get("prompt_tokens") if usage else None,
            counted_by_server=counted,
        )
