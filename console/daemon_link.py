"""Reaching corral-core: start it when nobody answers on the socket, and follow its event stream forever.

No widgets here: the app runs these from its workers, and scripts can use them as they are.

    outcome = await ensure_daemon(socket_path, data_dir)
    async with EventFeed(socket_path) as feed:
        async for kind, data in feed:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, NotRequired, TypedDict

import httpx

from console.contexts import Context
from console.detach import spawn_detached
from console.ssh_tunnel import SshTunnel, TunnelFailed
from gateway_core.client import CorralClient, CorralError, DaemonNotRunning
from gateway_core.contracts.events import DaemonEvent
from gateway_core.contracts.views import HealthAnswer

LOG_NAME = "corral-core.log"
PROBE_TIMEOUT_S = 2.0
POLL_S = 0.05
LOG_TAIL_LINES = 15
STOP_GRACE_S = 5.0


class DaemonStartFailed(Exception):
    """corral-core could not be started; the message says why and ends with the last lines of its log."""

    def __init__(self, message: str, *, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log_path = log_path


@dataclass(frozen=True, slots=True)
class StartOutcome:
    started: bool  # False: a daemon was already answering
    socket_path: Path
    version: str | None = None
    pid: int | None = None  # the daemon this call started
    log_path: Path | None = None  # where that daemon writes


def daemon_command(socket_path: Path, data_dir: Path, listen: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "gateway_core.cli", "--data-dir", str(data_dir), "--socket", str(socket_path)]
    return [*command, "--listen", listen] if listen else command


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {log_path}: {error.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


async def _probe(client: CorralClient) -> HealthAnswer | None:
    """The daemon's /health answer, or None when nobody listens on the socket."""
    try:
        return await client.health()
    except DaemonNotRunning:
        return None


async def ensure_daemon(
    socket_path: Path, data_dir: Path, *, listen: str | None = None, timeout_s: float = 15.0
) -> StartOutcome:
    """Return at once if corral-core answers on `socket_path`; otherwise start it detached and wait for /health.

    `listen` (else $CORRAL_LISTEN) is passed through as --listen. Raises DaemonStartFailed when the daemon
    exits or does not answer within `timeout_s`; a daemon that answers but refuses us (permissions) too.
    """
    async with CorralClient(socket_path, timeout=PROBE_TIMEOUT_S) as client:
        try:
            health = await _probe(client)
        except CorralError as error:
            raise DaemonStartFailed(f"something on {socket_path} is not a usable corral-core: {error}") from error
        if health is not None:
            return StartOutcome(started=False, socket_path=socket_path, version=health.get("version"))

        log_path = data_dir / LOG_NAME
        command = daemon_command(socket_path, data_dir, listen or os.environ.get("CORRAL_LISTEN") or None)
        try:
            process = await asyncio.to_thread(spawn_detached, command, log_path)
        except OSError as error:
            raise DaemonStartFailed(
                f"cannot start corral-core ({' '.join(command)}): {error}", log_path=log_path
            ) from error
        deadline = time.monotonic() + timeout_s
        while True:
            if process.returncode is not None:
                raise DaemonStartFailed(
                    f"corral-core exited with code {process.returncode} before answering on {socket_path}. "
                    f"Last lines of {log_path}:\n{log_tail(log_path)}",
                    log_path=log_path,
                )
            with contextlib.suppress(CorralError):  # not listening yet, or busy starting
                health = await _probe(client)
                if health is not None:
                    return StartOutcome(
                        started=True,
                        socket_path=socket_path,
                        version=health.get("version"),
                        pid=process.pid,
                        log_path=log_path,
                    )
            if time.monotonic() >= deadline:
                await asyncio.to_thread(_stop, process)
                raise DaemonStartFailed(
                    f"corral-core did not answer on {socket_path} within {timeout_s:g} s, so it was stopped. "
                    f"Last lines of {log_path}:\n{log_tail(log_path)}",
                    log_path=log_path,
                )
            await asyncio.sleep(POLL_S)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The reaper thread owns waitpid, so watch returncode rather than calling wait() here as well.
    process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    while process.returncode is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if process.returncode is None:
        process.kill()


class LinkFailed(Exception):
    """A context could not be reached: corral-core would not start, or the SSH tunnel would not open."""

    def __init__(self, message: str, *, title: str) -> None:
        super().__init__(message)
        self.message = message
        self.title = title


