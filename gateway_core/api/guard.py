"""The outermost layer of the Starlette apps (the admin API, and the public routes that are not proxied): a request
id on every answer, and no exception ever seen as plain text.

Each HTTP request gets an id (`x-request-id` on its answer, and in log lines). An exception that escapes the app
is reported once with that id (gateway/failures.py); the client gets a JSON 500 in OpenAI's shape carrying the
id, or, when the answer had already started, an SSE error event (event streams) or a closed connection (anything
else: a half-sent JSON body cannot be mended). The proxied routes do the same in `PublicApp` and the pipeline,
without this layer's wrapper around every send: it cost them about 2 µs a request.
"""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_core.contracts.request_id import HEADER, SCOPE_KEY, new_request_id, request_id_of
from gateway_core.contracts.sse import error_frame
from gateway_core.gateway.failures import Failures, internal_error

_HEADER = HEADER.encode()


async def internal_error_handler(request: Request, error: Exception) -> Response:
    """Starlette's handler for any exception: the JSON 500 (Starlette then re-raises, and the guard logs it)."""
    return internal_error(request_id_of(request.scope)).to_response()


class RequestGuard:
    """Wraps one Starlette app: gives each HTTP request its id, and answers for any exception that escapes."""

    def __init__(self, app: ASGIApp, *, listener: str, failures: Failures) -> None:
        self.app = app
        self._listener = listener
        self._failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope[SCOPE_KEY] = new_request_id()
        header = (_HEADER, request_id.encode())
        started: list[tuple[bytes, bytes]] | None = None  # the answer's headers, once it has started
        complete = False

        async def send_with_id(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = message["headers"] = [*message.get("headers", ()), header]
            elif not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            return  # the client left before its body arrived: nobody to answer, and nothing failed here
        except Exception:
            self._failures.report(request_id, f"{scope.get('method')} {scope.get('path')}", self._listener)
            if started is None:
                error = internal_error(request_id)
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": orjson.dumps(error.body()), "more_body": False})
            elif not complete and _is_event_stream(started):
                frame = error_frame(internal_error(request_id).message, "server_error", "internal_error")
                await send({"type": "http.response.body", "body": frame, "more_body": False})


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/event-stream") for name, value in headers)
