"""Waiting on conditions in tests: poll, bounded in time, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_until(condition: Callable[[], object], timeout_s: float = 15.0, interval_s: float = 0.05) -> bool:
    """True as soon as `condition()` is truthy; False if `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return bool(condition())


async def pilot_wait(
    pause: Callable[[float], Awaitable[Any]],
    condition: Callable[[], object],
    what: str = "condition",
    timeout_s: float = 10.0,
) -> None:
    """Let a Textual app run (`pilot.pause`) until `condition()` holds; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await pause(0.05)
    if not condition():
        raise AssertionError(f"{what}: not met within {timeout_s:g} s")
