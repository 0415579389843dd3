"""Every answer carries a request id, and a failure inside Corral is a JSON 500 with that id, never plain text.

The failures are injected by making one real object raise (a bug cannot be produced on demand otherwise);
everything around it, the apps, the pipeline and a real local upstream, is what the daemon runs.
"""

from __future__ import annotations

import logging
import re

import pytest

from gateway_core.contracts.adapter import Usage
from gateway_core.contracts.errors import GatewayError, upstream_error_body
from gateway_core.providers.adapters import AnthropicAdapter, AnthropicStream
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.openai_compat import OpenAICompatAdapter
from tests.fakes.fault_server import FaultServer
from tests.testbed.waiting import wait_for_async

REQUEST_ID = re.compile(r"^req_[0-9a-f]{28}$")


class Boom(RuntimeError):
    pass


def streamed_chat(gateway, key: str):
    return gateway.public.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {key}"},
    )


def internal_errors(gateway, listener: str) -> float:
    value = gateway.state.metrics.registry.get_sample_value("corral_internal_errors_total", {"listener": listener})
    return value or 0.0


def assert_internal_error(response, caplog) -> str:
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    request_id = response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["code"] == "internal_error"
    assert request_id in error["message"]
    logged = [record for record in caplog.records if request_id in record.getMessage()]
    assert len(logged) == 1, "the traceback is logged once, with the id"
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[0] is Boom
    return request_id


