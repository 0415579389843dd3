"""GPU telemetry reads devices through the real nvidia-ml-py, here loading the NVML stub library."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway_core.fleet.units import GiB
from tests.testbed import write_devices
from tests.testbed.nvml import deployment_memory, measured_processes
from tests.testbed.waiting import wait_for

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


# --- measured processes: entries that stand for the live processes whose environment holds KEY=VALUE -------

# One NVML session (as corral-core keeps one) that samples each time it reads a line on stdin.
SAMPLE_ON_EACH_LINE = """
import dataclasses, json, sys
from gateway_core.fleet.gpus import NvmlReader
reader = NvmlReader()
for _ in sys.stdin:
    print(json.dumps(dataclasses.asdict(reader.sample()), default=sorted), flush=True)
reader.close()
"""


@pytest.fixture
def alias():
    """A unique LLAMA_ARG_ALIAS value: the stub matches every process on the machine, other tests' included."""
    return lambda name: f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spawn(tmp_path):
    """Start a process that sleeps with `env` added to its environment; all are killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(command: str = "sleep", **env: str) -> subprocess.Popen[bytes]:
        # `command` names a copy of sleep, so that its /proc/PID/comm differs where a test needs it to.
        executable = tmp_path / command
        if not executable.exists():
            executable.symlink_to(shutil.which("sleep") or "/bin/sleep")
        started.append(subprocess.Popen([str(executable), "300"], env={**os.environ, **env}))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def sampler(nvml_stub, tmp_path):
    """Sample the stub's devices in one long-lived NVML session: `sampler(devices)` writes them and samples."""
    devices_file = tmp_path / "gpus.json"
    write_devices(devices_file, [])
    session = subprocess.Popen(
        [sys.executable, "-c", SAMPLE_ON_EACH_LINE],
        env=nvml_stub.environment(devices_file),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert session.stdin is not None
    assert session.stdout is not None

    def sample(devices: list[dict] | None = None) -> dict:
        if devices is not None:
            write_devices(devices_file, devices)
        session.stdin.write("\n")
        session.stdin.flush()
        return json.loads(session.stdout.readline())

    yield sample
    session.stdin.close()
    session.wait(timeout=10)
    session.stdout.close()


def test_a_measured_entry_lists_each_live_process_with_its_environment_entry_and_adds_its_memory(spawn, sampler, alias):
    a = alias("a")
    first, second = spawn(LLAMA_ARG_ALIAS=a), spawn(LLAMA_ARG_ALIAS=a)
    spawn(LLAMA_ARG_ALIAS=a + "b")  # the entry is matched exactly, not as a prefix
    spawn(LLAMA_ARG_ALIAS=alias("b"))
    gpu = {**H100, "processes": [measured_processes(f"LLAMA_ARG_ALIAS={a}", 3 * GiB)]}

    (device,) = sampler([gpu])["devices"]

    assert sorted(p["pid"] for p in device["processes"]) == sorted([first.pid, second.pid])
    assert {p["used_memory_bytes"] for p in device["processes"]} == {3 * GiB}
    assert {p["name"] for p in device["processes"]} == {"sleep"}
    assert device["memory_used_bytes"] == H100["memory_used"] + 2 * 3 * GiB


def test_a_process_that_exits_frees_its_memory_at_the_next_sample_of_the_same_session(spawn, sampler, alias):
    a = alias("a")
    process = spawn(LLAMA_ARG_ALIAS=a)
    gpu = {**H100, "processes": [measured_processes(f"LLAMA_ARG_ALIAS={a}", 3 * GiB)]}
    (before,) = sampler([gpu])["devices"]

    process.kill()
    process.wait(timeout=5)
    (after,) = sampler()["devices"]

    assert [p["pid"] for p in before["processes"]] == [process.pid]
    assert before["memory_used_bytes"] == H100["memory_used"] + 3 * GiB
    assert after["processes"] == []
    assert after["memory_used_bytes"] == H100["memory_used"]


def test_a_process_started_after_the_file_was_written_is_measured_at_the_next_sample(spawn, sampler, alias):
    late = alias("late")
    gpu = {**H100, "processes": [measured_processes(f"LLAMA_ARG_ALIAS={late}", 1 * GiB)]}
    (before,) = sampler([gpu])["devices"]

    process = spawn(LLAMA_ARG_ALIAS=late)
    # Under a loaded machine's full suite the first sample after the spawn once missed it: sample until it shows.
    samples: list[dict[str, Any]] = []
    wait_for(lambda: samples.append(sampler()["devices"][0]) or samples[-1]["processes"], "the late process listed")
    after = samples[-1]

    assert before["processes"] == []
    assert before["memory_used_bytes"] == H100["memory_used"]
    assert [p["pid"] for p in after["processes"]] == [process.pid]
    assert after["memory_used_bytes"] == H100["memory_used"] + 1 * GiB


def test_a_deployment_entry_counts_only_its_llama_server_not_other_commands_in_its_environment(spawn, sampler, alias):
    chat = alias("chat")
    server = spawn("llama-server", LLAMA_ARG_ALIAS=chat)
    spawn("curl", LLAMA_ARG_ALIAS=chat)  # a container's healthcheck runs with the container's environment
    gpu = {**H100, "processes": [deployment_memory(chat, 2 * GiB)]}

    (device,) = sampler([gpu])["devices"]

    assert [(p["pid"], p["name"]) for p in device["processes"]] == [(server.pid, "llama-server")]
    assert device["memory_used_bytes"] == H100["memory_used"] + 2 * GiB


def test_pid_entries_and_measured_entries_are_listed_together_each_on_its_own_device(spawn, sampler, alias):
    on_l4 = alias("on-l4")
    process = spawn(LLAMA_ARG_ALIAS=on_l4)
    h100 = {**H100, "processes": [{"pid": 4242, "used_memory": 1 * GiB}]}
    l4 = {**L4_NO_SENSORS, "processes": [measured_processes(f"LLAMA_ARG_ALIAS={on_l4}", 1 * GiB)]}

    first, second = sampler([h100, l4])["devices"]

    assert [(p["pid"], p["used_memory_bytes"]) for p in first["processes"]] == [(4242, 1 * GiB)]
    assert first["memory_used_bytes"] == H100["memory_used"]  # a pid entry is part of the file's memory_used
    assert [p["pid"] for p in second["processes"]] == [process.pid]
    assert second["memory_used_bytes"] == 1 * GiB


def test_measured_memory_is_capped_at_the_gpu_total(spawn, sampler, alias):
    big = alias("big")
    spawn(LLAMA_ARG_ALIAS=big)
    gpu = {**L4_NO_SENSORS, "processes": [measured_processes(f"LLAMA_ARG_ALIAS={big}", 100 * GiB)]}

    (device,) = sampler([gpu])["devices"]

    assert device["memory_used_bytes"] == device["memory_total_bytes"] == L4_NO_SENSORS["memory_total"]
