"""Models on demand through corral-core, with real containers: cold starts, idle unloads, failed loads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]


@pytest.fixture
def daemon(tmp_path, llama_server_image):
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


def admin(daemon: CorralDaemon, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = daemon.admin_call(method, path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def deploy_on_demand(daemon, tiny_model, image, name: str, **load: Any) -> Any:
    body = {
        "model_path": str(tiny_model),
        "name": name,
        "image": image,
        "gpus": "none",
        "ctx_size": 1024,
        "parallel": 4,
        "load": {"mode": "on-demand", **load},
    }
    return admin(daemon, "POST", "/fleet/deployments", body, status=201)


def state(daemon, name: str) -> str:
    return admin(daemon, "GET", f"/fleet/on-demand/{name}")["state"]


def starts_of(docker_client, name: str, since: float) -> int:
    """How many times the engine started the deployment's container since `since` (its own event log)."""
    events = docker_client.events(
        since=int(since), until=int(time.time()) + 1, decode=True, filters={"container": f"corral-{name}"}
    )
    return sum(1 for event in events if event.get("Action") == "start" and event["timeNano"] / 1e9 >= since)


async def chat_all(daemon: CorralDaemon, key: str, model: str, count: int) -> list[httpx.Response]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=120, limits=limits) as client:
        headers = {"authorization": f"Bearer {key}"}
        return await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(count))
        )


def test_fifty_concurrent_requests_to_a_cold_model_start_its_container_once_and_all_succeed(
    daemon, docker_client, tiny_model, llama_server_image, names
):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    admin(daemon, "POST", f"/fleet/deployments/{name}/unload")
    assert state(daemon, name) == "cold"
    key = daemon.create_key("app")
    since = time.time()

    answers = asyncio.run(chat_all(daemon, key, name, 50))

    assert [a.status_code for a in answers] == [200] * 50, next(a.text for a in answers if a.status_code != 200)
    assert starts_of(docker_client, name, since) == 1
    log = daemon.log_tail(400).splitlines()
    started = [line for line in log if f"on-demand: start {name}: a request for '{name}' arrived" in line]
    assert len(started) == 1, started  # decided once (the engine would ignore a second start, uncounted)
    view = admin(daemon, "GET", f"/fleet/on-demand/{name}")
    assert view["state"] == "warm"
    assert view["last_load_s"] is not None
    assert view["last_load_s"] > 0
    provider = admin(daemon, "GET", f"/providers/{name}")
    assert (provider["errors"], provider["circuit"]) == (0, "closed"), "loading counts as no failure"


def test_an_on_demand_deployment_idle_past_its_ttl_is_stopped_and_the_next_request_starts_it_again(
    daemon, tiny_model, llama_server_image, names
):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name, idle_ttl_s=1)
    key = daemon.create_key("app")

    wait_for(lambda: state(daemon, name) == "cold", "the idle deployment to be stopped", timeout_s=30)
    (answer,) = asyncio.run(chat_all(daemon, key, name, 1))

    assert answer.status_code == 200, answer.text
    assert state(daemon, name) == "warm"


def test_the_policy_of_an_existing_deployment_changes_and_is_kept_across_a_restart(
    tmp_path, daemon, tiny_model, llama_server_image, names
):
    name = names()
    deployed = deploy_on_demand(daemon, tiny_model, llama_server_image, name, idle_ttl_s="1h")

    changed = admin(daemon, "PATCH", f"/fleet/deployments/{name}/policy", {"idle_ttl_s": "2h", "pin": True})
    bad = daemon.admin_call("PATCH", f"/fleet/deployments/{name}/policy", json={"idle_ttl_s": "soon"})
    daemon.stop()
    daemon.start()

    assert deployed["deployment"]["spec"]["load"]["idle_ttl_s"] == 3600
    assert (changed["policy"]["idle_ttl_s"], changed["policy"]["pin"]) == (7200, True)
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "idle_ttl_s"
    assert "90s, 10m or 1h30m" in bad.json()["error"]["message"]
    wait_for(lambda: daemon.admin_call("GET", f"/fleet/on-demand/{name}").status_code == 200, "the deployment")
    assert admin(daemon, "GET", f"/fleet/on-demand/{name}")["policy"]["idle_ttl_s"] == 7200


