"""Standard Webhooks' headers for one attempt: webhook-id, webhook-timestamp and webhook-signature.

The signature is HMAC-SHA256 over `<id>.<timestamp>.<body>` with each of the key's secrets, made by the
`standardwebhooks` package itself so that what receivers verify with it (in any of its languages) is what was
signed. During a rotation window there are two secrets, and both signatures go in the one header, space-separated,
so a receiver still holding either secret verifies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


class UnsignableError(Exception):
    """The key has no webhook secret: it was made before keys had one, or was deleted."""


def signed_headers(delivery_id: str, body: bytes, secrets: Sequence[str], now: float) -> dict[str, str]:
    """The headers that sign `body` (the exact bytes sent) at `now` (Unix seconds)."""
    if not secrets:
        raise UnsignableError
    timestamp = math.floor(now)
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(delivery_id, moment, text) for secret in secrets)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
