"""The known fields of OpenAI's chat completions, completions and embeddings requests, checked before routing.

A request is checked against these msgspec Structs (about a microsecond for a typical body, in the bench's
validation table) and then forwarded as the client sent it: the Structs only decide whether it is well-formed,
so fields they do not name (a provider's extensions, such as llama-server's `cache_prompt` or `n_probs`) pass
through untouched. The Structs are not tracked by the garbage collector (`gc=False`): they are trees of JSON
values, which cannot form a cycle, so tracking them would only add work.

What is checked is what no provider could accept: wrong JSON types, a missing required field, an unknown role
or content part, token counts below 1, negative temperatures, probabilities outside 0..1. Ranges a provider
sets for itself (OpenAI's temperature ceiling of 2, its four stop sequences) are left to that provider, which
answers 400 on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway_core.contracts.errors import GatewayError

NonEmpty = Annotated[str, Meta(min_length=1)]
TokenCount = Annotated[int, Meta(ge=1)]
Choices = Annotated[int, Meta(ge=1)]
Probability = Annotated[float, Meta(ge=0, le=1)]
Temperature = Annotated[float, Meta(ge=0)]
TopLogprobs = Annotated[int, Meta(ge=0)]
Stop = str | list[str] | None


# Content parts, told apart by their "type".
class TextPart(Struct, gc=False, tag_field="type", tag="text"):
    text: str


class ImageUrl(Struct, gc=False):
    url: NonEmpty
    detail: str | None = None


class ImagePart(Struct, gc=False, tag_field="type", tag="image_url"):
    image_url: ImageUrl


class InputAudio(Struct, gc=False):
    data: str
    format: str


class AudioPart(Struct, gc=False, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FilePart(Struct, gc=False, tag_field="type", tag="file"):
    file: dict[str, Any]


class RefusalPart(Struct, gc=False, tag_field="type", tag="refusal"):
    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart
Content = str | list[ContentPart] | None


class FunctionCall(Struct, gc=False):
    name: NonEmpty
    arguments: str


class ToolCall(Struct, gc=False):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


# Messages, told apart by their "role". Every role but the assistant's must carry "content" (null allowed).
class SystemMessage(Struct, gc=False, tag_field="role", tag="system"):
    content: Content
    name: str | None = None


class DeveloperMessage(Struct, gc=False, tag_field="role", tag="developer"):
    content: Content
    name: str | None = None


class UserMessage(Struct, gc=False, tag_field="role", tag="user"):
    content: Content
    name: str | None = None


class AssistantMessage(Struct, gc=False, tag_field="role", tag="assistant"):
    content: Content = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # the deprecated form of a tool call, still sent by older clients
    name: str | None = None
    refusal: str | None = None


class ToolMessage(Struct, gc=False, tag_field="role", tag="tool"):
    content: Content
    tool_call_id: str


class FunctionMessage(Struct, gc=False, tag_field="role", tag="function"):
    content: Content
    name: NonEmpty


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDefinition(Struct, gc=False):
    name: NonEmpty
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, gc=False):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Struct, gc=False):
    name: NonEmpty


class NamedToolChoice(Struct, gc=False):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormat(Struct, gc=False):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(Struct, gc=False):
    include_usage: bool | None = None


class Sampling(Struct, kw_only=True, gc=False):
    """The fields every generating route shares."""

    model: NonEmpty
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    n: Choices | None = None
    stop: Stop = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class ChatRequest(Sampling):
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_completion_tokens: TokenCount | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    modalities: list[str] | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    reasoning_effort: str | None = None


class CompletionRequest(Sampling):
    prompt: str | list[Any]
    logprobs: Annotated[int, Meta(ge=0)] | None = None
    echo: bool | None = None
    best_of: Choices | None = None
    suffix: str | None = None


class EmbeddingRequest(Struct, kw_only=True, gc=False):
    model: NonEmpty
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: TokenCount | None = None
    user: str | None = None


SCHEMAS: dict[str, type[Struct]] = {
    "chat": ChatRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}

# The input kinds a content part needs beyond text, named as llama-server's /props `modalities` names them.
MEDIA_KINDS: dict[type[Struct], str] = {ImagePart: "vision", AudioPart: "audio"}
NO_MEDIA: Mapping[str, str] = MappingProxyType({})

ROLES = "system, developer, user, assistant, tool or function"
PART_TYPES = "text, image_url, input_audio, file or refusal"
PROMPT_SHAPES = "a string, an array of strings, an array of token ids or an array of token-id arrays"
_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
# What an enumerated field accepts, by its path with indexes dropped: msgspec says only "invalid enum value".
_CHOICES = {
    "tool_choice": '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
    "tools[].type": '"function"',
    "response_format.type": '"text", "json_object" or "json_schema"',
    "encoding_format": '"float" or "base64"',
    "messages[].tool_calls[].type": '"function"',
}


def validate(route: str, body: dict[str, Any]) -> Mapping[str, str]:
    """Raise a 400 naming the first field of `body` that is not what OpenAI's API accepts for `route`.

    Returns the input kinds beyond text the request holds ("vision", "audio"), each with the first part holding
    one, so that it goes only to providers that take them.
    """
    try:
        request = msgspec.convert(body, SCHEMAS[route])
    except msgspec.ValidationError as error:
        raise _field_error(str(error)) from None
    if isinstance(request, ChatRequest):
        return _check_messages(request.messages)
    if isinstance(request, CompletionRequest):
        _check_prompt(request.prompt, "prompt", allow_empty=True)
    elif isinstance(request, EmbeddingRequest):
        _check_prompt(request.input, "input", allow_empty=False)
    return NO_MEDIA


def _check_messages(messages: list[Message]) -> Mapping[str, str]:
    media: dict[str, str] | None = None
    for position, message in enumerate(messages):
        if isinstance(message.content, list):
            for index, part in enumerate(message.content):
                kind = MEDIA_KINDS.get(type(part))
                if kind is not None:
                    media = media or {}
                    media.setdefault(kind, f"messages[{position}].content[{index}]")
        if not isinstance(message, AssistantMessage):
            continue
        if message.content is None and not message.tool_calls and message.function_call is None:
            raise _invalid(f"messages[{position}]", "an assistant message needs content or tool_calls")
    return media or NO_MEDIA


def _check_prompt(value: str | list[Any], param: str, *, allow_empty: bool) -> None:
    """Prompts and embedding inputs: msgspec cannot tell apart unions of several array types, so this does."""
    if isinstance(value, str):
        if not value and not allow_empty:
            raise _invalid(param, "must not be empty")
        return
    if not value:
        raise _invalid(param, f"must not be an empty array; expected {PROMPT_SHAPES}")
    first = value[0]
    ok: Callable[[object], bool]
    if isinstance(first, str):
        kind, ok = "strings", _is_text
    elif _is_token(first):
        kind, ok = "token ids", _is_token
    elif isinstance(first, list):
        kind, ok = "token-id arrays", _is_token_array
    else:
        raise _invalid(f"{param}[0]", f"expected {PROMPT_SHAPES}, got {_json_type(first)}")
    for position, item in enumerate(value):
        if not ok(item):
            raise _invalid(f"{param}[{position}]", f"{param} is an array of {kind}, but this item is not one")


def _is_text(item: object) -> bool:
    return isinstance(item, str)


def _is_token(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool) and item >= 0


def _is_token_array(item: object) -> bool:
    return isinstance(item, list) and bool(item) and all(map(_is_token, item))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "a string" if isinstance(value, str) else "an array"


def _humanize_types(union: str) -> str:
    """msgspec's `str | array | null` as "a string, an array or null"."""
    names = [_TYPE_NAMES.get(name, name) for name in union.split(" | ")]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _invalid(param: str, message: str) -> GatewayError:
    return GatewayError(400, f"{param}: {message}", param=param, code="invalid_field")


def _field_error(text: str) -> GatewayError:
    """msgspec's "Expected `int`, got `str` - at `$.messages[0].content`" as a 400 whose param is the path."""
    match = _ERROR.match(text)
    message, path = (match["message"], match["path"]) if match else (text, None)
    param = (path or "").removeprefix(".") or None
    if message.startswith("Object missing required field"):
        field = message.rpartition(" ")[2].strip("`")
        param = f"{param}.{field}" if param else field
        return GatewayError(400, f"'{param}' is required", param=param, code="missing_field")
    if message.startswith("Invalid value") and param:
        if param.endswith(".role"):
            message = f"{message}; a message's role is one of {ROLES}"
        elif param.endswith("].type") and ".content[" in param:
            message = f"{message}; a content part's type is one of {PART_TYPES}"
    elif message.startswith("Invalid enum value") and param:
        choices = _CHOICES.get(re.sub(r"\[\d+\]", "[]", param))
        if choices:
            message = f"{message}; expected {choices}"
    message = re.sub(r"`([^`]*)`", lambda found: _humanize_types(found[1]), message)
    message = message[0].lower() + message[1:] if message else "invalid value"
    return GatewayError(400, f"{param}: {message}" if param else message, param=param, code="invalid_field")
