"""The daemon samples GPUs through NVML in the background; with no driver it says why and carries on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fleet.test_gpus import H100, L4_NO_SENSORS
from tests.testbed import CorralDaemon, write_devices

pytestmark = pytest.mark.nvml_stub


def test_daemon_reports_stub_gpus_on_the_admin_api_and_in_the_event_snapshot(nvml_stub, tmp_path):
    devices = write_devices(tmp_path / "gpus.json", [H100, L4_NO_SENSORS])
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:
        gpus = daemon.admin_call("GET", "/gpus").json()
        with daemon.admin() as admin, admin.stream("GET", "/events") as events:
            first = next(line for line in events.iter_lines() if line.startswith("data: "))
    finally:
        daemon.stop()

    assert gpus["state"] == "ok"
    assert [d["name"] for d in gpus["devices"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    assert gpus["devices"][0]["memory_used_bytes"] == H100["memory_used"]
    assert gpus["devices"][1]["unsupported"] == ["fan", "power_draw", "power_limit"]
    assert '"NVIDIA L4"' in first, "the first event-stream snapshot already carries the GPUs"


def test_daemon_without_a_driver_reports_why_and_serves_normally(nvml_stub, tmp_path):
    env = nvml_stub.environment(tmp_path / "missing.json")  # the library loads; the "driver" does not
    daemon = CorralDaemon(tmp_path / "corral", extra_env=env).start()
    try:
        gpus = daemon.admin_call("GET", "/gpus").json()
        status = daemon.admin_call("GET", "/status")
    finally:
        exit_code = daemon.stop()

    assert gpus["state"] == "unavailable"
    assert "driver is not loaded" in gpus["reason"]
    assert status.status_code == 200
    assert exit_code == 0
    assert "GPUs unavailable: no NVIDIA driver" in daemon.log_tail()


def test_corral_gpus_prints_each_device_and_json_for_scripts(nvml_stub, tmp_path):
    devices = write_devices(tmp_path / "gpus.json", [H100, L4_NO_SENSORS])
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:
        command = [sys.executable, "-m", "console.cli", "gpus", "--socket", str(daemon.socket_path)]
        human = subprocess.run(command, capture_output=True, text=True, timeout=30)
        machine = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=30)
    finally:
        daemon.stop()

    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "driver 550.54.15"
    assert "NVIDIA H100 80GB HBM3" in lines[2]
    assert "87%" in lines[2]
    assert "16.0/80.0 GiB" in lines[2]
    assert "412/700 W" in lines[2]
    assert json.loads(machine.stdout)["devices"][1]["name"] == "NVIDIA L4"
