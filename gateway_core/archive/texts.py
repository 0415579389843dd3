"""What full-text search indexes of a request: the words a person wrote and read, never the JSON's keys.

Of a request: every message's content (a string, or the text parts of a list), the completions `prompt`, the
embeddings `input`. Of an answer: each choice's message content or completion text (a streamed answer is
already text), and an error's message.
"""

from __future__ import annotations

from typing import Any


def request_text(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    parts: list[str] = []
    messages = document.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                _content(message.get("content"), parts)
    for field in ("prompt", "input"):
        _strings(document.get(field), parts)
    return "\n".join(parts)


def answer_text(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    parts: list[str] = []
    choices = document.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if isinstance(message, dict):
                _content(message.get("content"), parts)
            _strings(choice.get("text"), parts)
    error = document.get("error")
    if isinstance(error, dict):
        _strings(error.get("message"), parts)
    return "\n".join(parts)


def _content(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):  # content parts: only the text ones are words
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])


def _strings(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, list):  # a batch of prompts or inputs; token arrays are not words
        parts.extend(item for item in value if isinstance(item, str))
