"""GET /v1/corral/openapi.json: a valid OpenAPI 3.1 document that lists exactly the Corral routes the public app
serves, whose schemas the answers themselves satisfy.

The served routes are read from the public app's own route table, so a route added under /v1/queue or /v1/corral
without being documented fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from gateway_core.api.openapi import OPENAPI_PATH, build_document
from tests.testbed.daemon import CorralDaemon

CORRAL_PREFIXES = ("/v1/queue", "/v1/corral")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}


def served_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path template, METHOD) of every route, mounts included; `{id:path}` is written `{id}` as OpenAPI does."""
    for route in routes:
        if isinstance(route, Mount):
            yield from served_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", prefix + route.path)
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to every GET
                    yield path, method


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper()) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }


def corral_routes_served(gateway: Any) -> set[tuple[str, str]]:
    starlette_app = gateway.public_app.routes.app  # PublicApp -> RequestGuard -> the Starlette app
    return {(path, method) for path, method in served_routes(starlette_app.routes) if path.startswith(CORRAL_PREFIXES)}


def schema_of(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the document's component schemas, its references resolved within the document."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )


@pytest.mark.asyncio
async def test_the_served_document_is_valid_openapi_3_1_and_needs_no_key(gateway):
    response = await gateway.public.get(OPENAPI_PATH)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    validate(document)  # raises, naming what is wrong
    assert document["openapi"].startswith("3.1")
    assert document == build_document()


def test_every_queue_route_of_the_contract_is_listed_with_its_answer():
    document = build_document()
    answers = {
        ("/v1/queue/chat/completions", "post"): ("202", "JobSubmitted"),
        ("/v1/queue/completions", "post"): ("202", "JobSubmitted"),
        ("/v1/queue/embeddings", "post"): ("202", "JobSubmitted"),
        ("/v1/queue/{id}", "get"): ("200", "JobView"),
        ("/v1/queue/ref/{ref_id}", "get"): ("200", "JobView"),
        ("/v1/queue/{id}/wait", "get"): ("200", "JobView"),
        ("/v1/queue/{id}", "delete"): ("200", "JobView"),
        ("/v1/queue", "get"): ("200", "JobPage"),
    }
    for (path, method), (status, schema) in answers.items():
        operation = document["paths"][path][method]
        content = operation["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{schema}"}, (path, method)
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    wait = document["paths"]["/v1/queue/{id}/wait"]["get"]
    (timeout,) = wait["parameters"]
    assert (timeout["name"], timeout["schema"]["maximum"]) == ("timeout", 60)


def test_the_bearer_scheme_guards_every_route_but_the_document_itself():
    document = build_document()

    assert document["components"]["securitySchemes"]["corralKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["corralKey"]["description"],
    }
    assert document["security"] == [{"corralKey": []}]
    assert document["paths"][OPENAPI_PATH]["get"]["security"] == []


def test_the_callback_is_a_webhook_per_final_state_with_the_standard_webhooks_headers():
    document = build_document()

    assert set(document["webhooks"]) == {"job.succeeded", "job.failed", "job.cancelled"}
    for name, hook in document["webhooks"].items():
        operation = hook["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["allOf"][0] == {"$ref": "#/components/schemas/CallbackBody"}
        assert body["allOf"][1]["properties"]["type"]["const"] == name
    callback = schema_of(document, "CallbackBody")
    job = {
        "id": "job_01",
        "ref_id": "order-7",
        "tag": None,
        "state": "succeeded",
        "route": "chat",
        "model": "tiny",
        "key_id": "k1",
        "priority": 0,
        "created_at": 1.0,
        "started_at": 2.0,
        "finished_at": 3.0,
        "attempts": 1,
        "provider": "gpu0",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "result": {"object": "chat.completion"},
        "error": None,
        "status_url": "/v1/queue/job_01",
        "reply_to": "https://app.example/hook",
    }
    callback.validate({"type": "job.succeeded", "timestamp": "2026-12-01T15:00:00.000Z", "data": job})
    with pytest.raises(jsonschema.ValidationError):
        callback.validate({"type": "job.started", "timestamp": "2026-12-01T15:00:00.000Z", "data": job})


@pytest.mark.asyncio
async def test_every_route_the_document_lists_is_served_by_the_public_app(gateway):
    document = build_document()

    missing = documented_routes(document) - corral_routes_served(gateway)

    assert not missing, f"listed in the OpenAPI document but not served: {sorted(missing)}"
    for path, method in sorted(documented_routes(document)):
        concrete = path.replace("{id}", "job_00000000000000000000000000").replace("{ref_id}", "order-1")
        response = await gateway.public.request(method, concrete)  # no key
        operation = document["paths"][path][method.lower()]
        if operation.get("security") == []:
            assert response.status_code == 200, (method, path)
        else:  # served, and guarded as the document says
            assert response.status_code == 401, (method, path, response.text)
            schema_of(document, "ErrorBody").validate(response.json())


@pytest.mark.asyncio
async def test_every_corral_route_the_public_app_serves_is_listed_in_the_document(gateway):
    unlisted = corral_routes_served(gateway) - documented_routes(build_document())

    assert not unlisted, f"served but missing from the OpenAPI document ({OPENAPI_PATH}): {sorted(unlisted)}"


@pytest.fixture
def queue(tmp_path: Path, shared_llama_server: Any) -> Iterator[httpx.Client]:
    """A real corral-core in front of a real llama-server, and an app's client with its key."""
    daemon = CorralDaemon(tmp_path / "corral").start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        key = daemon.create_key("app")
        with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=70) as client:
            yield client
    finally:
        daemon.stop()


@pytest.mark.llama_server
def test_what_the_queue_answers_satisfies_the_documents_schemas(queue):
    document = build_document()

    submitted = queue.post("/v1/queue/chat/completions", json={"request": CHAT, "ref_id": "order-1", "tag": "t"})
    assert submitted.status_code == 202, submitted.text
    schema_of(document, "JobSubmitted").validate(submitted.json())
    schema_of(document, "QueueSubmitChat").validate({"request": CHAT, "ref_id": "order-1", "tag": "t"})

    finished = queue.get(f"/v1/queue/{submitted.json()['id']}/wait", params={"timeout": 60})
    assert finished.status_code == 200
    assert finished.json()["state"] == "succeeded", finished.text
    schema_of(document, "JobView").validate(finished.json())
    schema_of(document, "JobView").validate(queue.get("/v1/queue/ref/order-1").json())
    schema_of(document, "JobPage").validate(queue.get("/v1/queue", params={"tag": "t"}).json())

    refused = queue.post("/v1/queue/chat/completions", json={"request": {**CHAT, "model": "nobody-serves-this"}})
    assert refused.status_code == 404
    schema_of(document, "ErrorBody").validate(refused.json())
