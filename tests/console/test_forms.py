"""The console's modal forms and fleet screens, driven with Pilot against a real corral-core."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, OptionList, Select, Static

from console.live_state import LiveState
from console.screens.confirm import ConfirmScreen
from console.screens.deploy_form import DeployForm
from console.screens.key_forms import KeyCreateForm, KeyEditForm
from console.screens.logs import LogsScreen, LogView
from console.screens.provider_form import ProviderForm
from gateway_core.client import CorralClient
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for_async

SIZE = (80, 24)


class FormHost(App[None]):
    """The host protocol the screens rely on (see console/screens/base.py), and nothing else."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__()
        self.client = CorralClient(socket_path)
        self.live = LiveState()
        self.results: list[Any] = []

    def open(self, screen: Screen[Any]) -> None:
        self.push_screen(screen, callback=self.results.append)

    async def on_unmount(self) -> None:
        await self.client.aclose()


def text(app: App[Any], selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def shown(app: App[Any], selector: str) -> bool:
    return app.screen.query_one(selector, Static).has_class("-shown")


async def type_into(pilot: Pilot[Any], selector: str, value: str) -> None:
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.clear()
    await pilot.press(*value)
    await pilot.pause()


def provider_names(daemon: CorralDaemon) -> list[str]:
    return [provider["name"] for provider in daemon.admin_call("GET", "/providers").json()]


# -- providers -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bad_url_is_flagged_as_typed_and_save_refused_until_fixed(corral_daemon: CorralDaemon) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#name", "local")
        await type_into(pilot, "#base_url", "ftp://somewhere")

        assert shown(app, "#base_url-error")
        assert "not an http(s) URL" in text(app, "#base_url-error")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ProviderForm)
        assert "marked field" in text(app, "#form-error")
        assert provider_names(corral_daemon) == []

        await type_into(pilot, "#base_url", "http://127.0.0.1:9")
        assert not shown(app, "#base_url-error")
        await pilot.press("ctrl+s")
        await wait_for_async(lambda: app.results, "the form to close with the new provider", pause=pilot.pause)

    assert app.results[0]["name"] == "local"
    assert app.results[0]["base_url"] == "http://127.0.0.1:9"
    assert provider_names(corral_daemon) == ["local"]


@pytest.mark.asyncio
async def test_duplicate_name_shows_the_daemons_409_under_the_name_field(corral_daemon: CorralDaemon) -> None:
    corral_daemon.add_provider("dup", "http://127.0.0.1:9")
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#name", "dup")
        await type_into(pilot, "#base_url", "http://127.0.0.1:10")
        await pilot.press("ctrl+s")
        await wait_for_async(
            lambda: shown(app, "#name-error"), "the daemon's refusal under the name field", pause=pilot.pause
        )

        assert "already exists" in text(app, "#name-error")
        assert isinstance(app.screen, ProviderForm)
        assert app.results == []
    assert provider_names(corral_daemon) == ["dup"]


@pytest.mark.asyncio
async def test_test_action_reports_an_unreachable_provider_as_down_with_the_reason(corral_daemon: CorralDaemon) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#base_url", "http://127.0.0.1:9")
        await pilot.press("ctrl+t")
        await wait_for_async(
            lambda: text(app, "#test-result").startswith("down"), "the probe's answer", pause=pilot.pause
        )

        assert "cannot reach http://127.0.0.1:9" in text(app, "#test-result")
        assert app.screen.query_one("#test-result").has_class("-down")
    assert provider_names(corral_daemon) == []  # a test saves nothing


@pytest.mark.asyncio
async def test_editing_a_provider_keeps_its_name_and_saves_the_change(corral_daemon: CorralDaemon) -> None:
    summary = corral_daemon.add_provider("edit-me", "http://127.0.0.1:9")
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(ProviderForm(summary))
        await pilot.pause()
        assert app.screen.query_one("#name", Input).disabled
        await type_into(pilot, "#priority", "5")
        await pilot.press("ctrl+s")
        await wait_for_async(lambda: app.results, "the edit to be saved", pause=pilot.pause)

    assert app.results[0]["priority"] == 5
    assert corral_daemon.admin_call("GET", "/providers/edit-me").json()["priority"] == 5