class ContextLink:
    """The way to one context's corral-core: its own socket, started when silent if it is local and its data
    directory is known; or, for a box over SSH, a tunnel's socket, never started. close() ends the tunnel."""

    def __init__(self, context: Context, *, autostart: bool = True) -> None:
        self.context = context
        self.autostart = autostart and context.autostart
        self.tunnel = SshTunnel(context) if context.remote else None
        self.socket_path: Path | None = context.socket

    async def open(self) -> StartOutcome | None:
        """The socket to use is `socket_path` after this; the outcome says whether a daemon was started here."""
        if self.tunnel is not None:
            tunnel = self.tunnel
            try:
                self.socket_path = await asyncio.to_thread(tunnel.open)
            except TunnelFailed as error:
                raise LinkFailed(error.message, title=f"cannot reach {self.context.name}") from error
            except asyncio.CancelledError:
                tunnel.close()  # the open thread sees it and gives up
                raise
            return None
        assert self.socket_path is not None  # a local context has its socket
        if not self.autostart or self.context.data_dir is None:
            return None
        try:
            return await ensure_daemon(self.socket_path, self.context.data_dir)
        except DaemonStartFailed as error:
            raise LinkFailed(error.message, title="corral-core could not start") from error

    @property
    def lost(self) -> bool:
        """A tunnel that has ended: following the stream again needs a new one."""
        return self.tunnel is not None and not self.tunnel.alive

    async def close(self) -> None:
        if self.tunnel is not None:
            await asyncio.to_thread(self.tunnel.close)


class ConnectionChange(TypedDict):
    """The feed's own event: the daemon answered (before its fresh snapshot), or it was lost."""

    state: Literal["connected", "lost"]
    reason: NotRequired[str]  # lost only: why


FeedEvent = DaemonEvent | tuple[Literal["connection"], ConnectionChange]


def _connection(change: ConnectionChange) -> FeedEvent:
    return ("connection", change)


class _End:
    """Put on the queue to wake a waiting reader when the feed closes."""


_END = _End()


class EventFeed:
    """The daemon's events, forever, across daemon restarts: `async for kind, data in feed`.

    It yields ("connection", {"state": "connected"}) before each fresh snapshot, and
    ("connection", {"state": "lost", "reason": ...}) once when the stream breaks or nobody answers, then
    retries with backoff (0.2 s doubling to 5 s). Use `async with`, or call `aclose()`, to stop it.
    """

    def __init__(
        self, socket_path: Path, *, min_backoff_s: float = 0.2, max_backoff_s: float = 5.0, buffer: int = 1024
    ) -> None:
        self.socket_path = socket_path
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.connect_attempts = 0
        # Bounded: a consumer that stops reading holds the pump, and the daemon drops us for a fresh snapshot.
        self._queue: asyncio.Queue[FeedEvent | _End | Exception] = asyncio.Queue(maxsize=buffer)
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    def __aiter__(self) -> EventFeed:
        return self

    async def __anext__(self) -> FeedEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name=f"corral-event-feed:{self.socket_path}")
        item = await self._queue.get()
        if isinstance(item, _End) or self._closed:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            self._closed = True  # the pump has ended; a later call must not wait for it forever
            raise item
        return item

    async def __aenter__(self) -> EventFeed:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following the daemon: the connection closes and a waiting `async for` ends."""
        self._closed = True
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def _run(self) -> None:
        try:
            async with CorralClient(self.socket_path) as client:
                await self._follow(client)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug, not a lost daemon: hand it to the consumer rather than hang it
            await self._queue.put(error)

    async def _follow(self, client: CorralClient) -> None:
        reported: str | None = None
        delay = self.min_backoff_s
        while True:
            self.connect_attempts += 1
            try:
                async with contextlib.aclosing(client.events()) as events:
                    async for event in events:
                        if reported != "connected":
                            await self._queue.put(_connection({"state": "connected"}))
                            reported, delay = "connected", self.min_backoff_s
                        await self._queue.put(event)
                reason = "corral-core ended the event stream"
            except (CorralError, httpx.TransportError) as error:
                reason = getattr(error, "message", None) or str(error) or type(error).__name__
            if reported != "lost":
                await self._queue.put(_connection({"state": "lost", "reason": reason}))
                reported = "lost"
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
