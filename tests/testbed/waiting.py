"""Waiting on a condition in tests: poll it, bounded in time, and fail naming what was awaited. Never a bare sleep.

    wait_for(lambda: provider_state(daemon, "gpu0") == "ready", "gpu0 to be ready")
    await wait_for_async(lambda: not gateway.state.live, "the request to finish")
    await wait_for_async(lambda: app.connected, "the console to connect", pause=pilot.pause)

The polling interval is the only sleep a test may take while it waits for something.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

SYNC_TIMEOUT_S = 15.0
ASYNC_TIMEOUT_S = 10.0
INTERVAL_S = 0.05


class WaitTimedOut(AssertionError):
    """The condition did not hold in time; the message names it."""

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"timed out after {timeout_s:g} s waiting for {what}")


def wait_for(
    condition: Callable[[], object], what: str, timeout_s: float = SYNC_TIMEOUT_S, interval_s: float = INTERVAL_S
) -> None:
    """Return as soon as `condition()` is truthy; raise WaitTimedOut naming `what` if `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise WaitTimedOut(what, timeout_s)
        time.sleep(interval_s)


async def wait_for_async(
    condition: Callable[[], object | Awaitable[object]],
    what: str,
    timeout_s: float = ASYNC_TIMEOUT_S,
    interval_s: float = INTERVAL_S,
    pause: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """The same on the event loop, which keeps running meanwhile. `condition` may be a coroutine function;
    `pause` is how to let time pass (a Textual test passes `pilot.pause`, so the app processes its messages)."""
    deadline = time.monotonic() + timeout_s
    while not await _holds(condition):
        if time.monotonic() >= deadline:
            raise WaitTimedOut(what, timeout_s)
        await pause(interval_s)


async def _holds(condition: Callable[[], object | Awaitable[object]]) -> bool:
    result = condition()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