@pytest.mark.asyncio
async def test_every_public_answer_carries_a_request_id(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")
        auth = {"authorization": f"Bearer {key}"}

        answers = [
            await gateway.chat(key),
            await gateway.chat(None),
            await gateway.chat(key, model="nobody-serves-this"),
            await gateway.chat(key, max_tokens=0),
            await gateway.public.get("/v1/models", headers=auth),
            await gateway.public.get("/v1/chat/completions", headers=auth),
            await gateway.public.get("/nowhere"),
            await gateway.public.get("/health"),
            await gateway.public.get("/metrics", headers=auth),
        ]

    assert [a.status_code for a in answers] == [200, 401, 404, 400, 200, 405, 404, 200, 200]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(REQUEST_ID.match(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.asyncio
async def test_a_streamed_requests_id_is_the_one_the_live_view_shows(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("slow", delay_s=0.2)
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")

        async with streamed_chat(gateway, key) as response:
            live = (await gateway.admin.get("/requests")).json()
            await response.aread()

    assert [request["id"] for request in live] == [response.headers["x-request-id"]]


@pytest.mark.asyncio
async def test_admin_answers_carry_a_request_id_too(gateway):
    answers = [await gateway.admin.get("/status"), await gateway.admin.post("/keys", content=b"{")]

    assert [a.status_code for a in answers] == [200, 400]
    assert all(REQUEST_ID.match(a.headers["x-request-id"]) for a in answers)


@pytest.mark.asyncio
async def test_a_failure_inside_the_pipeline_is_a_json_500_and_frees_what_the_request_held(
    gateway, monkeypatch, caplog
):
    def broken(self, raw: bytes, public_model: str) -> tuple[bytes, Usage]:
        raise Boom("a bug reading the answer")

    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app", max_concurrency=1)
        monkeypatch.setattr(OpenAICompatAdapter, "response", broken)
        caplog.set_level(logging.ERROR, logger="corral.errors")

        failed = await gateway.chat(key)

        assert_internal_error(failed, caplog)
        assert internal_errors(gateway, "public") == 1
        assert (await gateway.admin.get("/requests")).json() == []
        assert gateway.state.registry.get("local").in_flight == 0
        monkeypatch.undo()
        assert (await gateway.chat(key)).status_code == 200, "the key's one concurrent request was given back"


@pytest.mark.asyncio
async def test_a_failure_inside_a_stream_ends_it_with_an_error_event_carrying_the_id(gateway, monkeypatch, caplog):
    def broken(self, chunk: bytes) -> bytes:
        raise Boom("a bug relaying the stream")

    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app")
        from gateway_core.providers.openai_compat import PassthroughStream

        monkeypatch.setattr(PassthroughStream, "feed", broken)
        caplog.set_level(logging.ERROR, logger="corral.errors")

        async with streamed_chat(gateway, key) as response:
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]

        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        assert lines[-1] != "data: [DONE]"
        assert '"code":"internal_error"' in lines[-1]
        assert request_id in lines[-1]
        assert internal_errors(gateway, "public") == 1

        async def nothing_in_flight() -> bool:
            return (await gateway.admin.get("/requests")).json() == [] and not gateway.state.registry.get(
                "local"
            ).in_flight

        await wait_for_async(nothing_in_flight, "the failed stream to give back its slot and live entry")
        provider = (await gateway.admin.get("/providers/local")).json()
        assert (provider["state"], provider["errors"]) == ("ready", 0), "Corral's own failure is not the provider's"


@pytest.mark.asyncio
async def test_a_failure_in_a_public_route_is_a_json_500(gateway, monkeypatch, caplog):
    def broken() -> dict[str, list[str]]:
        raise Boom("a bug listing models")

    key = await gateway.create_key("app")
    monkeypatch.setattr(gateway.state.registry, "models", broken)
    caplog.set_level(logging.ERROR, logger="corral.errors")

    failed = await gateway.public.get("/v1/models", headers={"authorization": f"Bearer {key}"})

    assert_internal_error(failed, caplog)
    assert internal_errors(gateway, "public") == 1


@pytest.mark.asyncio
async def test_a_failure_in_an_admin_route_is_a_json_500(gateway, monkeypatch, caplog):
    def broken() -> object:
        raise Boom("a bug in the stats")

    monkeypatch.setattr(gateway.state.stats, "view", broken)
    caplog.set_level(logging.ERROR, logger="corral.errors")

    failed = await gateway.admin.get("/stats")

    assert_internal_error(failed, caplog)
    assert internal_errors(gateway, "admin") == 1
    assert internal_errors(gateway, "public") == 0


def test_an_upstream_error_in_another_shape_is_put_into_openais():
    llama = b'{"error":{"code":400,"message":"Invalid tool_choice: x","type":"invalid_request_error"}}'
    ollama = b'{"error":"model \\"x\\" not found"}'
    proxy = b"<html><body>400 Bad Request</body></html>"

    assert upstream_error_body(400, llama, "gpu0") == (
        b'{"error":{"message":"Invalid tool_choice: x","type":"invalid_request_error","param":null,"code":"400"}}'
    )
    assert upstream_error_body(404, ollama, "gpu0") == (
        b'{"error":{"message":"model \\"x\\" not found","type":"not_found_error","param":null,"code":null}}'
    )
    assert b"provider 'gpu0' answered HTTP 400: <html>" in upstream_error_body(400, proxy, "gpu0")
    assert b"(an empty body)" in upstream_error_body(422, b"", "gpu0")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"not json", b'{"content": [5], "usage": []}'])
def test_an_anthropic_answer_that_is_not_a_messages_response_is_the_providers_502(raw):
    adapter = AnthropicAdapter(
        ProviderConfig(name="claude", type="anthropic", base_url="http://127.0.0.1:9", models={"c": "c"})
    )

    with pytest.raises(GatewayError) as failed:
        adapter.response(raw, "c")

    assert failed.value.status == 502
    assert "not a Messages API response" in failed.value.message


def test_an_anthropic_stream_event_of_the_wrong_shape_ends_the_stream_with_an_error():
    stream = AnthropicStream("c", wants_usage=False)

    out = stream.feed(b'event: message_start\ndata: {"type": "message_start", "message": "not an object"}\n\n')

    assert b'"error"' in out
    assert b"wrong shape" in out
    assert not stream.finished  # finished cleanly is what it must not claim


@pytest.mark.parametrize(
    ("raw", "passed_on"),
    [
        (b"[1, 2]", b"[1, 2]"),
        (b"{}", b'{"model":"tiny"}'),
        (b'{"usage": {"prompt_tokens": "many"}}', b'{"usage":{"prompt_tokens":"many"},"model":"tiny"}'),
        (b'{"usage": 5}', b'{"usage":5,"model":"tiny"}'),
    ],
)
def test_an_openai_compatible_answer_of_an_odd_shape_passes_through_uncounted(raw, passed_on):
    adapter = OpenAICompatAdapter(ProviderConfig(name="gpu0", type="openai", base_url="http://127.0.0.1:9"))

    assert adapter.response(raw, "tiny") == (passed_on, Usage())


@pytest.mark.asyncio
async def test_a_body_nested_too_deep_to_forward_is_the_clients_400_and_frees_the_request(gateway):
    with FaultServer() as upstream:
        await gateway.add_provider("local", upstream.base_url)
        key = await gateway.create_key("app", max_concurrency=1)
        deep = b'{"model":"tiny","messages":[{"role":"user","content":"x"}],"extra":' + b"[" * 300 + b"]" * 300 + b"}"

        refused = await gateway.public.post(
            "/v1/chat/completions", content=deep, headers={"authorization": f"Bearer {key}"}
        )

        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "too_deeply_nested"
        assert "254 levels" in refused.json()["error"]["message"]
        assert (await gateway.admin.get("/requests")).json() == []
        assert (await gateway.chat(key)).status_code == 200, "the key's one concurrent request was given back"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/health/"])
async def test_a_trailing_slash_is_a_json_404_naming_the_route_not_an_empty_redirect(gateway, path):
    key = await gateway.create_key("app")

    answer = await gateway.public.post(path, json={}, headers={"authorization": f"Bearer {key}"})

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert f"the route is {path.rstrip('/')}, without the trailing slash" in answer.json()["error"]["message"]


@pytest.mark.asyncio
async def test_an_admin_path_with_a_trailing_slash_is_a_json_404_too(gateway):
    answer = await gateway.admin.get("/providers/")

    assert answer.status_code == 404
    assert "without the trailing slash" in answer.json()["error"]["message"]