# -- keys ----------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_new_key_is_shown_once_and_the_result_carries_no_secret(corral_daemon: CorralDaemon) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(KeyCreateForm())
        await pilot.pause()
        await type_into(pilot, "#name", "acme-billing")
        await type_into(pilot, "#models", "m1, m2")
        await type_into(pilot, "#rpm", "60")
        await pilot.press("ctrl+s")
        await wait_for_async(lambda: app.screen.has_class("-created"), "the new key panel", pause=pilot.pause)

        secret = text(app, "#secret")
        assert secret.startswith("sk-corral-")
        assert "will not be shown again" in text(app, "#secret-warning")
        await pilot.press("c")
        assert app.clipboard == secret
        await pilot.press("escape")  # closes, with the key's view, once the key exists
        await wait_for_async(lambda: app.results, "the form to close", pause=pilot.pause)

    listed = corral_daemon.admin_call("GET", "/keys").json()
    assert [(key["name"], key["models"], key["rpm"]) for key in listed] == [("acme-billing", ["m1", "m2"], 60)]
    result = app.results[0]
    assert result["id"] == listed[0]["id"]
    assert "key" not in result
    assert secret not in repr(result)


@pytest.mark.asyncio
async def test_revoking_after_confirm_yes_marks_the_key_revoked(corral_daemon: CorralDaemon) -> None:
    corral_daemon.create_key("old-app")
    key = corral_daemon.admin_call("GET", "/keys").json()[0]
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(ConfirmScreen(f"Revoke key {key['name']} ({key['id']})?", "Apps using it are refused at once."))
        await pilot.pause()
        assert f"Revoke key old-app ({key['id']})?" in text(app, "#question")
        await pilot.press("y")
        await wait_for_async(lambda: app.results, "the answer", pause=pilot.pause)
        if app.results[0] is True:  # what the app does with a yes
            await app.client.revoke_key(key["id"])

    assert app.results == [True]
    assert corral_daemon.admin_call("GET", "/keys").json()[0]["revoked"] is True


@pytest.mark.asyncio
async def test_confirm_no_and_escape_answer_false(corral_daemon: CorralDaemon) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("n", "escape"):
            app.open(ConfirmScreen("Remove provider x?"))
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
    assert app.results == [False, False]


@pytest.mark.asyncio
async def test_key_edit_form_changes_limits_and_models(corral_daemon: CorralDaemon) -> None:
    corral_daemon.create_key("svc", rpm=10)
    key = corral_daemon.admin_call("GET", "/keys").json()[0]
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(KeyEditForm(key))
        await pilot.pause()
        assert app.screen.query_one("#rpm", Input).value == "10"
        await type_into(pilot, "#rpm", "0")
        assert "greater than or equal to 1" in text(app, "#rpm-error")
        await type_into(pilot, "#rpm", "25")
        await type_into(pilot, "#models", "only-this")
        await pilot.press("ctrl+s")
        await wait_for_async(lambda: app.results, "the edit to be saved", pause=pilot.pause)

    stored = corral_daemon.admin_call("GET", "/keys").json()[0]
    assert (stored["rpm"], stored["models"]) == (25, ["only-this"])


# -- fleet ---------------------------------------------------------------------------------------------------


def catalog_prompts(app: App[Any]) -> list[str]:
    catalog = app.screen.query_one("#catalog", OptionList)
    return [str(catalog.get_option_at_index(i).prompt) for i in range(catalog.option_count)]


