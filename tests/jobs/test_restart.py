"""A queue that survives its daemon: kill -9 corral-core in the middle of 1,000 jobs, restart it on the same data
dir, and every job ends succeeded, each job's signed callback arriving at a real receiver; SIGTERM lets the
running job finish and leaves the rest queued on disk for the next start.

The jobs run on a real llama-server (the tiny model, max_tokens 1); the receiver verifies every delivery with the
`standardwebhooks` package, as an app's receiver would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway_core.contracts.jobs import JobUsage
from gateway_core.jobs.model import Job, new_job_id
from gateway_core.jobs.sqlite_store import SqliteJobStore
from tests.fakes.fault_server import FaultServer
from tests.testbed.child_processes import children_of, process_ended
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

JOBS = 1000
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
CALLBACK_FLAGS = ("--callback-allow", "127.0.0.1/32", "--callback-schedule", "0.2s,0.5s,1s,2s")


class Receiver:
    """A webhook receiver on 127.0.0.1: verifies each delivery's signature, counts the delivery ids it accepted."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.accepted: Counter[str] = Counter()
        self.refused: list[str] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    assert receiver.secret is not None
                    Webhook(receiver.secret).verify(body, headers)
                except (WebhookVerificationError, AssertionError) as error:
                    with receiver._lock:
                        receiver.refused.append(f"{headers.get('webhook-id')}: {error}")
                    self.send_response(400)
                else:
                    with receiver._lock:
                        receiver.accepted[headers["webhook-id"]] += 1
                        receiver.bodies[headers["webhook-id"]] = json.loads(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/jobs"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def create_key(daemon: CorralDaemon, name: str) -> tuple[str, str]:
    """The key and its webhook secret, as POST /keys answers them (the one time it shows them)."""
    key, secret, _ = create_key_with_id(daemon, name)
    return key, secret


def create_key_with_id(daemon: CorralDaemon, name: str) -> tuple[str, str, str]:
    response = daemon.admin_call("POST", "/keys", {"name": name})
    assert response.status_code == 201, response.text
    created = response.json()
    return created["key"], created["webhook_secret"], created["id"]


async def submit_all(
    daemon: CorralDaemon,
    key: str,
    reply_to: str | None,
    refs: range,
    request: dict[str, Any] = CHAT,
    *,
    expect: int = 202,
) -> list[str]:
    """Submit one job per number in `refs` (ref_id r<n>), 32 at a time; the job ids, in that order."""
    limits = httpx.Limits(max_connections=32)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=daemon.base_url, headers=headers, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            body: dict[str, Any] = {"request": request, "ref_id": f"r{i}"}
            if reply_to is not None:
                body["reply_to"] = reply_to
            async with gate:
                response = await client.post("/v1/queue/chat/completions", json=body)
            assert response.status_code == expect, response.text
            job_id: str = response.json()["id"]
            return job_id

        return list(await asyncio.gather(*(one(i) for i in refs)))


def job_state(daemon: CorralDaemon, job_id: str) -> str:
    state: str = daemon.admin_call("GET", f"/jobs/{job_id}").json()["state"]
    return state


def counts(daemon: CorralDaemon) -> dict[str, int]:
    answer: dict[str, int] = daemon.admin_call("GET", "/jobs/counts").json()
    return answer


def every_job(daemon: CorralDaemon) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    with daemon.admin() as admin:
        for _ in range(100):
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = admin.get("/jobs", params=params).json()
            jobs += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    return jobs


def on_disk(data_dir: Path) -> dict[str, tuple[str, int]]:
    """job id -> (state, attempts), as jobs.sqlite holds them after the daemon is gone."""
    with sqlite3.connect(data_dir / "jobs.sqlite") as db:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, state, attempts FROM jobs")}


def kill_9(daemon: CorralDaemon) -> None:
    """SIGKILL corral-core, then wait for its orphaned archive writer to finish what it was sent."""
    assert daemon.process is not None
    writers = children_of(daemon.process.pid)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)
    wait_for(lambda: all(process_ended(pid) for pid in writers), "the orphaned archive writer to finish")
    # The dead daemon's socket stays behind; the next start replaces it, but the testbed's probe of a stale
    # socket would leak its connection (httpcore), so it goes first.
    daemon.socket_path.unlink(missing_ok=True)


