"""The console's keys for models on demand and router mode against a real corral-core: an on-demand deployment of
the tiny model in a real container is unloaded, pinned and loaded again from the keyboard, and the containers
panel follows it by the daemon's events alone; a router-mode llama-server's model is loaded and unloaded from its
row under the provider.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from textual.widgets import DataTable

from console.app import CorralApp
from console.screens.dashboard import DashboardScreen
from console.screens.help import HelpScreen
from console.widgets.panels import router_model_key
from tests.console.dashboard_data import cell
from tests.providers.test_router_mode import RouterProcess, start_router
from tests.testbed.child_processes import stop_process
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 60.0  # a load starts a container and waits for llama-server's /health


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Hide the user's own console settings and themes."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def deployment_name(docker_client) -> Iterator[str]:
    """A unique deployment name; its container is removed at teardown whatever happened."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{name}").remove(force=True)


@pytest.fixture
def fleet_daemon(tmp_path, llama_server_image) -> Iterator[CorralDaemon]:
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


def deploy_on_demand(daemon: CorralDaemon, model: Path, image: str, name: str) -> Any:
    body = {
        "model_path": str(model),
        "name": name,
        "image": image,
        "gpus": "none",
        "ctx_size": 1024,
        "parallel": 2,
        "load": {"mode": "on-demand", "idle_ttl_s": 3600},
    }
    response = daemon.admin_call("POST", "/fleet/deployments", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def dashboard_of(app: CorralApp, pilot: Any) -> DashboardScreen:
    await wait_for_async(lambda: app.live.status is not None, "the first snapshot", APP_WAIT_S, pause=pilot.pause)
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


def notices(app: CorralApp) -> list[str]:
    return [notification.message for notification in app._notifications]


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_an_on_demand_deployment_is_unloaded_pinned_and_loaded_from_the_keyboard(
    fleet_daemon, tiny_model, llama_server_image, deployment_name
):
    name = deployment_name
    deploy_on_demand(fleet_daemon, tiny_model, llama_server_image, name)
    app = CorralApp(fleet_daemon.socket_path, fleet_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await dashboard_of(app, pilot)
        table, row = dashboard.fleet, f"corral-{name}"

        def state() -> str | None:
            return cell(table, row, "state") if row in table.row_keys else None

        await wait_for_async(lambda: state() == "warm", "the deployment to show warm", APP_WAIT_S, pause=pilot.pause)
        assert cell(table, row, "policy") == "on-demand"
        table.focus()
        table.move_cursor(row=table.get_row_index(row))
        await pilot.pause()

        await pilot.press("U")  # nothing in flight: no question
        await wait_for_async(lambda: state() == "cold", "the row to show cold", APP_WAIT_S, pause=pilot.pause)
        await wait_for_async(
            lambda: any(n.startswith(f"stopped deployment {name}: ") for n in notices(app)),
            "the stop decision's toast",
            pause=pilot.pause,
        )

        await pilot.press("P")
        await wait_for_async(lambda: cell(table, row, "policy") == "pinned", "pinned", pause=pilot.pause)
        kept = fleet_daemon.admin_call("GET", f"/fleet/on-demand/{name}").json()
        assert kept["policy"]["pin"] is True, "the daemon holds the pin, not the console"

        await pilot.press("question_mark")
        await wait_for_async(lambda: isinstance(app.screen, HelpScreen), "the help screen", pause=pilot.pause)
        help_table = app.screen.query_one("#help-table", DataTable)
        ids = {help_table.get_row_at(index)[2] for index in range(help_table.row_count)}
        assert {"fleet.load", "fleet.unload", "fleet.pin", "fleet.mode", "fleet.detail"} <= ids
        await pilot.press("escape")
        await wait_for_async(lambda: app.screen is dashboard, "back on the dashboard", pause=pilot.pause)

        await pilot.press("L")
        await wait_for_async(lambda: state() == "warm", "the row to show warm again", APP_WAIT_S, pause=pilot.pause)
        await wait_for_async(
            lambda: f"loaded deployment {name}: it is warm" in notices(app), "the load's answer", pause=pilot.pause
        )
        assert cell(table, row, "load") != "-", "the load's time"
        assert not [n for n in app._notifications if n.severity == "error"], notices(app)


@pytest.fixture
def router(llama_server_binary: Path, tiny_model: Path, tmp_path: Path) -> Iterator[RouterProcess]:
    """A router-mode llama-server over two copies of the tiny model (alpha and beta), one loaded at a time."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    for model in ("alpha", "beta"):
        shutil.copyfile(tiny_model, models_dir / f"{model}.gguf")
    started = start_router(llama_server_binary, models_dir, tmp_path / "router.log")
    yield started
    stop_process(started.process)


@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_a_routers_model_is_loaded_and_unloaded_from_its_row(corral_daemon, router):
    corral_daemon.add_provider("router", router.base_url)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await dashboard_of(app, pilot)
        table, row = dashboard.providers, router_model_key("router", "alpha")

        def status() -> str | None:
            return cell(table, row, "state") if row in table.row_keys else None

        await wait_for_async(lambda: status() == "unloaded", "alpha's row, unloaded", APP_WAIT_S, pause=pilot.pause)
        table.focus()
        table.move_cursor(row=table.get_row_index(row))
        await pilot.pause()

        await pilot.press("L")
        await wait_for_async(lambda: status() == "loaded", "alpha to show loaded", APP_WAIT_S, pause=pilot.pause)
        assert router.statuses()["alpha"] == "loaded", "llama-server itself loaded it"

        await pilot.press("U")
        await wait_for_async(lambda: status() == "unloaded", "alpha to show unloaded", APP_WAIT_S, pause=pilot.pause)
        assert router.statuses()["alpha"] == "unloaded"
        assert not [n for n in app._notifications if n.severity == "error"], notices(app)
