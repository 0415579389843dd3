"""Ollama and hosted OpenAI-compatible providers: discovery, URLs and upstream credentials."""

from __future__ import annotations

import httpx

from tests.fakes.fault_server import FaultServer
from tests.testbed import CorralDaemon

PROMPT = [{"role": "user", "content": "hi"}]


def test_ollama_models_are_discovered_from_api_tags_and_served_over_its_v1_api(corral_daemon):
    with FaultServer(model="llama3.2:1b") as ollama:
        created = corral_daemon.add_provider("ollama", ollama.base_url, type_="ollama")
        key = corral_daemon.create_key("app")

        response = httpx.post(
            corral_daemon.base_url + "/v1/chat/completions",
            json={"model": "llama3.2:1b", "messages": PROMPT},
            headers={"authorization": f"Bearer {key}"},
        )

    assert created["models"] == {"llama3.2:1b": "llama3.2:1b"}
    assert response.status_code == 200
    assert [r.path for r in ollama.requests if r.method == "POST"] == ["/v1/chat/completions"]


def test_a_hosted_provider_gets_its_key_from_the_environment_and_its_own_model_name(tmp_path):
    daemon = CorralDaemon(tmp_path / "corral", extra_env={"GROQ_API_KEY": "gsk-from-env-5678"}).start()
    try:
        with FaultServer(model="llama-3.1-8b-instant") as hosted:
            daemon.add_provider(
                "groq",
                hosted.base_url + "/v1",
                type_="openai",
                api_key_env="GROQ_API_KEY",
                models={"fast": "llama-3.1-8b-instant"},
            )
            key = daemon.create_key("app")

            response = httpx.post(
                daemon.base_url + "/v1/chat/completions",
                json={"model": "fast", "messages": PROMPT},
                headers={"authorization": f"Bearer {key}"},
            )
            listed = daemon.admin_call("GET", "/providers/groq").json()
    finally:
        daemon.stop()

    assert response.status_code == 200
    assert response.json()["model"] == "fast", "clients see the public name, not the upstream one"
    (sent,) = [r for r in hosted.requests if r.method == "POST"]
    assert sent.headers["authorization"] == "Bearer gsk-from-env-5678"
    assert sent.json["model"] == "llama-3.1-8b-instant"
    assert listed["api_key_hint"] == "…5678"
    assert "gsk-from-env" not in (tmp_path / "corral" / "config.json").read_text()
