"""systemd deployments survive a restart of corral-core: config.json keeps them, and the restarted fleet manager
starts, stops and removes the same units, here real llama-servers run from the units Corral wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.gpus import GpuSnapshot
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.systemd_records import SYSTEMD_TABLE, SystemdDeployment, SystemdRecords
from gateway_core.store.config_store import ConfigStore
from tests.fleet.systemctl_double import SystemctlDouble
from tests.testbed import CorralDaemon, free_port
from tests.testbed.waiting import wait_for_async

pytestmark = [pytest.mark.llama_server]

NO_GPUS = GpuSnapshot(state="unavailable", reason="no NVIDIA driver here")
NO_DOCKER = "unix:///nonexistent/docker.sock"  # systemd deployments need no engine


class Routing:
    """What the provider registry hears from the fleet manager."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.unregistered: list[str] = []

    async def register(self, spec: DeploymentSpec) -> None:
        self.registered.append(spec.name)

    async def unregister(self, name: str) -> None:
        self.unregistered.append(name)


async def _noop(_: str) -> None:
    return None


@pytest.fixture
def systemctl(tmp_path: Path) -> Iterator[SystemctlDouble]:
    double = SystemctlDouble(tmp_path / "systemd")
    yield double
    double.close()


@pytest.fixture
def daemon_run(tmp_path: Path, systemctl: SystemctlDouble) -> Iterator[Any]:
    """`daemon_run()` is one life of corral-core's fleet over the same config.json; call it again to restart."""
    stores: list[ConfigStore] = []

    def start() -> tuple[FleetManager, Routing]:
        if stores:
            stores[-1].close()
        stores.append(ConfigStore(tmp_path / "corral" / "config.json"))
        routing = Routing()
        fleet = FleetManager(
            gpus=lambda: NO_GPUS,
            register=routing.register,
            unregister=routing.unregister,
            on_deployment_changed=_noop,
            publish=lambda *_: None,
            docker_url=NO_DOCKER,
            store=stores[-1],
            systemd=systemctl.manager,
        )
        return fleet, routing

    yield start
    for store in stores:
        store.close()


def fields(tiny_model: Path, name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": "systemd", "model_path": str(tiny_model), "gpus": "none", "port": free_port(),
            "ctx_size": 512, **more}  # fmt: skip


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.asyncio
async def test_a_systemd_deployment_is_driven_by_the_daemon_after_a_restart(
    daemon_run: Any, systemctl: SystemctlDouble, tiny_model: Path, llama_server_binary: Path, tmp_path: Path
):
    fleet, routing = daemon_run()
    wanted = fields(tiny_model, "native", load={"mode": "on-demand", "idle_ttl_s": 300})
    options = {"user": True, "binary": str(llama_server_binary), "log_dir": str(tmp_path / "logs")}
    await fleet.deploy(wanted, health_timeout_s=60, systemd=options)
    assert routing.registered == ["native"]
    spec = fleet.deployment_specs()["native"]

    fleet, routing = daemon_run()  # corral-core restarted: nothing of the first one is left but config.json

    assert fleet.deployment_specs() == {"native": spec}
    assert spec.load.mode == "on-demand", "the spec is kept whole, its policy included"
    await fleet.stop_deployment("native")
    assert not await healthy(spec.port)
    assert ["systemctl", "--user", "stop", "corral-native.service"] in systemctl.calls, "as the user unit it is"
    await fleet.start_deployment("native")
    await wait_for_async(lambda: healthy(spec.port), "the restarted daemon's start to bring llama-server up")
    assert await fleet.main_pid("native") is not None
    assert "llama" in await fleet.log_tail("native", 50), "the log file its unit writes"


@pytest.mark.asyncio
async def test_an_on_demand_systemd_deployment_is_installed_and_enabled_but_left_stopped(
    daemon_run: Any, systemctl: SystemctlDouble, tiny_model: Path, llama_server_binary: Path
):
    fleet, routing = daemon_run()
    wanted = fields(tiny_model, "cold", load={"mode": "on-demand"})

    await fleet.deploy(wanted, health_timeout_s=60, systemd={"binary": str(llama_server_binary)}, start=False)

    assert (systemctl.unit_dir(user=False) / "corral-cold.service").is_file()
    assert systemctl.enabled == {"corral-cold.service"}, "it comes back with the machine"
    assert not systemctl.running("corral-cold.service")
    assert await fleet.main_pid("cold") is None
    assert routing.registered == ["cold"], "routable while cold: a request for it starts it"
    fleet, _ = daemon_run()
    await fleet.start_deployment("cold")
    await wait_for_async(lambda: healthy(wanted["port"]), "the cold deployment to start after a restart")


@pytest.mark.asyncio
async def test_removing_a_systemd_deployment_removes_its_unit_its_provider_and_its_record(
    daemon_run: Any, systemctl: SystemctlDouble, tiny_model: Path, llama_server_binary: Path, tmp_path: Path
):
    fleet, _ = daemon_run()
    wanted = fields(tiny_model, "gone")
    await fleet.deploy(wanted, health_timeout_s=60, systemd={"binary": str(llama_server_binary)})
    fleet, routing = daemon_run()

    await fleet.remove("gone")

    assert routing.unregistered == ["gone"]
    assert not (systemctl.unit_dir(user=False) / "corral-gone.service").exists()
    assert not systemctl.running("corral-gone.service")
    assert not await healthy(wanted["port"])
    fleet, _ = daemon_run()
    assert "gone" not in fleet.deployment_specs()
    config = json.loads((tmp_path / "corral" / "config.json").read_text())
    assert config.get(SYSTEMD_TABLE, {}) == {}


@pytest.mark.asyncio
async def test_a_record_written_by_another_version_is_kept_on_disk_and_not_driven(
    daemon_run: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    config = ConfigStore(tmp_path / "corral" / "config.json")
    config.put(SYSTEMD_TABLE, "name", {"name": "future", "spec": {"name": "future", "flavour": "new"}, "binary": "/x"})
    config.close()

    fleet, _ = daemon_run()

    assert "future" not in fleet.deployment_specs()
    assert "the systemd deployment 'future' cannot be read" in caplog.text
    on_disk = json.loads((tmp_path / "corral" / "config.json").read_text())[SYSTEMD_TABLE]
    assert [record["name"] for record in on_disk.values()] == ["future"]


def test_a_restarted_corral_core_lists_the_systemd_deployments_config_json_holds(tmp_path: Path, tiny_model: Path):
    """The daemon end to end: what a first run recorded is read at start, and `corral fleet` shows it."""
    spec = DeploymentSpec.model_validate(fields(tiny_model, "native", load={"mode": "on-demand", "priority": 4}))
    store = ConfigStore(tmp_path / "corral" / "config.json")
    SystemdRecords(store).put(SystemdDeployment(spec=spec, user=True, binary="/usr/bin/llama-server", log_dir=None))
    store.close()
    daemon = CorralDaemon(tmp_path / "corral").start()
    try:
        listed = corral(daemon, "fleet", "list")
        shown = corral(daemon, "fleet", "on-demand", "--json")
    finally:
        daemon.stop()

    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("native")]
    assert row.split()[:3] == ["native", "yes", "systemd"]
    assert "(on demand)" in row
    (view,) = json.loads(shown.stdout)
    assert (view["name"], view["kind"], view["policy"]["priority"]) == ("native", "systemd", 4)
    assert "systemd deployment(s) from config.json: native" in daemon.log_path.read_text()


def corral(daemon: CorralDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args, "--socket", str(daemon.socket_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
