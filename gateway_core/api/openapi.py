"""The OpenAPI 3.1 document of Corral's own public routes: the queue, its status objects and the ReplyTo callback.

The OpenAI SDKs cover the synchronous routes; this document lets any language generate a typed client for what
they do not know: submitting a job, polling, waiting, cancelling and listing, and the signed callback a receiver
gets (as a `webhooks` entry, with Standard Webhooks' headers). It is served at GET /v1/corral/openapi.json with
no key, built once when the public app is built. Its schemas are generated from the wire contracts
(contracts/jobs.py, and contracts/openai_request.py for the OpenAI bodies) by msgspec, so a contract's change
reaches the document with no second copy to keep in step.
"""

from __future__ import annotations

import copy
import time
from typing import Any, TypedDict

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway_core import __version__
from gateway_core.api.queue import DEFAULT_PAGE, MAX_PAGE
from gateway_core.contracts.errors import ERROR_TYPES
from gateway_core.contracts.jobs import JOB_STATES, CallbackType, JobPage, JobSubmitted, JobView, QueueSubmit
from gateway_core.contracts.openai_request import ChatRequest, CompletionRequest, EmbeddingRequest
from gateway_core.jobs.service import MAX_WAIT_S

OPENAPI_PATH = "/v1/corral/openapi.json"
REF = "#/components/schemas/{name}"


class ErrorObject(TypedDict):
    """OpenAI's error object: what failed and what to do, its class, the field it blames and a stable code."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    """Every error Corral answers, in OpenAI's shape, so the official SDKs raise the matching exception."""

    error: ErrorObject


class CallbackBody(TypedDict):
    """A ReplyTo callback's body, signed as Standard Webhooks says: `data` is the job's status, result included."""

    type: CallbackType
    timestamp: str  # when the job ended, ISO 8601 in UTC
    data: JobView


# route -> (path, the OpenAI body its `request` holds, what it queues, operationId)
SUBMITS: dict[str, tuple[str, type[msgspec.Struct], str, str]] = {
    "Chat": ("/v1/queue/chat/completions", ChatRequest, "a chat completion", "queueChatCompletion"),
    "Completions": ("/v1/queue/completions", CompletionRequest, "a text completion", "queueCompletion"),
    "Embeddings": ("/v1/queue/embeddings", EmbeddingRequest, "an embeddings request", "queueEmbeddings"),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _any_json(kind: type) -> dict[str, Any]:
    if kind is object:
        return {"description": "any JSON value"}
    raise NotImplementedError


def _schemas() -> dict[str, Any]:
    openai_bodies = [body for _, body, _, _ in SUBMITS.values()]
    _, schemas = msgspec.json.schema_components(
        [QueueSubmit, JobSubmitted, JobView, JobPage, ErrorBody, CallbackBody, *openai_bodies],
        ref_template=REF,
        schema_hook=_any_json,
    )
    generic = schemas.pop("QueueSubmit")
    for suffix, (_, body, what, _) in SUBMITS.items():
        submit = copy.deepcopy(generic)
        submit["title"] = f"QueueSubmit{suffix}"
        submit["properties"]["request"] = {
            **_ref(body.__name__),
            "description": f"{what} as OpenAI's API takes it, validated as the synchronous route validates it; "
            "`stream` must not be true (a job is never streamed)",
        }
        schemas[f"QueueSubmit{suffix}"] = submit
    job = schemas["JobView"]["properties"]
    job["result"] = {"description": "succeeded: the OpenAI response body, as the synchronous route answers it"}
    for moment in ("created_at", "started_at", "finished_at"):
        job[moment]["description"] = "Unix seconds"
    schemas["CallbackBody"]["properties"]["timestamp"] = {"type": "string", "format": "date-time"}
    schemas["ErrorObject"]["properties"]["type"] = {"type": "string", "examples": sorted(set(ERROR_TYPES.values()))}
    return schemas


def _json(schema: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}
    if headers:
        answer["headers"] = headers
    return answer


COMMON_ERRORS = {
    "400": "the request is malformed: `error.param` names the field or parameter",
    "401": "no key, or a key that is unknown, revoked or expired",
}
JOB_NOT_FOUND = "this key has no such job (another key's job answers 404 too)"


def _errors(**described: str) -> dict[str, Any]:
    """Error answers by status (the keyword's digits), each in OpenAI's shape."""
    cases = {**COMMON_ERRORS, **{status.removeprefix("s"): text for status, text in described.items()}}
    return {status: _json("ErrorBody", text) for status, text in sorted(cases.items())}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the job's id, from the submit's answer",
}


