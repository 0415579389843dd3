"""`corral fleet systemd-unit` and `corral fleet install` name the same llama-server, whichever way it is found.

Both go through the admin API in this process (no daemon, no Docker, no systemd): the unit's text, and an
install's dry run, which prints the unit it would write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway_core.api.admin import build_admin_app
from gateway_core.state import GatewayState


def executable(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "llama-server"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return binary


@pytest_asyncio.fixture
async def admin(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    state = GatewayState(tmp_path / "data")  # not started: planning a systemd unit needs no engine or GPU
    transport = httpx.ASGITransport(app=build_admin_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://corral") as client:
        yield client
    await state.close()


def unit_body(model: Path, **systemd: object) -> dict[str, object]:
    return {"model_path": str(model), "name": "tiny", "gpus": None, "port": 18081, "systemd": systemd}


async def exec_starts(admin: httpx.AsyncClient, model: Path) -> tuple[list[str], list[str]]:
    """The ExecStart lines of `fleet systemd-unit` and of `fleet install --dry-run`, as the CLI asks for them."""
    unit = await admin.post("/fleet/systemd/unit", json=unit_body(model, user=False))
    install = await admin.post(
        "/fleet/deployments", json={**unit_body(model, user=False, dry_run=True), "kind": "systemd"}
    )
    assert unit.status_code == 200, unit.text
    assert install.status_code == 200, install.text
    from_unit = [line for line in unit.text.splitlines() if line.startswith("ExecStart=")]
    from_install = [line for line in install.json()["dry_run"] if line.startswith("ExecStart=")]
    return from_unit, from_install


@pytest.mark.asyncio
async def test_both_name_the_llama_server_on_path_when_nothing_else_is_set(admin, tiny_model, tmp_path, monkeypatch):
    binary = executable(tmp_path / "bin")
    monkeypatch.delenv("CORRAL_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(binary.parent))

    from_unit, from_install = await exec_starts(admin, tiny_model)

    assert from_unit == from_install
    assert from_unit[0].startswith(f"ExecStart={binary} ")


@pytest.mark.asyncio
async def test_both_name_corral_llama_server_over_the_one_on_path(admin, tiny_model, tmp_path, monkeypatch):
    executable(tmp_path / "bin")
    chosen = executable(tmp_path / "own build")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CORRAL_LLAMA_SERVER", str(chosen))

    from_unit, from_install = await exec_starts(admin, tiny_model)

    assert from_unit == from_install
    assert str(tmp_path / "bin") not in from_unit[0]
    assert "own build" in from_unit[0]


@pytest.mark.asyncio
async def test_both_refuse_alike_when_no_llama_server_can_be_found(admin, tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("CORRAL_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    unit = await admin.post("/fleet/systemd/unit", json=unit_body(tiny_model))
    install = await admin.post("/fleet/deployments", json={**unit_body(tiny_model, dry_run=True), "kind": "systemd"})

    assert unit.status_code == install.status_code == 400
    assert unit.json() == install.json()
    error = unit.json()["error"]
    assert (error["param"], error["code"]) == ("binary", "invalid_deployment")
    assert "--binary" in error["message"]
    assert "CORRAL_LLAMA_SERVER" in error["message"]
