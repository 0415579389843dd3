"""Queued jobs and a drain, through a real corral-core in front of real llama-servers: a drained provider starts no
new job, the job it runs finishes, queued work goes to another provider of the model or waits for the undrain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
SHORT = {"model": "tiny", "messages": PROMPT, "max_tokens": 2}
# With context shift, 8,000 tokens keep the tiny model busy for a second or more: long enough to drain meanwhile.
LONG = {"model": "tiny", "messages": PROMPT, "max_tokens": 8000, "ignore_eos": True}


def app_client(daemon: CorralDaemon) -> httpx.Client:
    key = daemon.create_key("app")
    return httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=70)


def submit(app: httpx.Client, request: dict[str, Any]) -> str:
    response = app.post("/v1/queue/chat/completions", json={"request": request})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def waited(app: httpx.Client, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    response = app.get(f"/v1/queue/{job_id}/wait", params={"timeout": timeout_s})
    assert response.status_code == 200, response.text
    return dict(response.json())


def provider(daemon: CorralDaemon, name: str) -> dict[str, Any]:
    return dict(daemon.admin_call("GET", f"/providers/{name}").json())


@pytest.fixture
def one_provider(corral_daemon: CorralDaemon, llama_servers: Any) -> Iterator[tuple[CorralDaemon, httpx.Client]]:
    (server,) = llama_servers(1, extra_args=("--context-shift",))
    corral_daemon.add_provider("gpu0", server.base_url)
    with app_client(corral_daemon) as app:
        yield corral_daemon, app


def test_a_job_whose_only_provider_is_drained_waits_queued_and_runs_once_it_is_undrained(one_provider):
    daemon, app = one_provider
    daemon.admin_call("POST", "/providers/gpu0/drain")

    job_id = submit(app, SHORT)  # accepted: the model is served, its provider is only drained for now
    meanwhile = waited(app, job_id, timeout_s=1)
    assert (meanwhile["state"], meanwhile["attempts"]) == ("queued", 0)

    assert daemon.admin_call("POST", "/providers/gpu0/undrain").status_code == 200
    done = waited(app, job_id)
    assert (done["state"], done["attempts"], done["provider"]) == ("succeeded", 1, "gpu0")


def test_a_job_running_on_a_provider_being_drained_finishes_and_then_the_provider_is_drained(one_provider):
    daemon, app = one_provider

    job_id = submit(app, LONG)
    wait_for(lambda: provider(daemon, "gpu0")["in_flight"] == 1, "the job to be running on gpu0")
    drained = daemon.admin_call("POST", "/providers/gpu0/drain").json()
    assert (drained["state"], drained["in_flight"]) == ("draining", 1)

    done = waited(app, job_id)
    assert (done["state"], done["attempts"], done["provider"]) == ("succeeded", 1, "gpu0")
    assert done["usage"]["completion_tokens"] == LONG["max_tokens"]
    wait_for(lambda: provider(daemon, "gpu0")["state"] == "drained", "gpu0 to be drained")


def test_jobs_run_on_the_other_provider_of_the_model_while_one_is_drained(corral_daemon, llama_servers):
    first, second = llama_servers(2)
    corral_daemon.add_provider("gpu-a", first.base_url)
    corral_daemon.add_provider("gpu-b", second.base_url)
    corral_daemon.admin_call("POST", "/providers/gpu-a/drain")

    with app_client(corral_daemon) as app:
        jobs = [submit(app, SHORT) for _ in range(6)]
        finished = [waited(app, job_id) for job_id in jobs]

    assert {(job["state"], job["provider"]) for job in finished} == {("succeeded", "gpu-b")}
    assert provider(corral_daemon, "gpu-a")["requests"] == 0
