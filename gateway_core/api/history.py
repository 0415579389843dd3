"""The archive's admin routes: search history, one request, export a month, prune, usage over time.

Each handler reads and checks its query (a bad one is a 400 naming the parameter), then calls the archive
(gateway_core/archive/interface.py) and answers with what it returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway_core.api.admin_models import read_json
from gateway_core.api.responses import json_response
from gateway_core.archive.interface import Archive, ExportFormat, HistoryQuery, UsageQuery
from gateway_core.clock import Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.history_views import UsageBucket, UsageDimension
from gateway_core.contracts.instants import InstantError, check_month, parse_instant

MAX_PAGE = 1000
STATUS_FILTERS = ("ok", "error", "2xx", "3xx", "4xx", "5xx")
EXPORT_TYPES: dict[ExportFormat, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
DEFAULT_USAGE_SINCE = "7d"


class HistoryApi:
    def __init__(self, *, archive: Archive, clock: Clock) -> None:
        self._archive = archive
        self._clock = clock

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/history", self.search, methods=["GET"]),
            Route("/history/export", self.export, methods=["GET"]),
            Route("/history/prune", self.prune, methods=["POST"]),
            Route("/history/{id}", self.entry, methods=["GET"]),
            Route("/usage", self.usage, methods=["GET"]),
            Route("/archive", self.status, methods=["GET"]),
        ]

    async def search(self, request: Request) -> Response:
        params = request.query_params
        _refuse_unknown(params, ("key", "model", "provider", "status", "since", "until", "text", "limit", "cursor"))
        status = params.get("status")
        if status is not None and not (status.isdigit() and len(status) == 3) and status not in STATUS_FILTERS:
            raise GatewayError(
                400,
                f"status: '{status}' is not a status filter; use a status code (200), a class (4xx) or ok/error",
                param="status",
                code="invalid_parameter",
            )
        query = HistoryQuery(
            key=params.get("key") or None,
            model=params.get("model") or None,
            provider=params.get("provider") or None,
            status=status or None,
            since=self._instant(params, "since"),
            until=self._instant(params, "until"),
            text=params.get("text") or None,
            limit=_limit(params.get("limit")),
            cursor=params.get("cursor") or None,
        )
        return json_response(await self._archive.search(query))

    async def entry(self, request: Request) -> Response:
        request_id = request.path_params["id"]
        found = await self._archive.get(request_id)
        if found is None:
            raise GatewayError(
                404,
                f"no request '{request_id}' in the archive: check the id (the x-request-id header), or whether its "
                "month was pruned or its key's capture is off",
                code="request_not_found",
            )
        return json_response(found)

    async def export(self, request: Request) -> Response:
        params = request.query_params
        _refuse_unknown(params, ("month", "format"))
        month = self._month(params.get("month"), "month")
        fmt = params.get("format", "jsonl")
        if fmt not in EXPORT_TYPES:
            raise GatewayError(
                400,
                f"format: '{fmt}' is not an export format; use jsonl or csv",
                param="format",
                code="invalid_parameter",
            )
        export_format: ExportFormat = "csv" if fmt == "csv" else "jsonl"
        months = self._archive.status()["months"]
        if month not in months:  # a 404 before the stream starts, never an empty 200
            held = f"it holds {', '.join(months)}" if months else "it holds none yet"
            raise GatewayError(
                404, f"month: the archive has no file for {month}; {held}", param="month", code="month_not_found"
            )
        return StreamingResponse(
            self._archive.export(month, export_format),
            media_type=EXPORT_TYPES[export_format],
            headers={"content-disposition": f'attachment; filename="corral-{month}.{export_format}"'},
        )

    async def prune(self, request: Request) -> Response:
        body = await read_json(request)
        unknown = sorted(set(body) - {"before"})
        if unknown:
            raise GatewayError(400, f'{unknown[0]}: unknown field; send {{"before": "YYYY-MM"}}', param=unknown[0])
        before = body.get("before")
        if not isinstance(before, str):
            raise GatewayError(400, 'before: required, a month as "YYYY-MM"', param="before", code="invalid_field")
        return json_response(await self._archive.prune(self._month(before, "before")))

    async def usage(self, request: Request) -> Response:
        params = request.query_params
        _refuse_unknown(params, ("by", "since", "until", "bucket"))
        by = params.get("by", "key")
        if by not in get_args(UsageDimension):
            raise GatewayError(
                400, f"by: '{by}' is not a grouping; use key, model or provider", param="by", code="invalid_parameter"
            )
        bucket = params.get("bucket", "day")
        if bucket not in get_args(UsageBucket):
            raise GatewayError(
                400, f"bucket: '{bucket}' is not a bucket; use hour or day", param="bucket", code="invalid_parameter"
            )
        now = self._clock.time()
        since = self._instant(params, "since", DEFAULT_USAGE_SINCE)
        until = self._instant(params, "until") or now
        assert since is not None
        if since >= until:
            raise GatewayError(400, "since: must be before until", param="since", code="invalid_parameter")
        dimension: UsageDimension = "model" if by == "model" else "provider" if by == "provider" else "key"
        size: UsageBucket = "hour" if bucket == "hour" else "day"
        return json_response(await self._archive.usage(UsageQuery(by=dimension, since=since, until=until, bucket=size)))

    async def status(self, request: Request) -> Response:
        return json_response(self._archive.status())

    def _instant(self, params: Mapping[str, str], name: str, default: str | None = None) -> float | None:
        text = params.get(name) or default
        if text is None:
            return None
        try:
            return parse_instant(text, self._clock.time())
        except InstantError as error:
            raise GatewayError(400, f"{name}: {error}", param=name, code="invalid_parameter") from error

    @staticmethod
    def _month(text: str | None, name: str) -> str:
        if not text:
            raise GatewayError(400, f'{name}: required, a month as "YYYY-MM"', param=name, code="invalid_parameter")
        try:
            return check_month(text)
        except InstantError as error:
            raise GatewayError(400, f"{name}: {error}", param=name, code="invalid_parameter") from error


def _limit(text: str | None) -> int:
    if text is None:
        return 100
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise GatewayError(
            400, f"limit: '{text}' must be a whole number from 1 to {MAX_PAGE}", param="limit", code="invalid_parameter"
        )
    return int(text)


def _refuse_unknown(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            raise GatewayError(
                400,
                f"{name}: unknown parameter; this route takes {', '.join(known)}",
                param=name,
                code="invalid_parameter",
            )
