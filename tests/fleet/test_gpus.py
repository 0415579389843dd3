"""GPU telemetry reads devices through the real nvidia-ml-py, here loading the NVML stub library."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed import write_devices

pytestmark = pytest.mark.nvml_stub

# LD_LIBRARY_PATH is read when a process starts, so each reading runs in a fresh interpreter.
SAMPLE_SCRIPT = """
import dataclasses, json
from gateway_core.fleet.gpus import NvmlReader
reader = NvmlReader()
print(json.dumps(dataclasses.asdict(reader.sample()), default=sorted))
reader.close()
"""

H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-6b1e3c55-0000-4000-8000-000000000001",
    "memory_total": 85_899_345_920,
    "memory_used": 17_179_869_184,
    "utilization_gpu": 87,
    "utilization_memory": 40,
    "temperature": 61,
    "power_usage_mw": 412_500,
    "power_limit_mw": 700_000,
    "fan_speed": 45,
}
# A passively cooled card with no fan and no power sensor.
L4_NO_SENSORS = {
    "name": "NVIDIA L4",
    "uuid": "GPU-6b1e3c55-0000-4000-8000-000000000002",
    "memory_total": 24_152_899_584,
    "memory_used": 0,
    "utilization_gpu": 0,
    "utilization_memory": 0,
    "temperature": 34,
}


def sample_gpus(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SAMPLE_SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stub_gpus_are_read_through_nvidia_ml_py(nvml_stub, tmp_path):
    own_pid = os.getpid()
    h100 = {**H100, "processes": [{"pid": own_pid, "used_memory": 8_589_934_592}]}
    devices_file = write_devices(tmp_path / "gpus.json", [h100, L4_NO_SENSORS], driver_version="560.35.03")

    snapshot = sample_gpus(nvml_stub.environment(devices_file))

    assert snapshot["state"] == "ok"
    assert snapshot["driver_version"] == "560.35.03"
    first, second = snapshot["devices"]
    assert first["index"] == 0
    assert first["name"] == "NVIDIA H100 80GB HBM3"
    assert first["uuid"] == H100["uuid"]
    assert first["memory_total_bytes"] == 85_899_345_920
    assert first["memory_used_bytes"] == 17_179_869_184
    assert first["utilization_percent"] == 87
    assert first["temperature_c"] == 61
    assert first["power_draw_watts"] == pytest.approx(412.5)
    assert first["power_limit_watts"] == pytest.approx(700.0)
    assert first["fan_percent"] == 45
    assert first["unsupported"] == []
    (process,) = first["processes"]
    assert process["pid"] == own_pid
    assert process["used_memory_bytes"] == 8_589_934_592
    assert process["name"] == Path(f"/proc/{own_pid}/comm").read_text().strip()
    assert second["index"] == 1
    assert second["processes"] == []


def test_readings_a_device_lacks_are_unsupported_not_errors(nvml_stub, tmp_path):
    devices_file = write_devices(tmp_path / "gpus.json", [L4_NO_SENSORS])

    (device,) = sample_gpus(nvml_stub.environment(devices_file))["devices"]

    assert device["fan_percent"] is None
    assert device["power_draw_watts"] is None
    assert device["power_limit_watts"] is None
    assert device["unsupported"] == ["fan", "power_draw", "power_limit"]
    assert device["temperature_c"] == 34


def test_without_an_nvml_library_gpus_are_unavailable_with_the_reason(tmp_path):
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has a real NVIDIA driver installed, so the no-library path cannot be shown here")
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))

    snapshot = sample_gpus(env)

    assert snapshot["state"] == "unavailable"
    assert "libnvidia-ml.so.1 was not found" in snapshot["reason"]
    assert snapshot["devices"] == []


def test_library_without_a_loaded_driver_is_unavailable_with_the_reason(nvml_stub, tmp_path):
    env = nvml_stub.environment(tmp_path / "no-such-config.json")

    snapshot = sample_gpus(env)

    assert snapshot["state"] == "unavailable"
    assert "driver is not loaded" in snapshot["reason"]
