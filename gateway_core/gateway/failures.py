"""Failures inside Corral (bugs, not a client's or a provider's fault): logged once under the request's id, counted.

Whoever catches one (the Starlette apps' guard, the public app, a stream's relay) reports it here and answers the
client with `internal_error`: a JSON 500, or an SSE error event once a stream has started.
"""

from __future__ import annotations

import logging

from gateway_core.contracts.errors import GatewayError
from gateway_core.metrics import GatewayMetrics

log = logging.getLogger("corral.errors")


def internal_error(request_id: str) -> GatewayError:
    return GatewayError(
        500,
        f"Corral failed while handling this request (request id {request_id}); the operator's log has the "
        "details under that id. Retry; if it keeps failing, report the id to the operator.",
        code="internal_error",
    )


class Failures:
    """Reports the exception being handled: call `report` from inside an `except` block."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._counters = {listener: metrics.internal_errors.labels(listener) for listener in ("public", "admin")}

    def report(self, request_id: str, what: str, listener: str) -> None:
        log.exception("request %s (%s, %s listener) failed inside Corral", request_id, what, listener)
        self._counters[listener].inc()
