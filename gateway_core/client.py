"""An async client for corral-core's admin socket, for the console, the `corral` CLI and headless scripts.

async with CorralClient() as client:
    print(await client.status())
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gateway_core.client_fleet import FleetCalls
from gateway_core.settings import default_data_dir, default_socket_path

DEFAULT_TIMEOUT_S = 30.0
# The daemon sends a keep-alive comment every 15 s, so a silent minute means it is gone.
EVENTS_READ_TIMEOUT_S = 60.0
# A model may load or think for a long time before its first token.
CHAT_READ_TIMEOUT_S = 600.0


class CorralError(Exception):
    """An error from the daemon (its OpenAI-shaped error body) or from talking to it (status None)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.error_type = error_type

    @classmethod
    def from_body(cls, status: int | None, body: Any, fallback: str) -> CorralError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(fallback, status=status)
        return cls(
            str(error.get("message") or fallback),
            status=status,
            param=error.get("param"),
            code=error.get("code"),
            error_type=error.get("type"),
        )


class DaemonNotRunning(CorralError):
    """Nothing answers on the admin socket: the file is missing or refuses connections."""


def _quoted(segment: str) -> str:
    return quote(segment, safe="")


def _root_cause(error: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        following = error.__cause__ or error.__context__
        if following is None:
            break
        error = following
    return error


def _error_from_response(response: httpx.Response, body: bytes) -> CorralError:
    request = response.request
    fallback = f"corral-core answered HTTP {response.status_code} to {request.method} {request.url.path}"
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return CorralError(f"{fallback}: {text[:300]}" if text else fallback, status=response.status_code)
    return CorralError.from_body(response.status_code, parsed, fallback)


async def _sse_frames(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """Yield (event kind or None, data) for each server-sent event; comments and ids are skipped."""
    kind: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield kind, "\n".join(data)
            kind, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
    if data:
        yield kind, "\n".join(data)


class ChatStream:
    """The chunks of one streamed chat completion, as parsed OpenAI chunk dicts.

    Iterate it with `async for`; after that, `provider` names who answered and `usage` holds the token
    counts when the daemon sent them (ask with `stream_options={"include_usage": True}`).
    Raises CorralError when the daemon refuses the request or the stream ends with an error frame.
    """

    def __init__(self, client: CorralClient, payload: dict[str, Any]) -> None:
        self.provider: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self._chunks = self._run(client, payload)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, client: CorralClient, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=CHAT_READ_TIMEOUT_S)
        async with client._stream("POST", "/v1/chat/completions", json=payload, timeout=timeout) as response:
            self.provider = response.headers.get("x-corral-provider")
            async for _, data in _sse_frames(response):
                if data.strip() == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as error:
                    raise CorralError(f"corral-core sent a stream frame that is not JSON: {data[:200]!r}") from error
                if not isinstance(chunk, dict):
                    raise CorralError(f"corral-core sent a stream frame that is not an object: {data[:200]!r}")
                if "error" in chunk:
                    raise CorralError.from_body(None, chunk, "the stream ended with an error")
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                self.model = chunk.get("model", self.model)
                yield chunk
        raise CorralError("the stream ended before the answer was complete (no [DONE])")


class CorralClient(FleetCalls):
    """The admin API over the Unix socket. Every method raises CorralError (DaemonNotRunning when nobody answers)."""

    def __init__(self, socket_path: str | Path | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket_path(default_data_dir())
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket_path)), base_url="http://corral", timeout=timeout
        )

    async def __aenter__(self) -> CorralClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ------------------------------------------------------------------------------------

    def _transport_error(self, error: httpx.TransportError) -> CorralError:
        cause = _root_cause(error)
        start = "Start it with `corral-core` or open the console with `corral`."
        if isinstance(error, httpx.ConnectError) and isinstance(cause, FileNotFoundError):
            return DaemonNotRunning(f"corral-core is not running (no socket at {self.socket_path}). {start}")
        if isinstance(error, httpx.ConnectError) and isinstance(cause, ConnectionRefusedError):
            return DaemonNotRunning(
                f"corral-core is not running (the socket at {self.socket_path} refuses connections). {start}"
            )
        if isinstance(cause, PermissionError):
            return CorralError(
                f"cannot open corral-core's socket at {self.socket_path}: permission denied; "
                "run as the user (or group) that owns it"
            )
        detail = str(error) or type(error).__name__
        return CorralError(f"lost contact with corral-core on {self.socket_path}: {detail}")

    async def _call(
        self, method: str, path: str, json: Any = None, read_timeout_s: float | None = None, **options: Any
    ) -> Any:
        return (await self._send(method, path, json=json, read_timeout_s=read_timeout_s, **options)).json()

    async def _call_text(self, method: str, path: str, read_timeout_s: float | None = None, **options: Any) -> str:
        return (await self._send(method, path, read_timeout_s=read_timeout_s, **options)).text

    async def _send(
        self, method: str, path: str, read_timeout_s: float | None = None, **options: Any
    ) -> httpx.Response:
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=read_timeout_s) if read_timeout_s else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(method, path, timeout=timeout, **options)
        except httpx.TransportError as error:
            raise self._transport_error(error) from error
        if response.status_code >= 400:
            raise _error_from_response(response, response.content)
        return response

    def _stream(
        self, method: str, path: str, *, json: Any = None, timeout: httpx.Timeout | None = None
    ) -> _CheckedStream:
        request = self._http.build_request(
            method, path, json=json, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT
        )
        return _CheckedStream(self, request)

    # -- daemon ---------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/health")

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/status")

    async def models(self) -> dict[str, list[str]]:
        """Public model name -> the names of the providers serving it."""
        return await self._call("GET", "/models")

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    async def gpus(self) -> dict[str, Any]:
        """The latest GPU telemetry snapshot: state ("ok" or "unavailable"), reason, devices."""
        return await self._call("GET", "/gpus")

    # -- providers ------------------------------------------------------------------------------------

    async def providers(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/providers")

    async def provider(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"/providers/{_quoted(name)}")

    async def add_provider(self, **fields: Any) -> dict[str, Any]:
        """Fields: name, type, base_url, api_key_env, api_key, models {public: upstream}, priority, weight,
        max_concurrency, enabled. Returns the new provider's summary."""
        return await self._call("POST", "/providers", fields)

    async def update_provider(self, name: str, **changes: Any) -> dict[str, Any]:
        return await self._call("PATCH", f"/providers/{_quoted(name)}", changes)

    async def remove_provider(self, name: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/providers/{_quoted(name)}")

    async def test_provider(self, name: str) -> dict[str, Any]:
        """Probe a saved provider now: {name, health, detail, models, capacity}."""
        return await self._call("POST", f"/providers/{_quoted(name)}/test")

    async def test_provider_config(self, **fields: Any) -> dict[str, Any]:
        """Probe a provider configuration without saving it (same fields as add_provider)."""
        return await self._call("POST", "/providers/test", fields)

    # -- keys -----------------------------------------------------------------------------------------

    async def keys(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/keys")

    async def create_key(self, name: str, **fields: Any) -> dict[str, Any]:
        """Fields: models (list or None for all), rpm, tpm, max_concurrency, expires_in_days.
        The answer's "key" is the full secret, shown this once."""
        return await self._call("POST", "/keys", {"name": name, **fields})

    async def update_key(self, id_or_name: str, **changes: Any) -> dict[str, Any]:
        return await self._call("PATCH", f"/keys/{_quoted(id_or_name)}", changes)

    async def revoke_key(self, id_or_name: str) -> dict[str, Any]:
        return await self._call("POST", f"/keys/{_quoted(id_or_name)}/revoke")

    async def remove_key(self, id_or_name: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/keys/{_quoted(id_or_name)}")

    # -- requests -------------------------------------------------------------------------------------

    async def requests(self) -> list[dict[str, Any]]:
        """The requests running now."""
        return await self._call("GET", "/requests")

    async def cancel_request(self, request_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/requests/{_quoted(request_id)}")

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Yield (kind, data): a "snapshot" first, then deltas ("provider", "key", "request.start", ...).

        Ends when the daemon ends the stream (a subscriber that falls behind is dropped); call again for
        a fresh snapshot. Close it (`contextlib.aclosing`) when stopping early.
        """
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=EVENTS_READ_TIMEOUT_S)
        async with self._stream("GET", "/events", timeout=timeout) as response:
            async for kind, data in _sse_frames(response):
                try:
                    parsed = json.loads(data)
                except ValueError as error:
                    raise CorralError(f"corral-core sent an event that is not JSON: {data[:200]!r}") from error
                yield kind or "message", parsed

    def chat_stream(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatStream:
        """Stream a chat completion through the gateway as admin; iterate the result for OpenAI chunk dicts."""
        return ChatStream(self, {**params, "model": model, "messages": messages, "stream": True})

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        """A chat completion without streaming: the OpenAI response dict."""
        return await self._call(
            "POST",
            "/v1/chat/completions",
            {**params, "model": model, "messages": messages, "stream": False},
            read_timeout_s=CHAT_READ_TIMEOUT_S,
        )


class _CheckedStream:
    """`async with`: a streamed response that has already been checked for an error status."""

    def __init__(self, client: CorralClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        try:
            self._response = await self._client._http.send(self._request, stream=True)
        except httpx.TransportError as error:
            raise self._client._transport_error(error) from error
        if self._response.status_code >= 400:
            body = await self._response.aread()
            await self._response.aclose()
            raise _error_from_response(self._response, body)
        return self._response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._response is not None:
            await self._response.aclose()
        if isinstance(exc, httpx.TransportError):
            raise self._client._transport_error(exc) from exc
