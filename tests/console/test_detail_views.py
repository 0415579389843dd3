"""Enter on a provider, a key or a live request opens its detail in the console, against a real corral-core: it
shows everything known (and never a secret), follows the event stream, and copies as JSON or YAML."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import httpx
import pytest
import yaml
from textual.widgets import Static

from console.app import CorralApp
from console.screens.detail import KeyDetailScreen, ProviderDetailScreen, RequestDetailScreen
from console.widgets.panels import finished_key
from tests.fakes.fault_server import FaultServer
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for, wait_for_async

APP_WAIT_S = 15.0
UPSTREAM_KEY = "sk-upstream-do-not-show-0123456789"


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


class Copying(CorralApp):
    """The console, keeping what it copies (the terminal gets the same OSC 52)."""

    copied: list[str]

    def copy_to_clipboard(self, text: str) -> None:
        self.copied = [*getattr(self, "copied", []), text]
        super().copy_to_clipboard(text)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def shown(app: Any) -> str:
    return str(app.screen.query_one("#detail-facts", Static).render())


async def open_detail(pilot: Any, table: Any, row_key: str, screen_type: type) -> None:
    app = pilot.app
    await wait_for_async(lambda: row_key in table.row_keys, f"the row {row_key}", APP_WAIT_S, pause=pilot.pause)
    table.focus()
    table.move_cursor(row=table.get_row_index(row_key))
    await pilot.pause()
    await pilot.press("enter")
    await wait_for_async(lambda: isinstance(app.screen, screen_type), "the detail view", APP_WAIT_S, pause=pilot.pause)


@pytest.fixture
def daemon(tmp_path) -> Any:
    daemon = CorralDaemon(tmp_path / "corral", extra_env={"CORRAL_DETAIL_UPSTREAM": UPSTREAM_KEY}).start()
    yield daemon
    daemon.stop()


@pytest.mark.asyncio
@pytest.mark.llama_server
async def test_enter_on_a_provider_shows_its_config_health_and_recent_failures_never_its_key(daemon, llama_servers):
    (server,) = llama_servers(1)
    daemon.add_provider("local", server.base_url, api_key_env="CORRAL_DETAIL_UPSTREAM", priority=2)
    key = daemon.create_key("detail-app")
    failed = await asyncio.to_thread(
        httpx.post,
        f"{daemon.base_url}/v1/chat/completions",
        headers=bearer(key),
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert failed.status_code == 404
    app = Copying(daemon.socket_path, daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot, app.screen.providers, "local", ProviderDetailScreen)
        await wait_for_async(
            lambda: "model llama" in shown(app) or "ready" in shown(app), "its health", pause=pilot.pause
        )
        text = shown(app)
        assert server.base_url in text
        assert "from $CORRAL_DETAIL_UPSTREAM" in text
        assert "closed" in text  # the circuit
        assert UPSTREAM_KEY not in text
        await pilot.press("c")
        copied = json.loads(app.copied[-1])
        assert copied["provider"]["name"] == "local"
        assert copied["provider"]["priority"] == 2
        assert UPSTREAM_KEY not in app.copied[-1]
        await pilot.press("y")
        assert yaml.safe_load(app.copied[-1])["provider"]["base_url"] == server.base_url
        await pilot.press("escape")


@pytest.mark.asyncio
async def test_enter_on_a_key_shows_its_limits_use_and_failures_never_its_secret(daemon):
    secret = daemon.create_key("billing", rpm=60, models=["tiny"])
    key_id = secret.split("-")[2]
    refused = await asyncio.to_thread(
        httpx.post,
        f"{daemon.base_url}/v1/chat/completions",
        headers=bearer(secret),
        json={"model": "other", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code in (403, 404)

    def archived() -> bool:
        rows = daemon.admin_call("GET", f"/history?key={key_id}&status=error").json()["rows"]
        return bool(rows)

    wait_for(archived, "the refusal in the archive")
    app = Copying(daemon.socket_path, daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot, app.screen.keys, key_id, KeyDetailScreen)
        await wait_for_async(lambda: "other" in shown(app), "its recent failure", APP_WAIT_S, pause=pilot.pause)
        text = shown(app)
        assert "Key billing" in str(app.screen.query_one("#detail-title", Static).render())
        assert "60" in text
        assert "tiny" in text
        assert secret.split("-")[-1] not in text
        await pilot.press("c")
        copied = json.loads(app.copied[-1])
        assert copied["key"]["id"] == key_id
        assert copied["recent_errors"][0]["model"] == "other"
        assert secret.split("-")[-1] not in app.copied[-1]

        again = await asyncio.to_thread(
            httpx.post,
            f"{daemon.base_url}/v1/chat/completions",
            headers=bearer(secret),
            json={"model": "another", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert again.status_code in (403, 404)
        await wait_for_async(
            lambda: len(daemon.admin_call("GET", f"/history?key={key_id}&status=error").json()["rows"]) == 2,
            "the second refusal in the archive",
            pause=pilot.pause,
        )
        assert "another" not in shown(app)  # asked once, on opening
        await pilot.press("r")
        await wait_for_async(lambda: "another" in shown(app), "the refreshed failures", APP_WAIT_S, pause=pilot.pause)


@pytest.mark.asyncio
async def test_enter_on_a_live_request_shows_its_view_and_says_when_it_ended(daemon):
    with FaultServer(model="stuck") as stuck:
        stuck.set_mode("hang")
        daemon.add_provider("stuck", stuck.base_url)
        key = daemon.create_key("webapp")
        wait_for(lambda: "stuck" in daemon.admin_call("GET", "/models").json(), "the provider's model")
        app = Copying(daemon.socket_path, daemon.data_dir, autostart=False)
        async with (
            app.run_test(size=(120, 40)) as pilot,
            httpx.AsyncClient(base_url=daemon.base_url, timeout=30.0) as client,
        ):
            body = {"model": "stuck", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            call = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=bearer(key)))
            table = app.screen.requests
            await wait_for_async(lambda: table.row_keys, "the live request", APP_WAIT_S, pause=pilot.pause)
            (request_id,) = table.row_keys
            await open_detail(pilot, table, request_id, RequestDetailScreen)
            text = shown(app)
            assert request_id in text
            assert "webapp" in text
            assert "stuck" in text
            assert re.search(r"streaming +yes", text)
            await app.client.cancel_request(request_id)  # as x on its row would
            with contextlib.suppress(httpx.HTTPError):
                await call
            await wait_for_async(lambda: "it ended" in shown(app), "the end", APP_WAIT_S, pause=pilot.pause)
            assert "webapp" in shown(app)  # what it was stays on screen
            assert "how it ended" in shown(app)  # from its request.end, which the console keeps
            await pilot.press("c")
            copied = json.loads(app.copied[-1])["request"]
            assert copied["id"] == request_id
            assert copied["status"] >= 400

            await pilot.press("escape")  # its finished row, below the running ones, opens the same
            await open_detail(pilot, table, finished_key(request_id), RequestDetailScreen)
            assert re.search(r"status +\d{3} \((failed|the client left)\)", shown(app))


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_a_detail_view_is_painted_on_the_real_console_not_only_composed(daemon, size):
    # Its text was set but never drawn over the real console's dashboard until the terminal was resized (a padded
    # VerticalScroll); the harness with no daemon drew it, so the screenshot here is of the real app.
    secret = daemon.create_key("billing")
    key_id = secret.split("-")[2]
    app = CorralApp(daemon.socket_path, daemon.data_dir, autostart=False)
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, app.screen.keys, key_id, KeyDetailScreen)
        await wait_for_async(lambda: "state" in shown(app), "the key's facts", APP_WAIT_S, pause=pilot.pause)
        await pilot.pause()
        assert app.export_screenshot().count(key_id) >= 2  # the title's id, and the facts' id line
