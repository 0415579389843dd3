"""OpenAI chat completions as the client reads them: the fields Corral's console and CLI use.

The gateway relays these from the upstream (renaming only the model), so they are OpenAI's shapes, not
Corral's: fields this does not list may be present, and an upstream may leave optional ones out.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: NotRequired[int]


class ChatMessage(TypedDict):
    role: str
    content: str | None
    tool_calls: NotRequired[list[dict[str, Any]]]


class ChatChoice(TypedDict):
    index: int
    message: ChatMessage
    finish_reason: str | None


class ChatCompletion(TypedDict):
    """A whole answer (`stream: false`)."""

    id: str
    object: str  # "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: NotRequired[CompletionUsage]


class ChatDelta(TypedDict, total=False):
    role: str
    content: str | None
    tool_calls: list[dict[str, Any]]


class ChunkChoice(TypedDict):
    index: int
    delta: ChatDelta
    finish_reason: str | None


class ChatCompletionChunk(TypedDict):
    """One frame of a streamed answer; the last one (asked for with include_usage) has no choices."""

    id: str
    object: str  # "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[CompletionUsage | None]  # null on every chunk but the last
