"""A real HTTP receiver for callbacks on 127.0.0.1 (aiohttp, in the test's loop) that answers as a test scripts it.

async with Receiver.running() as receiver:
    receiver.answer(503, times=2, retry_after="1")  # the next two requests; then the default, 200
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # time.monotonic() when the request arrived
    path: str
    host: str  # the Host header
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Answer:
    status: int
    times: int | None  # None: every request from now on
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        self._script: list[_Answer] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[Receiver]:
        receiver = cls()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receiver._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        receiver.port = server.sockets[0].getsockname()[1]
        receiver._runner = runner
        try:
            yield receiver
        finally:
            await runner.cleanup()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, status: int, *, times: int | None = None, delay_s: float = 0.0, **headers: str) -> None:
        """Answer the next `times` requests (every one, if None) with `status`; headers given as Retry_After=..."""
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        self._script.append(_Answer(status, times, named, delay_s))

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(
            Arrival(time.monotonic(), request.path, request.host, dict(request.headers), await request.read())
        )
        answer = self._script[0] if self._script else _Answer(200, None)
        if answer.times is not None:
            answer.times -= 1
            if answer.times == 0:
                self._script.pop(0)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)  # a receiver too slow to answer, not a test waiting
        finally:
            self.in_flight -= 1
        return web.Response(status=answer.status, headers=answer.headers, text="")
