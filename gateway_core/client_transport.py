"""Talking to corral-core's admin socket: requests, errors, streamed responses and server-sent events.

What `CorralClient` and its fleet calls are built on, and the one place JSON answers become typed views
(`decoded`, `decoded_event`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from gateway_core.contracts.events import EVENT_KINDS, DaemonEvent

DEFAULT_TIMEOUT_S = 30.0

T = TypeVar("T")
# Query parameters: a mapping, or httpx.QueryParams for a name given more than once.
QueryParams = Mapping[str, str | int | float] | httpx.QueryParams


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


def decoded(shape: type[T], data: Any) -> T:
    """JSON from the daemon, read as the contract type `shape` says it is.

    Not validated: corral-core produces these shapes (gateway_core/contracts), mypy checks its producers
    against them, and the tests pin what goes on the wire. This is the client's one cast.
    """
    return cast(T, data)


def decoded_event(kind: str | None, data: Any) -> DaemonEvent | None:
    """An event from the daemon's stream as its kind's (kind, payload) pair, on the same terms as `decoded`.

    None for a kind this client does not know (a newer daemon's), which the caller skips.
    """
    if kind not in EVENT_KINDS:
        return None
    return cast(DaemonEvent, (kind, data))  # a union, which `decoded`'s type[T] cannot take


class AdminTransport:
    """The admin API over the Unix socket. Every call raises CorralError (DaemonNotRunning when nobody answers)."""

    def __init__(self, socket_path: Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)), base_url="http://corral", timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        shape: type[T],
        method: str,
        path: str,
        json: Any = None,
        *,
        params: QueryParams | None = None,
        content: bytes | None = None,
        read_timeout_s: float | None = None,
    ) -> T:
        """Send a request and read its JSON answer as `shape`."""
        response = await self._send(
            method, path, json=json, params=params, content=content, read_timeout_s=read_timeout_s
        )
        return decoded(shape, response.json())

    async def call_text(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: QueryParams | None = None,
        read_timeout_s: float | None = None,
    ) -> str:
        """Send a request and read its answer as text (logs, compose files, systemd units)."""
        return (await self._send(method, path, json=json, params=params, read_timeout_s=read_timeout_s)).text

    def stream(
        self, method: str, path: str, *, json: Any = None, timeout: httpx.Timeout | None = None
    ) -> CheckedStream:
        """`async with` it for the response, already checked for an error status; read it as it comes."""
        request = self._http.build_request(
            method, path, json=json, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT
        )
        return CheckedStream(self, request)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParams | None = None,
        content: bytes | None = None,
        read_timeout_s: float | None = None,
    ) -> httpx.Response:
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=read_timeout_s) if read_timeout_s else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(
                method, path, json=json, params=params, content=content, timeout=timeout
            )
        except httpx.TransportError as error:
            raise self.transport_error(error) from error
        if response.status_code >= 400:
            raise _error_from_response(response, response.content)
        return response

    def transport_error(self, error: httpx.TransportError) -> CorralError:
        """What went wrong reaching the daemon, said so an operator knows what to do."""
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


class CheckedStream:
    """`async with`: a streamed response that has already been checked for an error status."""

    def __init__(self, transport: AdminTransport, request: httpx.Request) -> None:
        self._transport = transport
        self._request = request
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        try:
            self._response = await self._transport._http.send(self._request, stream=True)
        except httpx.TransportError as error:
            raise self._transport.transport_error(error) from error
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
            raise self._transport.transport_error(exc) from exc


async def sse_frames(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
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
