"""Request ids: the `x-request-id` every public answer carries, and the id logs and the live view use."""

from __future__ import annotations

import os
import time

HEADER = "x-request-id"


def new_request_id() -> str:
    """`req_` then 12 hex digits of milliseconds since the epoch and 16 random ones: unique, and sorts by time."""
    return f"req_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"
