"""The console's Jobs panel and Callbacks screen as an operator meets them, against a real corral-core: rows and
counts that follow the job and delivery events (nothing polls), cancel and retry from the keyboard after a
confirmation, and a dead-lettered callback redelivered.

The model "tiny" is a real llama-server; "stuck" is a fault server that hangs, so a job on it stays running until
it is cancelled. Callbacks go to a real receiver on 127.0.0.1 (tests/callbacks/receiver.py) on a compressed
schedule of three attempts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from textual.widgets import Static

from console.app import CorralApp
from console.screens.callbacks import CallbacksScreen
from console.screens.confirm import ConfirmScreen
from console.screens.dashboard import DashboardScreen
from console.screens.help import HelpScreen
from console.screens.job_detail import JobDetailScreen
from tests.callbacks.receiver import Receiver
from tests.console.dashboard_data import cell
from tests.fakes.fault_server import FaultServer
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.llama_server

APP_WAIT_S = 15.0
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
STUCK = {"model": "stuck", "messages": [{"role": "user", "content": "Never answered."}], "max_tokens": 2}


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Hide the user's own console settings and themes."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@dataclass
class Queue:
    daemon: CorralDaemon
    app_client: httpx.AsyncClient  # key "webapp"
    receiver: Receiver

    async def submit(self, request: dict[str, Any], **fields: Any) -> str:
        response = await self.app_client.post("/v1/queue/chat/completions", json={"request": request, **fields})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id


@pytest_asyncio.fixture
async def queue(tmp_path: Path, shared_llama_server: Any) -> AsyncIterator[Queue]:
    with FaultServer(model="stuck") as stuck:
        stuck.set_mode("hang")
        daemon = CorralDaemon(
            tmp_path / "corral",
            extra_args=("--callback-allow", "127.0.0.1/32", "--callback-schedule", "0.05s,0.05s"),
        ).start()
        try:
            daemon.add_provider("local", shared_llama_server.base_url)
            daemon.add_provider("stuck", stuck.base_url)
            key = daemon.create_key("webapp")

            def served() -> bool:
                models = daemon.admin_call("GET", "/models").json()
                return {"tiny", "stuck"} <= set(models)

            wait_for(served, "the providers to list their models")
            headers = {"authorization": f"Bearer {key}"}
            async with (
                httpx.AsyncClient(base_url=daemon.base_url, headers=headers, timeout=30.0) as client,
                Receiver.running() as receiver,
            ):
                yield Queue(daemon, client, receiver)
        finally:
            daemon.stop()


async def connected(app: CorralApp, pilot: Any) -> DashboardScreen:
    await wait_for_async(lambda: app.live.status is not None, "the first snapshot", APP_WAIT_S, pause=pilot.pause)
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


def jobs_title(screen: DashboardScreen) -> str:
    return str(screen.query_one("#jobs").border_title)


async def title_reads(screen: DashboardScreen, title: str, pilot: Any) -> None:
    """The counts follow the events, and settle within a second or so where one had to be guessed."""
    await wait_for_async(
        lambda: jobs_title(screen) == title, f"the Jobs panel's title to read {title!r}", pause=pilot.pause
    )


@pytest.mark.asyncio
async def test_the_jobs_panel_follows_the_events_and_cancels_and_retries_from_the_keyboard(queue):
    app = CorralApp(queue.daemon.socket_path, queue.daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await connected(app, pilot)
        table = dashboard.jobs
        stuck = await queue.submit(STUCK)

        def state_of(job_id: str) -> str | None:
            return cell(table, job_id, "state") if job_id in table.row_keys else None

        await wait_for_async(lambda: state_of(stuck) == "running", "the stuck job to show running", pause=pilot.pause)
        await title_reads(dashboard, "Jobs · 0 queued · 1 running", pilot)
        assert cell(table, stuck, "key") == "webapp"
        assert cell(table, stuck, "provider") == "stuck"
        done = await queue.submit(CHAT)
        await wait_for_async(lambda: state_of(done) == "succeeded", "the tiny job to show succeeded", pause=pilot.pause)
        assert table.row_keys == [done, stuck], "newest first"

        table.focus()
        table.move_cursor(row=table.get_row_index(done))
        await pilot.press("enter")
        await wait_for_async(lambda: isinstance(app.screen, JobDetailScreen), "the job's detail", pause=pilot.pause)

        def detail() -> str:
            return "\n".join(str(static.render()) for static in app.screen.query(Static))

        await wait_for_async(lambda: "result (the OpenAI answer)" in detail(), "the job's result", pause=pilot.pause)
        assert '"object": "chat.completion"' in detail()
        assert "webapp (id" in detail()
        await pilot.press("escape")
        await wait_for_async(lambda: app.screen is dashboard, "the dashboard again", pause=pilot.pause)

        table.move_cursor(row=table.get_row_index(stuck))
        await pilot.press("x")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        assert stuck in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await wait_for_async(lambda: state_of(stuck) == "cancelled", "the job to show cancelled", pause=pilot.pause)
        await title_reads(dashboard, "Jobs · 0 queued · 0 running · 1 succeeded · 1 cancelled", pilot)
        assert queue.daemon.admin_call("GET", f"/jobs/{stuck}").json()["state"] == "cancelled"

        await pilot.press("r")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        await pilot.press("n")  # said no: nothing happens
        await pilot.pause()
        assert state_of(stuck) == "cancelled"
        await pilot.press("r")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        await pilot.press("y")
        await wait_for_async(lambda: state_of(stuck) == "running", "the retried job to run again", pause=pilot.pause)
        await title_reads(dashboard, "Jobs · 0 queued · 1 running · 1 succeeded", pilot)


@pytest.mark.asyncio
async def test_jobs_queued_before_the_console_opened_are_listed_and_counted(queue):
    before = [await queue.submit(STUCK) for _ in range(3)]
    wait_for(
        lambda: queue.daemon.admin_call("GET", "/jobs/counts").json()["running"] >= 1,
        "the stuck provider to take a job",
    )
    app = CorralApp(queue.daemon.socket_path, queue.daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await connected(app, pilot)

        await wait_for_async(
            lambda: set(before) <= set(dashboard.jobs.row_keys), "the jobs from before to be listed", pause=pilot.pause
        )
        counts = queue.daemon.admin_call("GET", "/jobs/counts").json()
        assert app.live.jobs.counts == counts

        # A job from before the snapshot, cancelled while running: the event alone cannot say which count it left
        # (queued or running), so the console asks the daemon for its counts.
        (running,) = [job_id for job_id in before if app.live.jobs.recent[job_id]["state"] == "running"]
        response = queue.daemon.admin_call("POST", f"/jobs/{running}/cancel")
        assert response.status_code == 200, response.text

        def settled() -> bool:
            daemons = queue.daemon.admin_call("GET", "/jobs/counts").json()
            return daemons["cancelled"] == 1 and app.live.jobs.counts == daemons

        await wait_for_async(settled, "the counts to match the daemon's after a cancel", pause=pilot.pause)
        assert "1 cancelled" in jobs_title(dashboard)
        assert cell(dashboard.jobs, running, "state") == "cancelled"


@pytest.mark.asyncio
async def test_a_dead_lettered_callback_shows_on_the_callbacks_screen_and_is_redelivered(queue):
    queue.receiver.answer(503, times=3)  # every attempt of the schedule; then 200
    app = CorralApp(queue.daemon.socket_path, queue.daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await connected(app, pilot)
        await pilot.press("question_mark")
        await wait_for_async(lambda: isinstance(app.screen, HelpScreen), "the help screen", pause=pilot.pause)
        assert ("f6", "Callbacks", "app.callbacks") in app.screen._rows, "the key to the Callbacks screen is listed"
        await pilot.press("escape")
        await wait_for_async(lambda: isinstance(app.screen, DashboardScreen), "the dashboard", pause=pilot.pause)
        await pilot.press("f6")
        await wait_for_async(lambda: isinstance(app.screen, CallbacksScreen), "the Callbacks screen", pause=pilot.pause)
        screen = app.screen
        assert isinstance(screen, CallbacksScreen)
        job_id = await queue.submit(CHAT, reply_to=queue.receiver.url())

        def delivery_state() -> str | None:
            for delivery_id in screen.table.row_keys:
                if screen.rows[delivery_id]["job_id"] == job_id:
                    return cell(screen.table, delivery_id, "state")
            return None

        await wait_for_async(lambda: delivery_state() == "dead", "the delivery to be dead-lettered", pause=pilot.pause)
        assert len(queue.receiver.arrivals) == 3
        (delivery_id,) = screen.table.row_keys
        assert cell(screen.table, delivery_id, "last") == "503"
        assert "1 dead" in str(screen.query_one("#callbacks-title").render())

        screen.table.focus()
        await pilot.press("r")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        await pilot.press("y")
        await wait_for_async(
            lambda: delivery_state() == "delivered", "the redelivered callback to arrive", pause=pilot.pause
        )
        assert len(queue.receiver.arrivals) == 4
        assert queue.receiver.arrivals[-1].headers["webhook-id"] == delivery_id
