"""Fixtures the console's tests share."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_core.fleet.gpus import GpuSnapshot
from gateway_core.fleet.manager import FleetManager
from gateway_core.store.config_store import ConfigStore
from tests.fleet.systemctl_double import SystemctlDouble
from tests.testbed import CorralDaemon


@pytest.fixture
def fleet_daemon(tmp_path: Path, tiny_model: Path) -> Iterator[CorralDaemon]:
    """A corral-core whose GGUF catalog holds the tiny model (as tiny-llama.gguf), for the deploy form."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(tiny_model, models_dir / "tiny-llama.gguf")
    daemon = CorralDaemon(tmp_path / "c", extra_env={"CORRAL_MODELS_DIRS": str(models_dir)}).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def systemd_fleet(tmp_path: Path) -> Iterator[FleetManager]:
    """A fleet manager with no engine whose systemctl is the testbed's double (it runs the units Corral writes)."""
    systemctl = SystemctlDouble(tmp_path / "systemd")
    store = ConfigStore(tmp_path / "corral" / "config.json")

    async def ignored(_: object) -> None:
        return None

    yield FleetManager(
        gpus=lambda: GpuSnapshot(state="unavailable", reason="no NVIDIA driver here"),
        register=ignored,
        unregister=ignored,
        on_deployment_changed=ignored,
        publish=lambda *_: None,
        docker_url="unix:///nonexistent/docker.sock",
        store=store,
        systemd=systemctl.manager,
    )
    store.close()
    systemctl.close()
