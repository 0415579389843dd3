"""The public queue API over HTTP against a real corral-core: submit, poll, wait, list, cancel; what is refused at
submit; one key never sees another's jobs; the admin /jobs routes.

The model "tiny" is a real llama-server; "stuck" is a fault server that hangs, so a job on it stays queued or
running until it is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.contracts.jobs import FINAL_STATES, JOB_STATES
from tests.fakes.fault_server import FaultServer
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
STUCK = {"model": "stuck", "messages": [{"role": "user", "content": "Never answered."}], "max_tokens": 2}


@dataclass
class Queue:
    daemon: CorralDaemon
    a: httpx.Client  # key "app-a": every model
    b: httpx.Client  # key "app-b": every model
    narrow: httpx.Client  # key "narrow": model "other" only
    stuck: FaultServer

    def submit(self, client: httpx.Client, request: dict[str, Any] | None = None, **fields: Any) -> httpx.Response:
        return client.post("/v1/queue/chat/completions", json={"request": request or CHAT, **fields})


def keyed(daemon: CorralDaemon, name: str, **fields: Any) -> httpx.Client:
    key = daemon.create_key(name, **fields)
    return httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30.0)


@pytest.fixture
def queue(tmp_path: Path, shared_llama_server: Any) -> Iterator[Queue]:
    with FaultServer(model="stuck") as stuck:
        stuck.set_mode("hang")
        # No drain at the stop: jobs left hanging on "stuck" are cut off at once (queued on disk), not waited for.
        daemon = CorralDaemon(tmp_path / "corral", extra_args=("--drain-timeout", "0")).start()
        daemon.add_provider("local", shared_llama_server.base_url)
        daemon.add_provider("stuck", stuck.base_url)
        daemon.add_provider("idle", shared_llama_server.base_url, models={"other": "tiny"})
        clients = [keyed(daemon, "app-a"), keyed(daemon, "app-b"), keyed(daemon, "narrow", models=["other"])]
        try:
            wait_for_models(clients[0], {"tiny", "stuck", "other"})
            yield Queue(daemon, *clients, stuck=stuck)
        finally:
            for client in clients:
                client.close()
            daemon.stop()


def wait_for_models(client: httpx.Client, models: set[str]) -> None:
    wait_for(
        lambda: models <= {m["id"] for m in client.get("/v1/models").json()["data"]},
        f"the providers to list {sorted(models)}",
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


# -- submit and poll


def test_a_submit_answers_202_with_the_job_id_and_where_to_poll(queue: Queue):
    response = queue.submit(queue.a, ref_id="order-1", tag="nightly")

    assert response.status_code == 202
    submitted = response.json()
    assert set(submitted) == {"id", "ref_id", "state", "status_url"}
    assert submitted["id"].startswith("job_")
    assert len(submitted["id"]) == 4 + 26
    assert submitted["ref_id"] == "order-1"
    assert submitted["state"] == "queued"
    assert submitted["status_url"] == f"/v1/queue/{submitted['id']}"
    assert response.headers["location"] == submitted["status_url"]
    assert response.headers["x-request-id"]

    job = queue.a.get(submitted["status_url"]).json()
    assert job["id"] == submitted["id"]
    assert (job["ref_id"], job["tag"], job["model"], job["route"]) == ("order-1", "nightly", "tiny", "chat")
    assert job["state"] in JOB_STATES


def test_a_job_runs_and_wait_answers_its_result(queue: Queue):
    submitted = queue.submit(queue.a, ref_id="run-1").json()

    job = queue.a.get(f"/v1/queue/{submitted['id']}/wait", params={"timeout": 30}).json()

    assert job["state"] == "succeeded", job
    assert job["attempts"] == 1
    assert job["provider"] == "local"
    assert job["result"]["object"] == "chat.completion"
    assert job["usage"]["completion_tokens"] >= 1
    assert job["error"] is None
    assert job["finished_at"] >= job["started_at"] >= job["created_at"]
    by_ref = queue.a.get("/v1/queue/ref/run-1").json()
    assert by_ref["id"] == submitted["id"]
    assert by_ref["state"] == "succeeded"


def test_completions_and_embeddings_are_queued_too(queue: Queue):
    completion = queue.a.post(
        "/v1/queue/completions", json={"request": {"model": "tiny", "prompt": "Once", "max_tokens": 2}}
    )
    embedding = queue.a.post("/v1/queue/embeddings", json={"request": {"model": "tiny", "input": "zebra"}})

    assert completion.status_code == 202, completion.text
    assert embedding.status_code == 202, embedding.text
    assert queue.a.get(completion.json()["status_url"]).json()["route"] == "completions"
    assert queue.a.get(embedding.json()["status_url"]).json()["route"] == "embeddings"


def test_a_job_is_found_by_a_ref_id_holding_a_slash_or_spaces(queue: Queue):
    job_id = queue.submit(queue.a, STUCK, ref_id="orders/2026 12/7").json()["id"]

    found = queue.a.get("/v1/queue/ref/orders%2F2026%2012%2F7")

    assert found.status_code == 200, found.text
    assert found.json()["id"] == job_id


def test_a_second_submit_with_the_same_ref_id_returns_the_existing_job(queue: Queue):
    first = queue.submit(queue.a, ref_id="order-2")
    again = queue.submit(queue.a, ref_id="order-2", tag="changed")
    other_key = queue.submit(queue.b, ref_id="order-2")

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other_key.status_code == 202  # ref_ids are the key's own
    assert other_key.json()["id"] != first.json()["id"]
    assert queue.a.get(first.json()["status_url"]).json()["tag"] is None  # the first submit's job, unchanged


def test_wait_answers_the_state_as_it_is_once_its_timeout_passes(queue: Queue):
    job_id = queue.submit(queue.a, STUCK).json()["id"]
    started = time.monotonic()

    job = queue.a.get(f"/v1/queue/{job_id}/wait", params={"timeout": 0.5}).json()

    assert time.monotonic() - started >= 0.5
    assert job["state"] in {"queued", "running"}


def test_wait_wakes_when_the_job_is_cancelled(queue: Queue):
    job_id = queue.submit(queue.a, STUCK).json()["id"]

    with httpx.Client(base_url=queue.daemon.base_url, headers=queue.a.headers, timeout=30.0) as waiter:
        answer: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answer.append(waiter.get(f"/v1/queue/{job_id}/wait", params={"timeout": 20}))
        )
        started = time.monotonic()
        thread.start()
        assert queue.a.delete(f"/v1/queue/{job_id}").status_code == 200
        thread.join(timeout=10)

    assert answer, "the wait did not answer"
    assert answer[0].json()["state"] == "cancelled"
    assert time.monotonic() - started < 10


# -- cancel


def test_cancelling_a_job_that_has_not_finished_makes_it_cancelled_with_a_reason(queue: Queue):
    job_id = queue.submit(queue.a, STUCK).json()["id"]

    response = queue.a.delete(f"/v1/queue/{job_id}")

    assert response.status_code == 200
    job = response.json()
    assert job["state"] == "cancelled"
    assert job["error"]["code"] == "cancelled"
    assert job["finished_at"] is not None
    assert queue.a.get(f"/v1/queue/{job_id}").json()["state"] == "cancelled"
    assert queue.a.delete(f"/v1/queue/{job_id}").json()["state"] == "cancelled"  # again: the job as it is


def test_cancels_sent_together_all_answer_the_cancelled_job(queue: Queue):
    job_id = queue.submit(queue.a, STUCK).json()["id"]

    async def cancel_five() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=queue.daemon.base_url, headers=queue.a.headers) as client:
            return list(await asyncio.gather(*(client.delete(f"/v1/queue/{job_id}") for _ in range(5))))

    answers = asyncio.run(cancel_five())

    assert [(a.status_code, a.json()["state"]) for a in answers] == [(200, "cancelled")] * 5
    counts = queue.daemon.admin_call("GET", "/jobs/counts").json()
    assert (counts["cancelled"], counts["queued"] + counts["running"]) == (1, 0)


# -- list


def test_a_keys_list_is_newest_first_in_pages_and_filters_by_tag_and_state(queue: Queue):
    ids = [queue.submit(queue.a, STUCK, tag="batch-7").json()["id"] for _ in range(5)]
    queue.submit(queue.a, STUCK, tag="other")
    queue.a.delete(f"/v1/queue/{ids[0]}")

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"tag": "batch-7", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = queue.a.get("/v1/queue", params=params).json()
        assert page["object"] == "list"
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))
    cancelled = queue.a.get("/v1/queue", params={"state": "cancelled"}).json()["data"]
    assert [job["id"] for job in cancelled] == [ids[0]]


def test_bad_list_parameters_are_400s_naming_the_parameter(queue: Queue):
    for params, param in (
        ({"state": "done"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"cursor": "zzz"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ):
        response = queue.a.get("/v1/queue", params=params)
        assert response.status_code == 400, params
        assert error_of(response)["param"] == param


# -- refused at submit


def test_an_unknown_model_is_refused_with_404(queue: Queue):
    response = queue.submit(queue.a, {**CHAT, "model": "no-such-model"})

    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


def test_a_model_this_key_may_not_use_is_refused_with_403(queue: Queue):
    response = queue.submit(queue.narrow, CHAT)

    assert response.status_code == 403
    assert error_of(response)["code"] == "model_not_allowed"
    assert queue.submit(queue.narrow, {**CHAT, "model": "other"}).status_code == 202


def test_a_streamed_request_is_refused_with_400(queue: Queue):
    response = queue.submit(queue.a, {**CHAT, "stream": True})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "stream_not_queued"
    assert "never streamed" in error["message"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b'{"ref_id": "x"}', "no request"),
        (b'{"request": {"model": "tiny"}, "colour": "red"}', "unknown field"),
        (b'{"request": {"model": "tiny"}}', "no messages"),
        (b'{"request": {"model": "tiny", "messages": "hi"}}', "messages not a list"),
        (b'{"request": {"model": "tiny", "messages": []}, "priority": 1000}', "priority out of range"),
        (b'{"request": {"model": "tiny", "messages": []}, "ref_id": ""}', "empty ref_id"),
    ],
)
def test_a_bad_body_is_refused_with_400(queue: Queue, body: bytes, why: str):
    response = queue.a.post("/v1/queue/chat/completions", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, (why, response.text)
    assert error_of(response)["type"] == "invalid_request_error"


def test_a_pinned_provider_must_exist_and_serve_the_model(queue: Queue):
    unknown = queue.submit(queue.a, provider="nowhere")
    not_serving = queue.submit(queue.a, provider="stuck")
    serving = queue.submit(queue.a, provider="local")

    assert unknown.status_code == 404
    assert error_of(unknown)["param"] == "provider"
    assert not_serving.status_code == 400
    assert error_of(not_serving)["code"] == "provider_not_serving_model"
    assert serving.status_code == 202


def test_a_request_without_a_valid_key_is_refused_with_401(queue: Queue):
    with httpx.Client(base_url=queue.daemon.base_url) as anonymous:
        missing = anonymous.post("/v1/queue/chat/completions", json={"request": CHAT})
        wrong = anonymous.get("/v1/queue", headers={"authorization": "Bearer sk-corral-nope-nope"})

    assert missing.status_code == 401
    assert error_of(missing)["code"] == "missing_api_key"
    assert wrong.status_code == 401


# -- isolation


def test_another_keys_job_cannot_be_read_waited_on_listed_or_cancelled(queue: Queue):
    job = queue.submit(queue.a, STUCK, ref_id="secret-order").json()
    job_id = job["id"]

    answers = [
        queue.b.get(f"/v1/queue/{job_id}"),
        queue.b.get(f"/v1/queue/{job_id}/wait", params={"timeout": 0}),
        queue.b.delete(f"/v1/queue/{job_id}"),
        queue.b.get("/v1/queue/ref/secret-order"),
    ]

    for response in answers:
        assert response.status_code == 404, response.request.url
        assert error_of(response)["code"] == "job_not_found"
    assert queue.b.get("/v1/queue").json()["data"] == []
    assert queue.a.get(f"/v1/queue/{job_id}").json()["state"] in {"queued", "running"}  # B's cancel did nothing
    unknown = queue.b.get("/v1/queue/job_00000000000000000000000000")
    assert unknown.status_code == 404
    assert error_of(unknown)["message"] == error_of(answers[0])["message"].replace(job_id, unknown.url.path[10:])


# -- admin


def test_the_admin_api_lists_every_keys_jobs_counts_them_cancels_and_retries(queue: Queue):
    a_job = queue.submit(queue.a, STUCK).json()["id"]
    b_job = queue.submit(queue.b, STUCK).json()["id"]

    listed = queue.daemon.admin_call("GET", "/jobs").json()
    by_key_name = queue.daemon.admin_call("GET", "/jobs?key=app-b").json()
    unknown_key = queue.daemon.admin_call("GET", "/jobs?key=nobody")
    one = queue.daemon.admin_call("GET", f"/jobs/{a_job}").json()
    cancelled = queue.daemon.admin_call("POST", f"/jobs/{a_job}/cancel").json()
    not_retryable = queue.daemon.admin_call("POST", f"/jobs/{b_job}/retry")
    retried = queue.daemon.admin_call("POST", f"/jobs/{a_job}/retry").json()
    counts = queue.daemon.admin_call("GET", "/jobs/counts").json()
    missing = queue.daemon.admin_call("GET", "/jobs/job_00000000000000000000000000")

    assert {job["id"] for job in listed["data"]} >= {a_job, b_job}
    assert [job["id"] for job in by_key_name["data"]] == [b_job]
    assert unknown_key.status_code == 404
    assert one["key_id"] != queue.daemon.admin_call("GET", f"/jobs/{b_job}").json()["key_id"]
    assert cancelled["state"] == "cancelled"
    assert cancelled["error"]["message"] == "the job was cancelled by an operator"
    assert not_retryable.status_code == 409
    assert retried["state"] == "queued"
    assert retried["error"] is None
    assert set(counts) == set(JOB_STATES)
    assert counts["cancelled"] == 0
    assert counts["queued"] + counts["running"] == 2
    assert missing.status_code == 404


def test_the_event_streams_snapshot_carries_the_job_counts(queue: Queue):
    queue.submit(queue.a, STUCK)

    with queue.daemon.admin() as admin, admin.stream("GET", "/events") as stream:
        lines = stream.iter_lines()
        event = next(line for line in lines if line.startswith("event:"))
        data = next(line for line in lines if line.startswith("data:"))

    assert event == "event: snapshot"
    jobs = json.loads(data.removeprefix("data:"))["jobs"]
    assert set(jobs) == set(JOB_STATES)
    assert jobs["queued"] + jobs["running"] == 1
    assert not FINAL_STATES & {state for state, n in jobs.items() if n}


def test_each_change_of_a_job_is_a_job_event_without_its_result(queue: Queue):
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def follow() -> None:
        with queue.daemon.admin() as admin, admin.stream("GET", "/events") as stream:
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:") and kind == "job":
                    seen.append(json.loads(line.removeprefix("data:")))
                if kind == "snapshot" and line.startswith("data:"):
                    done.set()  # subscribed: what follows is live
                if any(event["state"] == "succeeded" for event in seen):
                    return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert done.wait(10), "the event stream never sent its snapshot"
    stuck_id = queue.submit(queue.a, STUCK).json()["id"]
    queue.a.delete(f"/v1/queue/{stuck_id}")
    run_id = queue.submit(queue.a).json()["id"]
    follower.join(timeout=30)

    stuck_states = [event["state"] for event in seen if event["id"] == stuck_id]
    run_states = [event["state"] for event in seen if event["id"] == run_id]
    assert stuck_states[0] == "queued"
    assert stuck_states[-1] == "cancelled"
    assert run_states[0] == "queued"
    assert "running" in run_states
    assert run_states[-1] == "succeeded"
    assert all(event["result"] is None for event in seen)