def _submit(suffix: str) -> dict[str, Any]:
    _, _, what, operation = SUBMITS[suffix]
    status_header = {"location": {"description": "the job's status URL", "schema": {"type": "string"}}}
    return {
        "post": {
            "operationId": operation,
            "tags": ["queue"],
            "summary": f"Queue {what}",
            "description": "The job is on disk before the answer. A second submit with the key's same `ref_id` "
            "answers the existing job (200) instead of adding one. A job that could never run is refused here.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(f"QueueSubmit{suffix}")}},
            },
            "responses": {
                "202": _json("JobSubmitted", "queued", status_header),
                "200": _json("JobSubmitted", "this key already has a job with this ref_id: that job", status_header),
                **_errors(
                    s403="the key may not use this model",
                    s404="no provider serves this model, or the `provider` asked for does not exist or serve it",
                    s413="the body is larger than the gateway's cap",
                    s503="corral-core is stopping, or the model's providers have not listed their models yet: "
                    "retry after `Retry-After`",
                ),
            },
        }
    }


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {SUBMITS[suffix][0]: _submit(suffix) for suffix in SUBMITS}
    state = {"enum": list(JOB_STATES)}
    paths["/v1/queue"] = {
        "get": {
            "operationId": "listJobs",
            "tags": ["queue"],
            "summary": "This key's jobs, newest first",
            "parameters": [
                _query("tag", {"type": "string"}, "only jobs with this tag"),
                _query("state", state, "only jobs in this state"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}, ""),
                _query("cursor", {"type": "string"}, "the previous page's `next_cursor`"),
            ],
            "responses": {"200": _json("JobPage", "a page of jobs"), **_errors()},
        }
    }
    paths["/v1/queue/ref/{ref_id}"] = {
        "get": {
            "operationId": "getJobByRef",
            "tags": ["queue"],
            "summary": "The job this key submitted with this ref_id",
            "parameters": [{"name": "ref_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json("JobView", "the job"), **_errors(s404="this key has no job with this ref_id")},
        }
    }
    paths["/v1/queue/{id}"] = {
        "parameters": [JOB_ID],
        "get": {
            "operationId": "getJob",
            "tags": ["queue"],
            "summary": "The job's status, with its result or error once it has ended",
            "responses": {"200": _json("JobView", "the job"), **_errors(s404=JOB_NOT_FOUND)},
        },
        "delete": {
            "operationId": "cancelJob",
            "tags": ["queue"],
            "summary": "Cancel the job: a queued one never runs, a running one's upstream request is cancelled",
            "responses": {
                "200": _json("JobView", "the job as it is now (a job that had ended is left as it was)"),
                **_errors(s404=JOB_NOT_FOUND),
            },
        },
    }
    paths["/v1/queue/{id}/wait"] = {
        "parameters": [JOB_ID],
        "get": {
            "operationId": "waitForJob",
            "tags": ["queue"],
            "summary": f"Wait up to `timeout` seconds (at most {MAX_WAIT_S:g}) for the job to end",
            "parameters": [
                _query(
                    "timeout",
                    {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S, "default": MAX_WAIT_S},
                    "seconds to wait at most",
                )
            ],
            "responses": {
                "200": _json("JobView", "the job once it has ended, or as it is when the wait is over"),
                **_errors(s404=JOB_NOT_FOUND),
            },
        },
    }
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "getOpenApiDocument",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {}}}},
        }
    }
    return paths


def _webhooks() -> dict[str, Any]:
    headers = [
        ("webhook-id", "the delivery's id, the same on every attempt: de-duplicate on it"),
        ("webhook-timestamp", "Unix seconds of this attempt: refuse one too far from your clock"),
        (
            "webhook-signature",
            "space-separated `v1,<base64 HMAC-SHA256>` signatures of `<webhook-id>.<webhook-timestamp>.<body>` with "
            "the key's webhook secret (two during a rotation): verify with any Standard Webhooks library",
        ),
    ]
    hooks: dict[str, Any] = {}
    for state, what in (("succeeded", "succeeded"), ("failed", "failed for good"), ("cancelled", "was cancelled")):
        body = {"allOf": [_ref("CallbackBody"), {"properties": {"type": {"const": f"job.{state}"}}}]}
        hooks[f"job.{state}"] = {
            "post": {
                "operationId": f"onJob{state.capitalize()}",
                "summary": f"Sent to the job's `reply_to` when it {what}",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
                    for name, text in headers
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "2XX": {"description": "delivered"},
                    "410": {"description": "gone: no further attempts for this delivery"},
                    "default": {"description": "attempted again on the retry schedule, after `Retry-After` if given"},
                },
            }
        }
    return hooks


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Corral queue API",
            "version": __version__,
            "summary": "Queued OpenAI requests (jobs) and their signed ReplyTo callbacks",
            "description": "Corral's own public routes. The synchronous OpenAI routes (`/v1/chat/completions`, "
            "`/v1/completions`, `/v1/embeddings`, `/v1/models`) are OpenAI's API, for its SDKs. Every job belongs "
            "to the key that submitted it: another key's job is 404.",
        },
        "tags": [
            {"name": "queue", "description": "submit, poll, wait for, cancel and list jobs"},
            {"name": "meta", "description": "this document"},
        ],
        "security": [{"corralKey": []}],
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "corralKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a Corral API key, `sk-corral-<id>-<secret>` (`corral keys create`)",
                }
            },
        },
    }


class OpenApiDocument:
    """GET /v1/corral/openapi.json: the document, built and encoded once."""

    def __init__(self) -> None:
        self._body = orjson.dumps(build_document())

    async def serve(self, request: Request) -> Response:
        started = time.perf_counter()
        timing = f"gateway;dur={(time.perf_counter() - started) * 1000:.2f}, upstream;dur=0"
        return Response(self._body, media_type="application/json", headers={"server-timing": timing})

    def route(self) -> Route:
        return Route(OPENAPI_PATH, self.serve, methods=["GET"])
