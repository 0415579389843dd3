"""What checking the OpenAI fields costs a request: `parse` against the same parse without the check, in one run.

Both sides read the same bytes with orjson and pull out what routing needs; only one of them also runs
`contracts.openai_request.validate`. They run in this process, alternating, best of several repeats, so the
difference is the validator's own CPU time per request. The end-to-end view of the same cost is the null
upstream's c=1 latency in the main tables.
"""

from __future__ import annotations

import timeit
from typing import Any

import orjson

from gateway_core.contracts.openai_request import NO_MEDIA
from gateway_core.contracts.request import ParsedRequest, parse

REPEATS = 7


def _bodies() -> dict[str, tuple[str, bytes]]:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    turns: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful assistant."}]
    for turn in range(15):
        turns.append({"role": "user", "content": f"Question {turn}: " + "words " * 40})
        turns.append({"role": "assistant", "content": f"Answer {turn}: " + "more words " * 20})
    return {
        "the load's chat body (1 message)": (
            "chat",
            orjson.dumps(
                {"model": "tiny", "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 8}
            ),
        ),
        "31-message chat with 4 tools": (
            "chat",
            orjson.dumps({"model": "tiny", "messages": turns, "tools": [tool] * 4, "temperature": 0.2}),
        ),
        "100 KB completions prompt": ("completions", orjson.dumps({"model": "tiny", "prompt": "x " * 50_000})),
        "64-input embeddings batch": ("embeddings", orjson.dumps({"model": "tiny", "input": ["some text"] * 64})),
    }


def _unchecked(route: str, raw: bytes) -> ParsedRequest:
    """The parse as it was before the validator: one orjson read and what routing needs, nothing else checked."""
    body = orjson.loads(raw)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise ValueError("the bench's bodies are valid")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    wants_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return ParsedRequest(
        route=route, body=body, model=body["model"], stream=stream, wants_usage=wants_usage, media=NO_MEDIA
    )


def _us_per_call(parser: Any, route: str, raw: bytes, number: int) -> float:
    return timeit.timeit(lambda: parser(route, raw), number=number) / number * 1e6


def measure(number: int = 20_000) -> list[dict[str, Any]]:
    rows = []
    for name, (route, raw) in _bodies().items():
        count = max(20, number * 300 // max(300, len(raw)))  # fewer rounds for the big bodies
        without = checked = float("inf")
        for _ in range(REPEATS):  # alternate the two sides, so drift hits both alike
            without = min(without, _us_per_call(_unchecked, route, raw, count))
            checked = min(checked, _us_per_call(parse, route, raw, count))
        rows.append(
            {
                "body": name,
                "bytes": len(raw),
                "without_us": round(without, 2),
                "with_us": round(checked, 2),
                "validator_us": round(checked - without, 2),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### What validating the OpenAI fields costs (in-process, best of repeats)",
        "",
        "| body | bytes | parse without the check µs | with it µs | the validator µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['body']} | {row['bytes']:,} | {row['without_us']:.2f} | {row['with_us']:.2f} "
            f"| {row['validator_us']:+.2f} |"
        )
    return [*lines, ""]


if __name__ == "__main__":
    print("\n".join(markdown(measure())))
