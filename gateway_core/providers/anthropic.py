"""The Anthropic Messages API adapter: OpenAI chat-completions requests and answers translated both ways.

Pure translation, no I/O: the gateway sends `to_anthropic_request(...)` to `POST {base_url}/v1/messages` with
`request_headers(...)`, and turns the answer back with `from_anthropic_response` or `AnthropicStreamTranslator`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway_core.providers.anthropic_stream import (
    AnthropicStreamTranslator,
    TokenUsage,
    error_from_anthropic,
    finish_reason,
    prompt_tokens,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "AnthropicStreamTranslator",
    "AnthropicTranslationError",
    "TokenUsage",
    "error_from_anthropic",
    "from_anthropic_response",
    "request_headers",
    "to_anthropic_request",
]

ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients usually leave it out.
DEFAULT_MAX_TOKENS = 4096
_SYSTEM_ROLES = ("system", "developer")


class AnthropicTranslationError(ValueError):
    """An OpenAI request the Anthropic Messages API cannot express; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def request_headers(api_key: str | None) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def to_anthropic_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """The Messages API body for an OpenAI /v1/chat/completions body, sent to `upstream_model`."""
    _refuse_unsupported_options(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise AnthropicTranslationError("messages must be a non-empty list of chat messages", "messages")
    system, turns = _split_messages(messages)
    if not turns:
        raise AnthropicTranslationError(
            "messages holds only system messages; add at least one user message", "messages"
        )
    request: dict[str, Any] = {"model": upstream_model, "messages": turns, "max_tokens": _max_tokens(body)}
    if system:
        request["system"] = system
    _copy_sampling(body, request)
    _copy_tools(body, request)
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    return request


def from_anthropic_response(resp: dict[str, Any], public_model: str) -> dict[str, Any]:
    """An OpenAI chat.completion object for a (non-streaming) Anthropic Messages API response."""
    blocks = resp.get("content") or []
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    tool_calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = resp.get("usage") or {}
    prompt = prompt_tokens(usage)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "id": f"chatcmpl-{resp.get('id', 'anthropic')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": public_model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.get("stop_reason")),
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": arguments}}


def _refuse_unsupported_options(body: dict[str, Any]) -> None:
    if (body.get("n") or 1) != 1:
        raise AnthropicTranslationError(
            "n > 1 is not supported for Anthropic models, which return one choice; send n separate requests", "n"
        )
    if body.get("logprobs") or body.get("top_logprobs"):
        raise AnthropicTranslationError(
            "logprobs are not available from Anthropic models; remove logprobs and top_logprobs", "logprobs"
        )
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        raise AnthropicTranslationError(
            f"response_format {response_format.get('type')!r} is not supported for Anthropic models; "
            "describe the wanted JSON in the prompt or use a tool instead",
            "response_format",
        )
    if "audio" in (body.get("modalities") or []):
        raise AnthropicTranslationError(
            "audio output is not supported for Anthropic models; ask for text only", "modalities"
        )


def _max_tokens(body: dict[str, Any]) -> int:
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(param)
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AnthropicTranslationError(f"{param} must be a positive integer", param)
    return value


def _copy_sampling(body: dict[str, Any], request: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise AnthropicTranslationError(
                "temperature must be between 0 and 1 for Anthropic models (OpenAI's range goes to 2)", "temperature"
            )
        request["temperature"] = temperature
    if body.get("top_p") is not None:
        request["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(item, str) for item in stops):
            raise AnthropicTranslationError("stop must be a string or a list of strings", "stop")
        if stops:
            request["stop_sequences"] = stops
    if body.get("stream"):
        request["stream"] = True


def _copy_tools(body: dict[str, Any], request: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise AnthropicTranslationError("tools must be a list of function tools", "tools")
        request["tools"] = [_tool(tool) for tool in tools]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        request["tool_choice"] = choice


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise AnthropicTranslationError(
            'only function tools ({"type": "function", "function": {...}}) are supported for Anthropic models', "tools"
        )
    function = tool["function"]
    if not function.get("name"):
        raise AnthropicTranslationError("every function tool needs a name", "tools")
    translated = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        translated["description"] = function["description"]
    return translated


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function" and (choice.get("function") or {}).get("name"):
        return {"type": "tool", "name": choice["function"]["name"]}
    raise AnthropicTranslationError(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
        "tool_choice",
    )


def _split_messages(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The joined system prompt, and the user/assistant turns with same-role neighbours merged."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        param = f"messages[{position}]"
        if not isinstance(message, dict):
            raise AnthropicTranslationError(f"{param} must be an object with a role and content", param)
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            text = "".join(block["text"] for block in _content_blocks(message.get("content"), param, images=False))
            if text:
                system.append(text)
            continue
        anthropic_role, blocks = _turn(message, param)
        if not blocks:
            continue  # Anthropic refuses empty turns; an empty message adds nothing
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    for turn in turns:
        # Anthropic wants tool results ahead of any other content in a user turn.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(system), turns


def _turn(message: dict[str, Any], param: str) -> tuple[str, list[dict[str, Any]]]:
    role = message.get("role")
    if role == "user":
        return "user", _content_blocks(message.get("content"), param, images=True)
    if role == "assistant":
        blocks = _content_blocks(message.get("content"), param, images=False)
        return "assistant", blocks + [_tool_use(call, param) for call in message.get("tool_calls") or []]
    if role == "tool":
        return "user", [_tool_result(message, param)]
    raise AnthropicTranslationError(
        f"{param} has role {role!r}, which Anthropic models do not support; "
        "use system, developer, user, assistant or tool",
        f"{param}.role",
    )


def _content_blocks(content: Any, param: str, *, images: bool) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise AnthropicTranslationError(
            f"{param}.content must be a string or a list of content parts", f"{param}.content"
        )
    blocks = []
    for index, part in enumerate(content):
        block = _content_part(part, f"{param}.content[{index}]", images=images)
        if block is not None:
            blocks.append(block)
    return blocks


def _content_part(part: Any, param: str, *, images: bool) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise AnthropicTranslationError(f"a {kind} part in {param} needs a string {kind!r} field", param)
        return {"type": "text", "text": text} if text else None
    if kind == "image_url" and images:
        return _image_block(part.get("image_url"), param)
    if kind == "image_url":
        raise AnthropicTranslationError(
            f"{param} is an image_url part, but Anthropic models take images only in user messages; move it there",
            param,
        )
    raise AnthropicTranslationError(
        f"{param} is a {kind!r} part, which Anthropic models cannot take through Corral; "
        "send text parts (and image_url parts in user messages)",
        param,
    )


def _image_block(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise AnthropicTranslationError(f"an image_url part in {param} needs a url", param)
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, _, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if encoding != "base64" or not media_type or not data:
        raise AnthropicTranslationError(
            f"an image data URL in {param} must look like data:image/png;base64,<data>", param
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
        raise AnthropicTranslationError(
            f"every tool call in {param} needs an id and a function name", f"{param}.tool_calls"
        )
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        raise AnthropicTranslationError(
            f"the arguments of tool call {call['id']!r} in {param} are not valid JSON", f"{param}.tool_calls"
        ) from None
    if not isinstance(arguments, dict):
        raise AnthropicTranslationError(
            f"the arguments of tool call {call['id']!r} in {param} must be a JSON object", f"{param}.tool_calls"
        )
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(message: dict[str, Any], param: str) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise AnthropicTranslationError(f"{param} is a tool message without a tool_call_id", f"{param}.tool_call_id")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
    blocks = _content_blocks(message.get("content"), param, images=False)
    if blocks:
        result["content"] = blocks
    return result
