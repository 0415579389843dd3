"""Request ids: the `x-request-id` every public answer carries, and the id logs and the live view use."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import Any

HEADER = "x-request-id"
SCOPE_KEY = "corral.request_id"  # where the Starlette apps' guard (api/guard.py) leaves the id


# Unique, not secret: a random number drawn once per process, then a counter. A getrandom call per request measured
# about 8 µs of the request's CPU in corral-core (the system call's cost on a mitigated VM, beyond its own 0.3 µs).
_PROCESS = os.urandom(4).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(4)) & 0xFFFFFF)


def new_request_id() -> str:
    """`req_`, 12 hex digits of milliseconds since the epoch, 8 naming this process, 8 counting: sorts by time."""
    return f"req_{time.time_ns() // 1_000_000:012x}{_PROCESS}{next(_COUNTER) & 0xFFFFFFFF:08x}"


def request_id_of(scope: Mapping[str, Any]) -> str:
    """The id the guard gave this request; a fresh one where no guard ran (an app used on its own, in tests)."""
    request_id: str | None = scope.get(SCOPE_KEY)
    return request_id or new_request_id()
