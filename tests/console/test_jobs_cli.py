"""`corral jobs …`, `corral callbacks …` and a key's webhook secret, run as a user runs them, against a real
corral-core whose jobs were submitted over the public queue API.

The model "tiny" is a real llama-server; "stuck" is a fault server that hangs, so a job on it stays running until
it is cancelled. Callbacks go to a real HTTP receiver on 127.0.0.1 (allowed with --callback-allow) on a compressed
retry schedule.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.test_cli import corral
from tests.fakes.fault_server import FaultServer
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
STUCK = {"model": "stuck", "messages": [{"role": "user", "content": "Never answered."}], "max_tokens": 2}


class Receiver:
    """A real HTTP receiver in a thread, answering every callback with `status` (settable) and counting them."""

    def __init__(self) -> None:
        self.status = 200
        self.arrivals: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.arrivals.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Queue:
    daemon: CorralDaemon
    app: httpx.Client  # key "webapp"
    other: httpx.Client  # key "batch"
    receiver: Receiver

    def submit(self, client: httpx.Client, request: dict[str, Any] | None = None, **fields: Any) -> str:
        response = client.post("/v1/queue/chat/completions", json={"request": request or CHAT, **fields})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def state(self, job_id: str) -> str:
        state: str = self.daemon.admin_call("GET", f"/jobs/{job_id}").json()["state"]
        return state

    def wait_state(self, job_id: str, state: str) -> None:
        wait_for(lambda: self.state(job_id) == state, f"job {job_id} to be {state}")

    def corral(self, *args: str) -> Any:
        return corral(self.daemon.socket_path, *args)


def keyed(daemon: CorralDaemon, name: str) -> httpx.Client:
    key = daemon.create_key(name)
    return httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30.0)


@pytest.fixture
def queue(tmp_path: Path, shared_llama_server: Any) -> Iterator[Queue]:
    with FaultServer(model="stuck") as stuck, Receiver() as receiver:
        stuck.set_mode("hang")
        daemon = CorralDaemon(
            tmp_path / "corral",
            extra_args=("--callback-allow", "127.0.0.1/32", "--callback-schedule", "0.05s,0.05s"),
        ).start()
        daemon.add_provider("local", shared_llama_server.base_url)
        daemon.add_provider("stuck", stuck.base_url)
        clients = [keyed(daemon, "webapp"), keyed(daemon, "batch")]
        try:
            wait_for(
                lambda: {"tiny", "stuck"} <= {m["id"] for m in clients[0].get("/v1/models").json()["data"]},
                "the providers to list their models",
            )
            yield Queue(daemon, *clients, receiver=receiver)
        finally:
            for client in clients:
                client.close()
            daemon.stop()


def test_jobs_list_shows_every_keys_jobs_newest_first_under_the_counts(queue):
    first = queue.submit(queue.app, tag="nightly")
    second = queue.submit(queue.other)
    queue.wait_state(first, "succeeded")
    queue.wait_state(second, "succeeded")

    result = queue.corral("jobs", "list")

    assert result.returncode == 0, result.stderr
    counts, header, *rows = result.stdout.splitlines()
    assert counts == "jobs: 0 queued · 0 running · 2 succeeded"
    assert header.split()[:6] == ["ID", "KEY", "MODEL", "STATE", "AGE", "ATTEMPTS"]
    assert [row.split()[:4] for row in rows] == [
        [second, "batch", "tiny", "succeeded"],
        [first, "webapp", "tiny", "succeeded"],
    ]
    assert "nightly" in rows[1]
    assert "\x1b" not in result.stdout


def test_jobs_list_filters_by_key_name_state_and_tag_and_json_is_the_apis_page(queue):
    mine = queue.submit(queue.app, tag="nightly")
    queue.submit(queue.other)
    stuck = queue.submit(queue.app, STUCK)
    queue.wait_state(mine, "succeeded")
    queue.wait_state(stuck, "running")

    by_key = json.loads(queue.corral("jobs", "list", "--key", "webapp", "--json").stdout)
    by_state = json.loads(queue.corral("jobs", "list", "--state", "running", "--json").stdout)
    by_tag = json.loads(queue.corral("jobs", "list", "--tag", "nightly", "--json").stdout)
    limited = json.loads(queue.corral("jobs", "list", "--limit", "1", "--json").stdout)

    assert by_key["object"] == "list"
    assert {job["id"] for job in by_key["data"]} == {mine, stuck}
    assert [job["id"] for job in by_state["data"]] == [stuck]
    assert [job["id"] for job in by_tag["data"]] == [mine]
    assert [job["id"] for job in limited["data"]] == [stuck]
    assert limited["next_cursor"] is not None, "more jobs than the limit: the cursor to go on with"


def test_jobs_show_prints_the_status_object_with_the_result(queue):
    job_id = queue.submit(queue.app, ref_id="order-42")
    queue.wait_state(job_id, "succeeded")

    as_json = queue.corral("jobs", "show", job_id, "--json")
    as_text = queue.corral("jobs", "show", job_id)

    assert as_json.returncode == as_text.returncode == 0
    shown = json.loads(as_json.stdout)
    assert shown["id"] == job_id
    assert shown["ref_id"] == "order-42"
    assert shown["result"]["object"] == "chat.completion"
    lines = as_text.stdout.splitlines()
    assert lines[0].split() == ["id", job_id]
    assert lines[1].split() == ["ref_id", "order-42"]
    assert any(line.split()[:2] == ["key", "webapp"] for line in lines)
    assert "result:" in lines
    assert json.loads(as_text.stdout.split("result:\n", 1)[1]) == shown["result"]


def test_cancelling_a_running_job_ends_it_and_a_second_cancel_says_it_has_ended(queue):
    job_id = queue.submit(queue.app, STUCK)
    queue.wait_state(job_id, "running")

    cancelled = queue.corral("jobs", "cancel", job_id)
    again = queue.corral("jobs", "cancel", job_id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled job {job_id} (it was running on stuck; its upstream request is cancelled)\n"
    assert queue.state(job_id) == "cancelled"
    assert again.returncode == 1
    assert (
        f"job {job_id} has already ended (cancelled): nothing to cancel; `corral jobs retry {job_id}`" in again.stderr
    )


def test_a_cancelled_job_retried_runs_again_and_a_succeeded_one_is_refused_with_the_reason(queue):
    job_id = queue.submit(queue.app, STUCK)
    queue.wait_state(job_id, "running")
    assert queue.corral("jobs", "cancel", job_id).returncode == 0
    done = queue.submit(queue.app)
    queue.wait_state(done, "succeeded")

    retried = queue.corral("jobs", "retry", job_id)
    refused = queue.corral("jobs", "retry", done)

    assert retried.returncode == 0, retried.stderr
    assert f"job {job_id} is queued again" in retried.stdout
    queue.wait_state(job_id, "running")  # the stuck provider took it again
    assert refused.returncode == 1
    assert f"job '{done}' is succeeded: only a failed or cancelled job can be retried" in refused.stderr
    assert refused.stdout == ""


def test_an_unknown_job_exits_1_with_the_daemons_message(queue):
    result = queue.corral("jobs", "show", "job_nothere")

    assert result.returncode == 1
    assert "job_nothere" in result.stderr
    assert result.stdout == ""


def test_a_usage_error_exits_2_saying_what_is_accepted(queue):
    result = queue.corral("jobs", "list", "--state", "sleeping")

    assert result.returncode == 2
    assert "invalid choice: 'sleeping'" in result.stderr


def test_a_dead_lettered_callback_is_listed_and_redelivered_from_the_command_line(queue):
    queue.receiver.status = 503
    job_id = queue.submit(queue.app, reply_to=queue.receiver.url)
    queue.wait_state(job_id, "succeeded")

    def dead() -> list[dict[str, Any]]:
        listing = json.loads(queue.corral("callbacks", "list", "--state", "dead", "--json").stdout)
        found: list[dict[str, Any]] = listing["data"]
        return found

    wait_for(lambda: bool(dead()), "the delivery to be dead-lettered after its three attempts")
    (delivery,) = dead()
    assert delivery["job_id"] == job_id
    assert len(queue.receiver.arrivals) == 3, "the first attempt and the schedule's two retries"
    table = queue.corral("callbacks", "list")
    assert table.returncode == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "JOB", "TYPE", "STATE"]
    assert row.split()[:6] == [delivery["id"], job_id, "job.succeeded", "dead", "3", "503"]

    queue.receiver.status = 200
    redelivered = queue.corral("callbacks", "redeliver", delivery["id"])

    assert redelivered.returncode == 0, redelivered.stderr
    assert f"delivery {delivery['id']} (job {job_id}) is pending again" in redelivered.stdout
    wait_for(
        lambda: (
            [
                d["id"]
                for d in json.loads(queue.corral("callbacks", "list", "--state", "delivered", "--json").stdout)["data"]
            ]
            == [delivery["id"]]
        ),
        "the redelivered callback to be delivered",
    )
    assert queue.receiver.arrivals[-1]["webhook-id"] == delivery["id"], "the same webhook-id, so receivers de-duplicate"


def test_keys_create_shows_the_webhook_secret_once_and_rotating_prints_a_new_one_on_the_last_line(queue):
    created = queue.corral("keys", "create", "hooks")
    rotated = queue.corral("keys", "rotate-webhook-secret", "hooks")
    listed = queue.corral("keys", "list", "--json")

    assert created.returncode == 0, created.stderr
    *_, secret_line, _warning, key = created.stdout.rstrip("\n").split("\n")
    assert key.startswith("sk-corral-"), "the key stays alone on the last line"
    first_secret = secret_line.rsplit(" ", 1)[1]
    assert first_secret.startswith("whsec_")
    assert rotated.returncode == 0, rotated.stderr
    *before, new_secret = rotated.stdout.rstrip("\n").split("\n")
    assert new_secret.startswith("whsec_")
    assert new_secret != first_secret
    assert "the previous one signs too until" in before[0]
    assert first_secret not in listed.stdout
    assert new_secret not in listed.stdout


def test_rotating_the_webhook_secret_of_an_unknown_key_exits_1(queue):
    result = queue.corral("keys", "rotate-webhook-secret", "nobody")

    assert result.returncode == 1
    assert "nobody" in result.stderr
