"""The request archive through a real corral-core in front of a real llama-server: every request is one row.

Rows are read back through the admin API (GET /history/{id}), waiting until the writer has written them, and
from the month files themselves with sqlite3, as an operator would open them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway_core.contracts.instants import month_of
from tests.testbed.child_processes import children_of, process_ended
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "Say something about zebras."}]
GENERATION = {"max_tokens": 8, "temperature": 0, "extra_body": {"ignore_eos": True}}
UPSTREAM_SECRET = "upstream-secret-0b5f1c9e2d7a4e8f"


def entry(daemon: CorralDaemon, request_id: str) -> dict[str, Any]:
    """The archived request, once the writer has written it."""
    found: dict[str, Any] = {}

    def written() -> bool:
        response = daemon.admin_call("GET", f"/history/{request_id}")
        if response.status_code == 200:
            found.update(response.json())
        return bool(found)

    wait_for(written, f"request {request_id} to be in the archive")
    return found


def month_files(daemon: CorralDaemon) -> list[Path]:
    return sorted((daemon.data_dir / "archive").glob("*.sqlite*"))


@pytest.fixture
def archived(tmp_path: Path, shared_llama_server: Any) -> Iterator[tuple[CorralDaemon, str, openai.OpenAI]]:
    daemon = CorralDaemon(tmp_path / "corral", extra_env={"CORRAL_TEST_UPSTREAM_KEY": UPSTREAM_SECRET}).start()
    # An OpenAI-type provider so the upstream key is sent on every request: it must never reach the archive.
    daemon.add_provider(
        "local",
        shared_llama_server.base_url + "/v1",
        type_="openai",
        api_key_env="CORRAL_TEST_UPSTREAM_KEY",
        models={"tiny": "tiny"},
    )
    key = daemon.create_key("app")
    client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0)
    yield daemon, key, client
    client.close()
    daemon.stop()


def test_a_sync_request_leaves_one_row_with_its_bodies_and_usage(archived):
    daemon, key, client = archived

    reply = client.chat.completions.with_raw_response.create(model="tiny", messages=PROMPT, **GENERATION)
    request_id = reply.headers["x-request-id"]
    completion = reply.parse()

    row = entry(daemon, request_id)
    assert row["status"] == 200
    assert row["source"] == "public"
    assert row["route"] == "chat"
    assert row["key_id"] == key.split("-")[2]
    assert row["key_name"] == "app"
    assert (row["model"], row["provider"], row["upstream_model"]) == ("tiny", "local", "tiny")
    assert row["providers_tried"] == ["local"]
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == 8
    assert row["stream"] is False
    assert row["client_address"] == "127.0.0.1"
    assert row["bytes_in"] > 0
    assert row["bytes_out"] > 0
    assert row["started_at"] <= row["ended_at"]
    assert row["latency_s"] > 0
    assert "zebras" in row["request_body"]
    assert row["response_format"] == "json"
    stored = json.loads(row["response_body"])
    assert stored["choices"][0]["message"]["content"] == completion.choices[0].message.content


def test_a_streamed_request_is_stored_as_the_text_the_client_received_with_usage_it_did_not_ask_for(archived):
    daemon, _, client = archived

    response = client.chat.completions.with_raw_response.create(
        model="tiny", messages=PROMPT, stream=True, **GENERATION
    )
    chunks = list(response.parse())
    received = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    row = entry(daemon, response.headers["x-request-id"])
    assert all(chunk.usage is None for chunk in chunks), "the client did not ask for usage"
    assert row["stream"] is True
    assert row["status"] == 200
    assert row["response_format"] == "text"
    assert row["response_body"] == received
    assert row["completion_tokens"] == 8
    assert row["prompt_tokens"] > 0
    assert row["first_token_at"] is not None
    assert row["ttft_s"] is not None
    assert row["tokens_per_s"] is not None
    assert row["tokens_per_s"] > 0


def test_refused_requests_are_archived_with_the_key_id_but_never_the_token(archived):
    daemon, key, _ = archived
    scoped = daemon.create_key("scoped", models=["other"])
    limited = daemon.create_key("limited", rpm=1)
    key_id = key.split("-")[2]
    wrong_secret = f"sk-corral-{key_id}-{'x' * 43}"
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 1}
    url = daemon.base_url + "/v1/chat/completions"

    def send(token: str, payload: dict[str, Any] = body) -> httpx.Response:
        return httpx.post(url, json=payload, headers={"authorization": f"Bearer {token}"}, timeout=30)

    refusals = {
        401: send(wrong_secret),
        403: send(scoped),
        404: send(key, {**body, "model": "no-such-model"}),
    }
    assert send(limited).status_code == 200
    refusals[429] = send(limited)

    for status, response in refusals.items():
        assert response.status_code == status, response.text
        row = entry(daemon, response.headers["x-request-id"])
        assert row["status"] == status
        assert row["error_code"] == response.json()["error"]["code"]
        assert row["error_message"] == response.json()["error"]["message"]
        assert row["providers_tried"] == []
        assert row["provider"] is None
    assert entry(daemon, refusals[401].headers["x-request-id"])["key_id"] == key_id
    assert entry(daemon, refusals[401].headers["x-request-id"])["key_name"] == "app"
    assert entry(daemon, refusals[403].headers["x-request-id"])["key_name"] == "scoped"
    for secret in (key, wrong_secret, scoped, limited):
        for path in month_files(daemon):
            assert secret.split("-")[-1].encode() not in path.read_bytes(), f"a key's secret is in {path.name}"


def test_no_secret_is_ever_stored_in_the_archive_files(archived):
    daemon, key, client = archived
    client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)
    list(client.chat.completions.create(model="tiny", messages=PROMPT, stream=True, **GENERATION))
    bad = httpx.post(
        daemon.base_url + "/v1/chat/completions",
        json={"model": "tiny", "messages": PROMPT},
        headers={"authorization": f"Bearer {key}x"},
        timeout=30,
    )
    entry(daemon, bad.headers["x-request-id"])
    assert daemon.stop() == 0  # SIGTERM: everything written

    files = month_files(daemon)
    assert files, "the archive wrote no month file"
    secret = key.split("-")[-1].encode()
    for path in files:
        data = path.read_bytes()
        assert secret not in data, f"the Corral key's secret is in {path.name}"
        assert UPSTREAM_SECRET.encode() not in data, f"the upstream key is in {path.name}"
        assert b"Bearer" not in data, f"an Authorization header is in {path.name}"


def test_sigterm_writes_every_request_already_answered(tmp_path, shared_llama_server):
    daemon = CorralDaemon(tmp_path / "corral").start()
    daemon.add_provider("local", shared_llama_server.base_url)
    key = daemon.create_key("app")
    ids = []
    with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        for _ in range(40):
            answer = http.post("/v1/chat/completions", json={"model": "tiny", "messages": PROMPT, "max_tokens": 2})
            ids.append(answer.headers["x-request-id"])

    assert daemon.stop() == 0
    with sqlite3.connect(daemon.data_dir / "archive" / f"{month_of(time.time())}.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT id FROM requests")}
    assert set(ids) <= stored


def test_redacted_fields_are_replaced_before_storage(tmp_path, shared_llama_server):
    daemon = CorralDaemon(
        tmp_path / "corral", extra_args=("--redact", "messages.*.content", "--redact", "user")
    ).start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        key = daemon.create_key("app")
        with openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0) as client:
            reply = client.chat.completions.with_raw_response.create(
                model="tiny", messages=PROMPT, user="alice@example.com", **GENERATION
            )
        row = entry(daemon, reply.headers["x-request-id"])
        assert "zebras" not in row["request_body"]
        assert "alice@example.com" not in row["request_body"]
        assert '"[redacted]"' in row["request_body"]
        assert '"role":"user"' in row["request_body"].replace(" ", "")  # only the named fields go
    finally:
        daemon.stop()


def test_metadata_capture_on_a_key_keeps_the_row_without_bodies_and_off_keeps_nothing(archived):
    daemon, _, _ = archived
    quiet = daemon.create_key("quiet", capture="metadata")
    secretive = daemon.create_key("secretive", capture="off")
    headers = {"content-type": "application/json"}
    ids = {}
    for name, token in (("quiet", quiet), ("secretive", secretive)):
        answer = httpx.post(
            daemon.base_url + "/v1/chat/completions",
            json={"model": "tiny", "messages": PROMPT, "max_tokens": 2},
            headers={**headers, "authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200
        ids[name] = answer.headers["x-request-id"]

    row = entry(daemon, ids["quiet"])
    assert row["capture"] == "metadata"
    assert row["request_body"] is None
    assert row["response_body"] is None
    assert row["completion_tokens"] == 2
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.data_dir / "archive" / f"{month_of(time.time())}.sqlite") as db:
        assert db.execute("SELECT count(*) FROM requests WHERE id = ?", (ids["secretive"],)).fetchone() == (0,)


def test_kill_9_under_load_loses_at_most_the_last_batch_and_the_file_stays_sound(tmp_path, shared_llama_server):
    daemon = CorralDaemon(tmp_path / "corral").start()
    daemon.add_provider("local", shared_llama_server.base_url)
    key = daemon.create_key("app")
    answered: list[tuple[float, str]] = []  # (when the client had the answer, its id)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=10) as http:
            for _ in range(5000):  # bounded: the kill normally ends it within a couple of seconds
                if stop.is_set():
                    return
                try:
                    answer = http.post(
                        "/v1/chat/completions", json={"model": "tiny", "messages": PROMPT, "max_tokens": 1}
                    )
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    answered.append((time.monotonic(), answer.headers["x-request-id"]))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    wait_for(lambda: len(answered) >= 300, "300 answered requests under load", timeout_s=60)
    assert daemon.process is not None
    writers = children_of(daemon.process.pid)  # the archive's writer process
    assert writers, "corral-core runs its archive writer in a process of its own"
    daemon.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    daemon.process.wait(timeout=10)
    # The writer outlives the daemon just long enough to write what it was sent.
    wait_for(lambda: all(process_ended(pid) for pid in writers), "the orphaned writer to finish")

    path = daemon.data_dir / "archive" / f"{month_of(time.time())}.sqlite"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in db.execute("SELECT id FROM requests")}
    lost = [(at, request_id) for at, request_id in answered if at <= killed_at and request_id not in stored]
    oldest_lost = max((killed_at - at for at, _ in lost), default=0.0)
    print(
        f"kill -9 after {len(answered)} answers: {len(lost)} lost, the oldest answered {oldest_lost:.3f} s "
        "before the kill"
    )
    assert oldest_lost <= 1.0, f"rows answered {oldest_lost:.2f}s before the kill were lost: more than the last batch"


def test_a_blocked_writer_process_drops_and_counts_rows_while_requests_go_on(tmp_path, shared_llama_server):
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--archive-queue", "20")).start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        key = daemon.create_key("app")
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "tiny", "messages": PROMPT, "max_tokens": 1}
        with httpx.Client(base_url=daemon.base_url, headers=headers, timeout=30) as http:
            entry(daemon, http.post("/v1/chat/completions", json=body).headers["x-request-id"])
            path = daemon.data_dir / "archive" / f"{month_of(time.time())}.sqlite"
            blocker = sqlite3.connect(path, timeout=0.1)
            blocker.execute("BEGIN EXCLUSIVE")  # the writer process can write nothing
            try:
                statuses = [http.post("/v1/chat/completions", json=body).status_code for _ in range(60)]
                status = daemon.admin_call("GET", "/archive").json()
            finally:
                blocker.rollback()
                blocker.close()
            assert statuses == [200] * 60, "no request waits for the writer"
            assert status["dropped"] >= 60 - 20 - 2, status
            assert status["state"] in ("dropping", "failing")
            metrics = http.get("/metrics").text
            assert "corral_archive_rows_dropped_total" in metrics
            wait_for(
                lambda: daemon.admin_call("GET", "/archive").json()["queued"] == 0,
                "the writer to catch up once the lock is gone",
            )
            later = http.post("/v1/chat/completions", json=body).headers["x-request-id"]
            entry(daemon, later)
    finally:
        daemon.stop()