def test_a_kill_9_in_the_middle_of_1000_jobs_loses_none_and_every_callback_arrives(
    tmp_path: Path, shared_llama_server: Any, receiver: Receiver
):
    # 999 jobs on the real llama-server, and one (r0) on a provider that hangs until the kill: that job is
    # certainly running at the kill, whatever the timing of the 999.
    with FaultServer(model="held") as held:
        held.set_mode("hang")
        daemon = CorralDaemon(tmp_path / "corral", extra_args=CALLBACK_FLAGS).start()
        try:
            daemon.add_provider("local", shared_llama_server.base_url)
            daemon.add_provider("held", held.base_url)
            key, receiver.secret = create_key(daemon, "batch-app")
            # Drained while the jobs are submitted, so the kill below lands with most of them still to run.
            assert daemon.admin_call("POST", "/providers/local/drain").status_code == 200
            held_id = asyncio.run(submit_all(daemon, key, receiver.url, range(1), {**CHAT, "model": "held"}))[0]
            ids = [held_id, *asyncio.run(submit_all(daemon, key, receiver.url, range(1, JOBS)))]
            assert len(set(ids)) == JOBS
            wait_for(lambda: job_state(daemon, held_id) == "running", "the held job to be running")
            assert daemon.admin_call("POST", "/providers/local/undrain").status_code == 200
            wait_for(lambda: counts(daemon)["succeeded"] >= 200, "200 jobs to succeed before the kill", timeout_s=60)
            kill_9(daemon)

            before = on_disk(daemon.data_dir)
            assert len(before) == JOBS  # every accepted job was on disk
            finished_before = {job_id for job_id, (state, _) in before.items() if state == "succeeded"}
            running_at_kill = {job_id: n for job_id, (state, n) in before.items() if state == "running"}
            assert len(finished_before) < JOBS, "every job finished before the kill: the test did not kill mid-run"
            assert running_at_kill.get(held_id) == 1  # its attempt was on disk before it was sent
            print(f"at the kill: {len(finished_before)} succeeded, {len(running_at_kill)} running")

            held.set_mode("ok")
            daemon.start()  # the same data dir
            wait_for(lambda: counts(daemon)["succeeded"] == JOBS, "all 1,000 jobs to succeed after the restart", 120)

            jobs = {job["id"]: job for job in every_job(daemon)}
            assert set(jobs) == set(ids)
            assert {job["ref_id"] for job in jobs.values()} == {f"r{i}" for i in range(JOBS)}
            assert all(job["state"] == "succeeded" and job["attempts"] >= 1 for job in jobs.values())
            assert all(jobs[job_id]["attempts"] == 1 for job_id in finished_before)
            # Each job running at the kill had its attempt on disk, and ran once more after the restart.
            for job_id, attempts in running_at_kill.items():
                assert jobs[job_id]["attempts"] == attempts + 1
            assert jobs[held_id]["attempts"] == 2

            # An app that lost its answers and submits again after the restart gets the same jobs back.
            again = asyncio.run(submit_all(daemon, key, receiver.url, range(1, 21), expect=200))
            assert again == ids[1:21]

            expected = {f"msg_{job_id.removeprefix('job_')}_1" for job_id in ids}
            wait_for(lambda: expected <= set(receiver.accepted), "a verified callback for each of the 1,000 jobs", 120)
            assert receiver.refused == []
            assert set(receiver.accepted) == expected
            for delivery_id, body in receiver.bodies.items():
                assert body["type"] == "job.succeeded"
                assert f"msg_{body['data']['id'].removeprefix('job_')}_1" == delivery_id
                assert body["data"]["result"]["object"] == "chat.completion"
        finally:
            daemon.stop()


