"""Scheduling and running jobs through a real corral-core and real llama-servers, over the public queue API:
cancel frees the llama-server slot, fairness across keys, failover to another provider, the attempt limit, and a
SIGTERM that leaves work queued for the next start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.fault_server import FaultServer
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
ENDLESS = {"model": "tiny", "messages": PROMPT, "max_tokens": 1_000_000, "ignore_eos": True}
SHORT = {"model": "tiny", "messages": PROMPT, "max_tokens": 4}
FINAL = ("succeeded", "failed", "cancelled")


def client_for(daemon: CorralDaemon, name: str, **fields: Any) -> httpx.Client:
    key = daemon.create_key(name, **fields)
    return httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30.0)


def submit(client: httpx.Client, request: dict[str, Any], **fields: Any) -> str:
    response = client.post("/v1/queue/chat/completions", json={"request": request, **fields})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/queue/{job_id}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def slots_busy(server: Any) -> int:
    return sum(1 for slot in httpx.get(server.base_url + "/slots").json() if slot["is_processing"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[CorralDaemon]:
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--drain-timeout", "1")).start()
    yield daemon
    daemon.stop()


def test_deleting_a_running_job_frees_its_llama_server_slot(daemon, llama_servers):
    (server,) = llama_servers(1, parallel=2, extra_args=("--context-shift",))
    daemon.add_provider("llama", server.base_url)
    with client_for(daemon, "app") as app:
        job_id = submit(app, ENDLESS)
        wait_for(lambda: slots_busy(server) == 1, "llama-server to be generating the job")
        assert job(app, job_id)["state"] == "running"

        assert app.delete(f"/v1/queue/{job_id}").status_code == 200

        wait_for(lambda: slots_busy(server) == 0, "llama-server's slot to be free")
        cancelled = job(app, job_id)
    assert cancelled["state"] == "cancelled"
    assert cancelled["attempts"] == 1
    wait_for(lambda: daemon.admin_call("GET", "/requests").json() == [], "no request in flight")


def test_the_five_jobs_of_one_key_end_before_the_five_hundred_of_another(daemon, llama_servers):
    (server,) = llama_servers(1, parallel=2)
    daemon.add_provider("llama", server.base_url)
    with client_for(daemon, "busy") as busy, client_for(daemon, "light") as light:
        # Drained, the provider takes nothing: the whole backlog is queued before the light key submits.
        assert daemon.admin_call("POST", "/providers/llama/drain").status_code == 200
        backlog = [submit(busy, SHORT) for _ in range(500)]
        few = [submit(light, SHORT) for _ in range(5)]
        assert daemon.admin_call("POST", "/providers/llama/undrain").status_code == 200

        def finished_at(client: httpx.Client, job_id: str) -> float:
            found = job(client, job_id)
            assert found["state"] == "succeeded", found
            return float(found["finished_at"])

        wait_for(
            lambda: daemon.admin_call("GET", "/jobs/counts").json()["succeeded"] == 505,
            "the 505 jobs to succeed",
            timeout_s=120,
        )
        light_done = max(finished_at(light, job_id) for job_id in few)
        busy_done = sorted(finished_at(busy, job_id) for job_id in backlog)
    # Round-robin: the light key's five ran among the first of the busy key's, not after its 500.
    assert sum(1 for at in busy_done if at <= light_done) < 20


def test_a_failed_attempt_goes_to_another_provider_of_the_model(daemon, llama_servers):
    (server,) = llama_servers(1, parallel=2)
    with FaultServer() as flaky:
        flaky.set_mode("status", status=502, message="bad gateway", times=1)
        daemon.add_provider("flaky", flaky.base_url, priority=10, max_concurrency=1)
        daemon.add_provider("llama", server.base_url)
        with client_for(daemon, "app") as app:
            job_id = submit(app, SHORT)
            wait_for(lambda: job(app, job_id)["state"] in FINAL, "the job to end")
            ended = job(app, job_id)
    assert ended["state"] == "succeeded", ended
    assert ended["result"]["object"] == "chat.completion"
    wait_for(lambda: daemon.admin_call("GET", f"/history/{job_id}").status_code == 200, "the attempt's archive row")
    history = daemon.admin_call("GET", f"/history/{job_id}").json()
    assert (history["source"], history["status"], history["provider"]) == ("queue", 200, "llama")
    assert history["providers_tried"] == ["flaky", "llama"]


def test_a_job_whose_every_attempt_fails_ends_failed_with_the_reason(tmp_path, llama_servers):
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--job-attempts", "2")).start()
    try:
        with FaultServer() as broken:
            broken.set_mode("status", status=503, message="overloaded")
            daemon.add_provider("broken", broken.base_url, models={"tiny": "tiny"})
            with client_for(daemon, "app") as app:
                job_id = submit(app, SHORT)
                wait_for(lambda: job(app, job_id)["state"] in FINAL, "the job to end")
                ended = job(app, job_id)
    finally:
        daemon.stop()
    assert ended["state"] == "failed"
    assert ended["attempts"] == 2
    assert ended["error"]["message"].startswith("failed after 2 attempts")
    assert "broken" in ended["error"]["message"]


def test_sigterm_leaves_queued_jobs_queued_and_they_run_at_the_next_start(tmp_path, llama_servers):
    (server,) = llama_servers(1, parallel=1, extra_args=("--context-shift",))
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--drain-timeout", "0.5")).start()
    try:
        daemon.add_provider("llama", server.base_url)
        key = daemon.create_key("app")
        with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}) as app:
            endless = submit(app, ENDLESS)
            # Ahead of the endless job once it is queued again: they run first at the next start.
            waiting = [submit(app, SHORT, priority=1) for _ in range(3)]
            wait_for(lambda: job(app, endless)["state"] == "running", "the endless job to run")
        assert daemon.stop() == 0
        wait_for(lambda: slots_busy(server) == 0, "the cut-off attempt's slot to free")

        daemon.start()
        with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}) as app:
            wait_for(lambda: all(job(app, job_id)["state"] == "succeeded" for job_id in waiting), "the queued jobs")
            again = job(app, endless)
            assert again["state"] == "running"
            assert again["attempts"] == 2  # cut off by the drain timeout, run again
            app.delete(f"/v1/queue/{endless}")
    finally:
        daemon.stop()