def test_unloading_through_the_admin_api_stops_it_and_routes_nothing_to_it_meanwhile(
    daemon, tiny_model, llama_server_image, names
):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)

    unloaded = admin(daemon, "POST", f"/fleet/deployments/{name}/unload")
    decisions = [line for line in daemon.log_tail(200).splitlines() if "on-demand: stop" in line]

    assert unloaded["state"] == "cold"
    assert admin(daemon, "GET", f"/providers/{name}")["state"] == "down"
    assert any("unloaded by the operator" in line for line in decisions), decisions


def test_a_model_that_fails_to_load_gets_a_503_with_the_end_of_its_log_and_shows_failed(
    daemon, tiny_model, llama_server_image, names
):
    name = names()
    body = {
        "model_path": str(tiny_model),
        "name": name,
        "image": llama_server_image,
        "gpus": "none",
        "ctx_size": 1024,
        "extra_args": ["--no-such-flag"],
        "load": {"mode": "on-demand"},
    }
    deployed = admin(daemon, "POST", "/fleet/deployments", body, status=201)
    key = daemon.create_key("app")

    (answer,) = asyncio.run(chat_all(daemon, key, name, 1))

    assert any("its first load did not succeed" in warning for warning in deployed["warnings"])
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "model_load_failed"
    assert "exited" in error["message"], error["message"]
    assert "--no-such-flag" in error["message"], error["message"]
    view = admin(daemon, "GET", f"/fleet/on-demand/{name}")
    assert view["state"] == "failed"
    assert "--no-such-flag" in view["reason"]
    provider = admin(daemon, "GET", f"/providers/{name}")
    assert (provider["errors"], provider["circuit"]) == (0, "closed"), "a failed load is not a provider failure"


def test_a_queued_job_for_a_cold_model_starts_it_and_succeeds(daemon, tiny_model, llama_server_image, names):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    admin(daemon, "POST", f"/fleet/deployments/{name}/unload")
    headers = {"authorization": f"Bearer {daemon.create_key('app')}"}
    request = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    with httpx.Client(base_url=daemon.base_url, headers=headers, timeout=90) as client:
        submitted = client.post("/v1/queue/chat/completions", json={"request": request})
        job = client.get(f"/v1/queue/{submitted.json()['id']}/wait", params={"timeout": 60}).json()

    assert submitted.status_code == 202, submitted.text
    assert job["state"] == "succeeded", job
    assert state(daemon, name) == "warm"


def test_a_removed_deployment_is_no_longer_listed_and_its_changed_policy_is_forgotten(
    daemon, tiny_model, llama_server_image, names
):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    admin(daemon, "PATCH", f"/fleet/deployments/{name}/policy", {"pin": True})

    admin(daemon, "DELETE", f"/fleet/deployments/{name}")

    wait_for(lambda: name not in {v["name"] for v in admin(daemon, "GET", "/fleet/on-demand")}, "it to be dropped")
    assert daemon.admin_call("GET", f"/fleet/on-demand/{name}").status_code == 404
    again = deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    assert again["deployment"]["spec"]["load"]["pin"] is False
    assert admin(daemon, "GET", f"/fleet/on-demand/{name}")["policy"]["pin"] is False, "the new spec's policy"


def test_a_model_that_takes_longer_than_its_load_timeout_gets_a_503_and_is_stopped(
    daemon, docker_client, tiny_model, llama_server_image, names
):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    admin(daemon, "POST", f"/fleet/deployments/{name}/unload")
    # Shorter than the engine's start call alone: no llama-server answers /health in time.
    admin(daemon, "PATCH", f"/fleet/deployments/{name}/policy", {"load_timeout_s": "10ms"})
    key = daemon.create_key("app")

    (answer,) = asyncio.run(chat_all(daemon, key, name, 1))

    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "model_load_failed"
    assert "within its load_timeout of 0.01s" in error["message"], error["message"]
    assert state(daemon, name) == "failed"
    container = docker_client.containers.get(f"corral-{name}")
    assert container.status == "exited", "stopped, so a half-loaded model holds no memory"


def test_switching_a_cold_deployment_to_always_starts_it(daemon, tiny_model, llama_server_image, names):
    name = names()
    deploy_on_demand(daemon, tiny_model, llama_server_image, name)
    admin(daemon, "POST", f"/fleet/deployments/{name}/unload")

    changed = admin(daemon, "PATCH", f"/fleet/deployments/{name}/policy", {"mode": "always"})

    assert changed["policy"]["mode"] == "always"
    wait_for(lambda: state(daemon, name) == "warm", "the deployment to be started")
    assert admin(daemon, "GET", f"/providers/{name}")["state"] == "ready"
