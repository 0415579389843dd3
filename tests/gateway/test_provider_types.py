"""Ollama and hosted OpenAI-compatible providers: discovery, URLs and upstream credentials."""

from __future__ import annotations

import pytest

from tests.fakes.fault_server import FaultServer

pytestmark = pytest.mark.asyncio

PROMPT = [{"role": "user", "content": "hi"}]


async def test_ollama_models_are_discovered_from_api_tags_and_served_over_its_v1_api(gateway):
    with FaultServer(model="llama3.2:1b") as ollama:
        created = await gateway.add_provider("ollama", ollama.base_url, type_="ollama")
        key = await gateway.create_key("app")

        response = await gateway.chat(key, model="llama3.2:1b")

    assert created["models"] == {"llama3.2:1b": "llama3.2:1b"}
    assert response.status_code == 200
    assert [r.path for r in ollama.requests if r.method == "POST"] == ["/v1/chat/completions"]


async def test_a_hosted_provider_gets_its_key_from_the_environment_and_its_own_model_name(gateway, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-from-env-5678")
    with FaultServer(model="llama-3.1-8b-instant") as hosted:
        await gateway.add_provider(
            "groq",
            hosted.base_url + "/v1",
            type_="openai",
            api_key_env="GROQ_API_KEY",
            models={"fast": "llama-3.1-8b-instant"},
        )
        key = await gateway.create_key("app")

        response = await gateway.chat(key, model="fast")
        listed = (await gateway.admin.get("/providers/groq")).json()

    assert response.status_code == 200
    assert response.json()["model"] == "fast", "clients see the public name, not the upstream one"
    (sent,) = [r for r in hosted.requests if r.method == "POST"]
    assert sent.headers["authorization"] == "Bearer gsk-from-env-5678"
    assert sent.json["model"] == "llama-3.1-8b-instant"
    assert listed["api_key_hint"] == "…5678"
    assert "gsk-from-env" not in (gateway.data_dir / "config.json").read_text()
