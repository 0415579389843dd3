"""The admin API validates what it is given, and what it stores survives a restart."""

from __future__ import annotations

import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"base_url": "ftp://example"}, "base_url", "not an http(s) URL"),
        ({"type": "triton"}, "type", "Input should be"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"weight": 0}, "weight", "greater than or equal to 1"),
        ({"api_key_env": "1BAD"}, "api_key_env", "not an environment variable name"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
    ],
)
async def test_malformed_provider_input_gets_a_400_naming_the_field(gateway, fields, param, words):
    body = {"name": "p", "type": "llama-server", "base_url": "http://127.0.0.1:9", **fields}

    response = await gateway.admin.post("/providers", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


@pytest.mark.asyncio
async def test_a_duplicate_provider_name_gets_409(gateway):
    body = {"name": "p", "type": "llama-server", "base_url": "http://127.0.0.1:9"}
    assert (await gateway.admin.post("/providers", json=body)).status_code == 201

    response = await gateway.admin.post("/providers", json=body)

    assert response.status_code == 409
    assert response.json()["error"]["param"] == "name"


@pytest.mark.asyncio
async def test_renaming_a_key_onto_another_keys_name_is_refused(gateway):
    await gateway.create_key("first")
    await gateway.create_key("second")

    response = await gateway.admin.patch("/keys/second", json={"name": "first"})

    assert response.status_code == 409
    assert response.json()["error"]["param"] == "name"


@pytest.mark.asyncio
async def test_an_unreachable_provider_is_down_with_the_reason_and_the_daemon_carries_on(gateway):
    created = await gateway.add_provider("nowhere", "http://127.0.0.1:9")

    assert created["state"] == "down"
    assert "cannot reach http://127.0.0.1:9" in created["health_detail"]
    assert (await gateway.admin.get("/status")).status_code == 200


@pytest.mark.asyncio
async def test_providers_and_keys_survive_a_restart_and_keys_are_stored_hashed(start_gateway):
    async with start_gateway() as first:
        await first.add_provider("p", "http://127.0.0.1:9", models={"m": "m"}, priority=5)
        key = await first.create_key("app", rpm=10)

    config_file = first.data_dir / "config.json"
    assert key.rsplit("-", 1)[1] not in config_file.read_text(), "the key's secret must never be stored"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600

    async with start_gateway() as again:
        (provider,) = (await again.admin.get("/providers")).json()
        (stored_key,) = (await again.admin.get("/keys")).json()
        response = await again.public.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    assert (provider["name"], provider["priority"], provider["models"]) == ("p", 5, {"m": "m"})
    assert (stored_key["name"], stored_key["rpm"]) == ("app", 10)
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_admin_routes_are_not_on_the_public_api(gateway):
    for path in ("/providers", "/keys", "/status", "/events"):
        assert (await gateway.public.get(path)).status_code == 404


def test_the_admin_socket_is_private(corral_daemon):
    mode = corral_daemon.socket_path.stat().st_mode

    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(corral_daemon.socket_path.parent.stat().st_mode) == 0o700


@pytest.mark.asyncio
@pytest.mark.llama_server
async def test_metrics_count_requests_tokens_and_gateway_overhead(gateway, llama_servers):
    (server,) = llama_servers(1)
    await gateway.add_provider("local", server.base_url)
    key = await gateway.create_key("app")
    headers = {"authorization": f"Bearer {key}"}
    for _ in range(3):
        assert (await gateway.chat(key, max_tokens=4, ignore_eos=True)).is_success

    assert (await gateway.public.get("/metrics")).status_code == 401
    text = (await gateway.public.get("/metrics", headers=headers)).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    assert samples[("corral_requests_total", (("model", "tiny"), ("provider", "local"), ("status", "200")))] == 3
    completion = (("kind", "completion"), ("model", "tiny"), ("provider", "local"))
    assert samples[("corral_tokens_total", completion)] == 12
    assert samples[("corral_gateway_overhead_seconds_count", ())] == 3
    assert 0 < samples[("corral_gateway_overhead_seconds_sum", ())] < 0.3
    assert samples[("corral_provider_up", (("provider", "local"), ("state", "ready")))] == 1
    assert samples[("corral_requests_in_flight", (("provider", "local"),))] == 0


@pytest.mark.asyncio
@pytest.mark.llama_server
async def test_embeddings_are_forwarded_to_an_embedding_llama_server(gateway, llama_servers):
    (server,) = llama_servers(1, extra_args=("--embeddings", "--pooling", "mean"))
    await gateway.add_provider("embedder", server.base_url)
    key = await gateway.create_key("app")

    response = await gateway.public.post(
        "/v1/embeddings", json={"model": "tiny", "input": ["a", "b"]}, headers={"authorization": f"Bearer {key}"}
    )

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2
    assert len(data[0]["embedding"]) == 64  # the tiny model's width