def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest_queued_for_the_next_start(tmp_path: Path):
    with FaultServer(model="slow", total_slots=1) as slow:
        slow.set_mode("slow", delay_s=1.0)
        daemon = CorralDaemon(tmp_path / "corral").start()
        try:
            daemon.add_provider("slow", slow.base_url, max_concurrency=1)
            key, _ = create_key(daemon, "app")
            headers = {"authorization": f"Bearer {key}"}
            request = {**CHAT, "model": "slow"}
            with httpx.Client(base_url=daemon.base_url, headers=headers, timeout=30) as client:
                wait_for(
                    lambda: "slow" in {m["id"] for m in client.get("/v1/models").json()["data"]},
                    "the slow provider to list its model",
                )
                ids = [
                    client.post("/v1/queue/chat/completions", json={"request": request}).json()["id"] for _ in range(4)
                ]
            wait_for(lambda: counts(daemon)["running"] == 1, "one job to be running")
            waits: list[httpx.Response] = []
            waiter = threading.Thread(target=lambda: waits.append(wait_on(daemon, headers, ids[-1])))
            waiter.start()
            # The wait must be in flight before the SIGTERM: a connection opened after it is refused, not answered.
            wait_for(lambda: open_connections(daemon, headers) >= 2, "the wait's connection (beside this scrape)")

            assert daemon.stop() == 0  # SIGTERM; the drain timeout (5 s) outlasts the 1 s answer
            waiter.join(timeout=30)
            # A wait on a job that will not run before the next start is answered, not cut off by the stop.
            assert [(w.status_code, w.json()["state"]) for w in waits] == [(200, "queued")]

            left = on_disk(daemon.data_dir)
            states = Counter(state for state, _ in left.values())
            assert states["succeeded"] == 1, left  # the one running at SIGTERM finished
            assert states["queued"] == 3, left  # the rest wait on disk, never started
            assert states["running"] == 0

            slow.set_mode("ok")
            daemon.start()
            wait_for(lambda: counts(daemon)["succeeded"] == 4, "the queued jobs to run after the restart", 30)
            assert all(job["attempts"] == 1 for job in every_job(daemon) if job["id"] in ids)
        finally:
            daemon.stop()


def test_a_final_job_whose_callback_was_not_yet_handed_over_at_a_crash_is_delivered_at_the_next_start(
    tmp_path: Path, receiver: Receiver
):
    # The crash window: the job's final state and callback_due are committed, the delivery not yet enqueued.
    daemon = CorralDaemon(tmp_path / "corral", extra_args=CALLBACK_FLAGS).start()
    try:
        _, receiver.secret, key_id = create_key_with_id(daemon, "app")
    finally:
        daemon.stop()
    job_id = asyncio.run(a_finished_job_with_its_callback_due(daemon.data_dir / "jobs.sqlite", key_id, receiver.url))

    daemon.start()
    try:
        delivery_id = f"msg_{job_id.removeprefix('job_')}_1"
        wait_for(lambda: delivery_id in receiver.accepted, "the callback of the job that was due at the crash")
        assert receiver.refused == []
        body = receiver.bodies[delivery_id]
        assert (body["type"], body["data"]["id"], body["data"]["result"]) == ("job.succeeded", job_id, {"ok": 1})
        wait_for(lambda: on_disk_callback_due(daemon.data_dir, job_id) == 0, "callback_due to be cleared")
    finally:
        daemon.stop()


async def a_finished_job_with_its_callback_due(path: Path, key_id: str, reply_to: str) -> str:
    now = time.time()
    store = SqliteJobStore(path)
    await store.open()
    try:
        job, _ = await store.add(
            Job(
                id=new_job_id(now),
                key_id=key_id,
                route="chat",
                model="tiny",
                body=json.dumps(CHAT).encode(),
                seq=0,
                created_at=now,
                queued_at=now,
                reply_to=reply_to,
            )
        )
        await store.started(job.id, 1, "local", now)
        usage: JobUsage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        await store.finished(job.id, "succeeded", now, usage, b'{"ok": 1}', None, True)
    finally:
        await store.close()
    return job.id


def on_disk_callback_due(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "jobs.sqlite") as db:
        due: int = db.execute("SELECT callback_due FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    return due


def open_connections(daemon: CorralDaemon, headers: dict[str, str]) -> float:
    """The public listener's open connections, this scrape's own included (corral_open_connections)."""
    text = httpx.get(f"{daemon.base_url}/metrics", headers=headers, timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("corral_open_connections"))


def wait_on(daemon: CorralDaemon, headers: dict[str, str], job_id: str) -> httpx.Response:
    with httpx.Client(base_url=daemon.base_url, headers=headers, timeout=60) as client:
        return client.get(f"/v1/queue/{job_id}/wait", params={"timeout": 60})