@pytest.mark.asyncio
async def test_deploy_form_lists_the_catalog_and_explains_the_plan(fleet_daemon: CorralDaemon) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        await wait_for_async(lambda: "KV cache" in text(app, "#plan"), "the first plan", pause=pilot.pause)

        [prompt] = catalog_prompts(app)
        assert "tiny-llama" in prompt
        assert "ALL_F32" in prompt
        assert "ctx 2048" in prompt
        assert app.screen.query_one("#name", Input).value == "tiny-llama"  # the daemon's default name
        # No GPU in the live state, so nothing caps it: the context defaults to the model's trained 2048, no warning.
        await wait_for_async(lambda: "2048 ctx" in text(app, "#plan"), "a plan for 2048", pause=pilot.pause)
        assert app.screen.query_one("#ctx_size", Input).value == "2048"
        assert text(app, "#warnings") == ""

        await type_into(pilot, "#ctx_size", "1024")
        await wait_for_async(lambda: "1024 ctx" in text(app, "#plan"), "a plan for 1024", pause=pilot.pause)
        assert text(app, "#warnings") == ""
        assert "CPU" in text(app, "#plan")  # no GPU in the live state: the placement says so

        await type_into(pilot, "#ctx_size", "3000")
        await wait_for_async(
            lambda: "trained context of 2048" in text(app, "#warnings"), "the ctx warning", pause=pilot.pause
        )

        await type_into(pilot, "#name", "Bad Name")
        assert "lowercase" in text(app, "#name-error")


@pytest.mark.asyncio
async def test_gpus_the_box_lacks_show_the_daemons_reason_under_the_gpus_field(fleet_daemon: CorralDaemon) -> None:
    app = FormHost(fleet_daemon.socket_path)
    # The console believes in a GPU that the daemon (no NVML here) cannot see.
    app.live.gpus = {
        "state": "ok",
        "reason": "",
        "devices": [
            {"index": 0, "name": "Imaginary 24GB", "memory_total_bytes": 24 << 30, "memory_used_bytes": 1 << 30}
        ],
    }
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        assert app.screen.query_one("#gpus", Select).value == "all"
        await wait_for_async(lambda: shown(app, "#gpus-error"), "the daemon's refusal under GPUs", pause=pilot.pause)
        assert "no GPU is usable here" in text(app, "#gpus-error")
        assert text(app, "#plan").startswith("cannot plan")

        app.screen.query_one("#gpus", Select).value = "none"
        await wait_for_async(lambda: "KV cache" in text(app, "#plan"), "a CPU plan", pause=pilot.pause)
        assert not shown(app, "#gpus-error")


@pytest.mark.asyncio
async def test_logs_screen_says_why_it_cannot_follow(corral_daemon: CorralDaemon) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LogsScreen("no-such-deployment"))
        await pilot.pause()
        await wait_for_async(lambda: "cannot follow" in text(app, "#logs-title"), "the failure", pause=pilot.pause)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, LogsScreen)


@pytest.fixture
def deployment_name(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"forms-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{name}").remove(force=True)


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_deploy_form_deploys_and_the_logs_screen_follows_it(
    fleet_daemon: CorralDaemon, llama_server_image: str, deployment_name: str
) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm(health_timeout_s=90))
        await pilot.pause()
        await wait_for_async(lambda: "KV cache" in text(app, "#plan"), "the first plan", pause=pilot.pause)
        await type_into(pilot, "#name", deployment_name)
        await type_into(pilot, "#ctx_size", "1024")
        await type_into(pilot, "#image", llama_server_image)
        app.screen.action_save()  # ctrl+s; called directly so the waiting state is seen before the tiny model loads
        assert "waiting for health" in text(app, "#deploy-status")
        await wait_for_async(lambda: app.results, "the deployment to become healthy", timeout_s=120, pause=pilot.pause)

        [result] = app.results
        assert result["deployment"]["name"] == deployment_name
        assert deployment_name in provider_names(fleet_daemon)

        app.push_screen(LogsScreen(deployment_name))
        await pilot.pause()
        log = app.screen.query_one(LogView)
        await wait_for_async(lambda: log.line_count > 0, "llama-server's log lines", pause=pilot.pause)
        await pilot.press("f")
        assert "paused" in text(app, "#logs-title")
        await pilot.press("escape")
        await pilot.pause()

        await app.client.remove_deployment(deployment_name)
    assert deployment_name not in provider_names(fleet_daemon)
