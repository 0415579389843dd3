"""The public queue API (TCP, Bearer key): submit a job, poll it, wait for it, cancel it, list a key's jobs.

Every route authenticates as the synchronous routes do (KeyRing.authenticate), and a key sees only its own jobs:
another key's job answers 404, exactly as one that does not exist, so ids cannot be probed. The rules live in
the job service (gateway_core/jobs/service.py); this module reads the request and shapes the answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core.api.responses import json_response
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import JOB_STATES, JobPage, JobRoute, JobState, JobSubmitted
from gateway_core.contracts.request import read_body
from gateway_core.gateway.keys import KeyRing
from gateway_core.jobs.model import Job, job_view, status_url
from gateway_core.jobs.service import MAX_WAIT_S, JobService

MAX_PAGE = 100
DEFAULT_PAGE = 20
SUBMIT_ROUTES: dict[str, JobRoute] = {
    "/v1/queue/chat/completions": "chat",
    "/v1/queue/completions": "completions",
    "/v1/queue/embeddings": "embeddings",
}


def _timing(started: float) -> dict[str, str]:
    return {"server-timing": f"gateway;dur={(time.perf_counter() - started) * 1000:.2f}, upstream;dur=0"}


class QueueApi:
    def __init__(self, *, keys: KeyRing, jobs: JobService, body_cap: int) -> None:
        self._keys = keys
        self._jobs = jobs
        self._body_cap = body_cap

    def routes(self) -> list[BaseRoute]:
        return [
            *(Route(path, self.submit, methods=["POST"]) for path in SUBMIT_ROUTES),
            Route("/v1/queue", self.list, methods=["GET"]),
            Route("/v1/queue/ref/{ref_id:path}", self.by_ref, methods=["GET"]),  # an app's id may hold a /
            Route("/v1/queue/{id}", self.get, methods=["GET"]),
            Route("/v1/queue/{id}", self.cancel, methods=["DELETE"]),
            Route("/v1/queue/{id}/wait", self.wait, methods=["GET"]),
        ]

    def _key_id(self, request: Request) -> str:
        return self._keys.authenticate(request.headers.get("authorization")).id

    async def submit(self, request: Request) -> Response:
        started = time.perf_counter()
        key = self._keys.authenticate(request.headers.get("authorization"))
        raw = await read_body(request, self._body_cap)
        job, added = await self._jobs.submit(key, SUBMIT_ROUTES[request.url.path], raw)
        answer: JobSubmitted = {
            "id": job.id,
            "ref_id": job.ref_id,
            "state": job.state,
            "status_url": status_url(job.id),
        }
        headers = {**_timing(started), "location": status_url(job.id)}
        return json_response(answer, 202 if added else 200, headers)

    async def get(self, request: Request) -> Response:
        started = time.perf_counter()
        refuse_unknown(request.query_params, ())
        job = await self._jobs.get(request.path_params["id"], self._key_id(request))
        return json_response(job_view(job), headers=_timing(started))

    async def by_ref(self, request: Request) -> Response:
        started = time.perf_counter()
        refuse_unknown(request.query_params, ())
        job = await self._jobs.find_ref(self._key_id(request), request.path_params["ref_id"])
        return json_response(job_view(job), headers=_timing(started))

    async def wait(self, request: Request) -> Response:
        started = time.perf_counter()
        refuse_unknown(request.query_params, ("timeout",))
        timeout = _timeout(request.query_params.get("timeout"))
        job = await self._jobs.wait(request.path_params["id"], self._key_id(request), timeout)
        return json_response(job_view(job), headers=_timing(started))

    async def cancel(self, request: Request) -> Response:
        started = time.perf_counter()
        refuse_unknown(request.query_params, ())
        job = await self._jobs.cancel(request.path_params["id"], self._key_id(request))
        return json_response(job_view(job), headers=_timing(started))

    async def list(self, request: Request) -> Response:
        started = time.perf_counter()
        params = request.query_params
        refuse_unknown(params, ("tag", "state", "limit", "cursor"))
        key_id = self._key_id(request)
        jobs, next_cursor = await self._jobs.list(
            key_id,
            params.get("tag") or None,
            job_state(params.get("state")),
            page_limit(params.get("limit")),
            params.get("cursor") or None,
        )
        return json_response(job_page(jobs, next_cursor), headers=_timing(started))


def job_page(jobs: list[Job], next_cursor: str | None) -> JobPage:
    return {"object": "list", "data": [job_view(job) for job in jobs], "next_cursor": next_cursor}


def job_state(text: str | None) -> JobState | None:
    if not text:
        return None
    if text not in JOB_STATES:
        raise GatewayError(
            400,
            f"state: '{text}' is not a job state; use one of {', '.join(JOB_STATES)}",
            param="state",
            code="invalid_parameter",
        )
    state: JobState = text  # narrowed by the check against JOB_STATES
    return state


def page_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise GatewayError(
            400, f"limit: '{text}' must be a whole number from 1 to {MAX_PAGE}", param="limit", code="invalid_parameter"
        )
    return int(text)


def _timeout(text: str | None) -> float:
    if text is None:
        return MAX_WAIT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:
        raise GatewayError(
            400,
            f"timeout: '{text}' must be a number of seconds from 0 to {MAX_WAIT_S:g}",
            param="timeout",
            code="invalid_parameter",
        )
    return value


def refuse_unknown(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            takes = f"this route takes {', '.join(known)}" if known else "this route takes none"
            raise GatewayError(400, f"{name}: unknown parameter; {takes}", param=name, code="invalid_parameter")
