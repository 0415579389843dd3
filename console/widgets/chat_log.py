"""The chat conversation as widgets: one entry per message, answers streamed in with buffered writes, and the
stats line shown under each answer.

Widgets show; the chat screen decides what to send and what an answer means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Markdown, Static

if TYPE_CHECKING:
    from gateway_core.client import ChatStream

# Writing every token to the Markdown stream makes the keyboard lag; 50 ms batches still look live.
FLUSH_INTERVAL_S = 0.05
NEAR_BOTTOM_LINES = 3
ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


class ChatEntry(Vertical):
    """One message: who said it, the Markdown body, and (for answers) a stats line."""

    def __init__(self, role: str, text: str = "", *, title: str | None = None) -> None:
        super().__init__(classes=f"chat-entry chat-{role}")
        self.role = role
        self.text = text
        self._title = title or ROLE_TITLES.get(role, role)

    def compose(self) -> ComposeResult:
        yield Static(self._title, classes="chat-role", markup=False)
        yield Markdown(self.text, classes="chat-body")
        yield Static("", classes="chat-stats", markup=False)

    @property
    def body(self) -> Markdown:
        return self.query_one(".chat-body", Markdown)

    @property
    def stats(self) -> Static:
        return self.query_one(".chat-stats", Static)

    def show_stats(self, line: str) -> None:
        self.stats.update(line)
        self.stats.add_class("-shown")


class ChatNote(Static):
    """A line in the conversation that is not a message: an error, or a note about the conversation."""

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(text, markup=False, classes="chat-note -error" if error else "chat-note")


class AnswerStream:
    """An answer being written: tokens are buffered and flushed into the Markdown stream on a short timer."""

    def __init__(self, log: ChatLog, entry: ChatEntry) -> None:
        self.entry = entry
        self._log = log
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._stream = Markdown.get_stream(entry.body)
        self._timer: Timer = log.set_interval(FLUSH_INTERVAL_S, self._flush, name="chat-answer-flush")
        self.finished = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, fragment: str) -> None:
        """Buffer a fragment; it shows within FLUSH_INTERVAL_S."""
        self._parts.append(fragment)
        self._pending.append(fragment)

    async def _flush(self) -> None:
        stream = self._stream
        if stream is None or not self._pending:
            return
        fragment = "".join(self._pending)
        self._pending.clear()
        follow = self._log.is_near_bottom()
        await stream.write(fragment)
        if follow:
            self._log.scroll_end(animate=False)

    async def finish(self, suffix: str = "", stats: str | None = None) -> str:
        """Stop streaming and render the whole answer once (plus `suffix`); returns the answer without it."""
        if self.finished:
            return self.text
        self.finished = True
        self._timer.stop()
        stream, self._stream = self._stream, None
        follow = self._log.is_near_bottom()
        # Only the tail goes in: a full update() re-parses and re-mounts every block of the answer, which for a
        # long one stalls the keyboard for as long (bench/README.md, "Console cost").
        tail = "".join(self._pending) + suffix
        self._pending.clear()
        await stream.write(tail)
        await stream.stop()
        self.entry.text = self.text + suffix
        if stats:
            self.entry.show_stats(stats)
        if follow:
            self._log.scroll_end(animate=False)
        return self.text


class ChatLog(VerticalScroll):
    """The scrolling conversation. It follows new output only while the reader is near the bottom."""

    def is_near_bottom(self) -> bool:
        return self.max_scroll_y - self.scroll_y <= NEAR_BOTTOM_LINES

    async def add_message(self, role: str, text: str) -> ChatEntry:
        entry = ChatEntry(role, text)
        await self._mount_following(entry)
        return entry

    async def add_note(self, text: str, *, error: bool = False) -> ChatNote:
        note = ChatNote(text, error=error)
        await self._mount_following(note)
        return note

    async def begin_answer(self, title: str = "Assistant") -> AnswerStream:
        entry = ChatEntry("assistant", title=title)
        await self._mount_following(entry)
        return AnswerStream(self, entry)

    async def clear_conversation(self) -> None:
        await self.remove_children()

    @property
    def entries(self) -> list[ChatEntry]:
        return list(self.query_children(ChatEntry))

    async def _mount_following(self, widget: ChatEntry | ChatNote) -> None:
        follow = self.is_near_bottom()
        await self.mount(widget)
        if follow:
            self.scroll_end(animate=False)


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
        usage = stream.usage or {}
        tokens = usage.get("completion_tokens")
        counted = isinstance(tokens, int)
        tokens = tokens if counted else self.chunks
        rate = None
        if self.first is not None and self.last is not None and self.last > self.first and tokens > 1:
            rate = (tokens - 1) / (self.last - self.first)
        first = None if self.first is None else self.first - self.started
        return AnswerStats(provider=stream.provider, first_token_s=first, tokens_per_s=rate,
                           completion_tokens=tokens, prompt_tokens=usage.get("prompt_tokens"),
                           counted_by_server=counted)
