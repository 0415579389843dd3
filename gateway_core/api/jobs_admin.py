"""The admin /jobs routes (Unix socket; the console and `corral jobs` use them): every key's jobs, their counts,
one job, cancel and retry."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core.api.queue import job_page, job_state, page_limit, refuse_unknown
from gateway_core.api.responses import json_response
from gateway_core.gateway.key_store import KeyStore
from gateway_core.jobs.model import job_view
from gateway_core.jobs.service import JobService


class JobsAdminApi:
    def __init__(self, *, jobs: JobService, keys: KeyStore) -> None:
        self._jobs = jobs
        self._keys = keys

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/jobs", self.list, methods=["GET"]),
            Route("/jobs/counts", self.counts, methods=["GET"]),
            Route("/jobs/{id}", self.get, methods=["GET"]),
            Route("/jobs/{id}/cancel", self.cancel, methods=["POST"]),
            Route("/jobs/{id}/retry", self.retry, methods=["POST"]),
        ]

    async def list(self, request: Request) -> Response:
        params = request.query_params
        refuse_unknown(params, ("state", "key", "tag", "limit", "cursor"))
        key = params.get("key")
        key_id = self._keys.require(key).id if key else None  # a key's id or name; an unknown one is a 404
        jobs, next_cursor = await self._jobs.list(
            key_id,
            params.get("tag") or None,
            job_state(params.get("state")),
            page_limit(params.get("limit")),
            params.get("cursor") or None,
        )
        return json_response(job_page(jobs, next_cursor))

    async def counts(self, request: Request) -> Response:
        refuse_unknown(request.query_params, ())
        return json_response(self._jobs.counts())

    async def get(self, request: Request) -> Response:
        refuse_unknown(request.query_params, ())
        return json_response(job_view(await self._jobs.get(request.path_params["id"], None)))

    async def cancel(self, request: Request) -> Response:
        refuse_unknown(request.query_params, ())
        return json_response(job_view(await self._jobs.cancel(request.path_params["id"], None)))

    async def retry(self, request: Request) -> Response:
        refuse_unknown(request.query_params, ())
        return json_response(job_view(await self._jobs.retry(request.path_params["id"])))
