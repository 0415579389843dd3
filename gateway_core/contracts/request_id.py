"""Request ids: the `x-request-id` every public answer carries, and the id logs and the live view use."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

HEADER = "x-request-id"
SCOPE_KEY = "corral.request_id"  # where the listener's guard (api/guard.py) leaves the id in the ASGI scope


def new_request_id() -> str:
    """`req_` then 12 hex digits of milliseconds since the epoch and 16 random ones: unique, and sorts by time."""
    return f"req_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


def request_id_of(scope: Mapping[str, Any]) -> str:
    """The id the guard gave this request; a fresh one where no guard ran (an app used on its own, in tests)."""
    request_id: str | None = scope.get(SCOPE_KEY)
    return request_id or new_request_id()
