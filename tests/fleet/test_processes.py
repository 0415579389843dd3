"""The processes on the GPUs as nvitop shows them: who owns each (container, systemd unit, host) from its cgroup,
psutil's facts, NVML's SM %, and the host line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from gateway_core.contracts.fleet_views import ContainerView
from gateway_core.fleet.processes import (
    SM_UNSUPPORTED,
    Owner,
    ProcessInspector,
    cgroup_owner,
    owner_name,
    read_cgroup,
)
from tests.testbed import CorralDaemon, write_devices
from tests.testbed.nvml import measured_processes
from tests.testbed.ports import free_port
from tests.testbed.waiting import wait_for

CONTAINER_ID = "4f1c" + "0" * 56 + "beef"


def test_a_docker_scope_or_a_docker_cgroup_names_the_container():
    assert cgroup_owner(f"0::/system.slice/docker-{CONTAINER_ID}.scope\n") == Owner("container", CONTAINER_ID)
    v1 = f"12:memory:/docker/{CONTAINER_ID}\n11:cpu,cpuacct:/docker/{CONTAINER_ID}\n0::/\n"
    assert cgroup_owner(v1) == Owner("container", CONTAINER_ID)


def test_a_service_names_its_unit_and_a_user_manager_is_looked_through():
    assert cgroup_owner("0::/system.slice/corral-tiny.service\n") == Owner("unit", "corral-tiny.service")
    user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/corral-chat.service\n"
    assert cgroup_owner(user) == Owner("unit", "corral-chat.service")


def test_a_process_in_no_container_or_service_belongs_to_the_host():
    assert cgroup_owner("0::/\n") == Owner("host", "")
    assert cgroup_owner("0::/user.slice/user-1000.slice/session-3.scope\n") == Owner("host", "")
    assert cgroup_owner("") == Owner("host", "")


def test_a_container_the_fleet_knows_is_named_and_another_shows_its_short_id():
    known: ContainerView = {"container": "corral-tiny", "id": CONTAINER_ID[:12]}  # type: ignore[typeddict-item]
    assert owner_name(Owner("container", CONTAINER_ID), [known]) == "corral-tiny"
    assert owner_name(Owner("container", "ab" * 32), [known]) == "ab" * 6
    assert owner_name(Owner("unit", "x.service"), [known]) == "x.service"


@pytest.mark.docker
def test_a_process_in_a_real_container_is_owned_by_that_container(run_container, llama_server_image, tiny_model):
    container = run_container(
        llama_server_image,
        command=["-m", f"/models/{tiny_model.name}", "--host", "127.0.0.1", "--port", str(free_port())],
        volumes={str(tiny_model.parent): {"bind": "/models", "mode": "ro"}},
    )
    wait_for(lambda: container.reload() or container.attrs["State"]["Pid"], "the container's process")
    pid = container.attrs["State"]["Pid"]

    assert cgroup_owner(read_cgroup(pid)) == Owner("container", container.id)


def test_the_inspector_reads_user_rss_elapsed_and_command_and_cpu_from_its_second_look():
    script = "import time; print('up', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "up\n", "the interpreter is up (its RSS is not a half-loaded one's)"
        inspector = ProcessInspector()
        first = inspector.inspect([child.pid])[child.pid]
        second = inspector.inspect([child.pid])[child.pid]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    assert first.cpu_percent is None, "a first look has nothing to measure CPU % against"
    assert second.cpu_percent is not None
    assert first.user == second.user
    assert first.user
    assert first.rss_bytes
    assert first.rss_bytes > 1024 * 1024
    assert first.elapsed_s is not None
    assert 0 <= first.elapsed_s < 60
    assert first.command == f"{sys.executable} -c {script}"
    assert ProcessInspector().inspect([child.pid])[child.pid].command == "(exited)"


@pytest.mark.nvml_stub
def test_the_daemon_lists_gpu_processes_with_sm_where_nvml_reports_it_and_the_host_line(nvml_stub, tmp_path):
    marker = f"CORRAL_TEST_GPU_PROCESS={uuid.uuid4().hex}"
    quiet = f"CORRAL_TEST_GPU_PROCESS={uuid.uuid4().hex}"
    devices = write_devices(
        tmp_path / "gpus.json",
        [
            {"name": "A", "uuid": "GPU-a", "memory_total": 2**34, "memory_used": 0,
             "processes": [measured_processes(marker, 2**30, sm_util=37)]},
            {"name": "B", "uuid": "GPU-b", "memory_total": 2**34, "memory_used": 0,
             "processes": [measured_processes(quiet, 2**29)]},
        ],
    )  # fmt: skip
    children = [
        subprocess.Popen(["sleep", "60"], env={**os.environ, key: value})
        for key, value in (marker.split("=", 1), quiet.split("=", 1))
    ]
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:
        wait_for(lambda: len(daemon.admin_call("GET", "/gpus/processes").json()["processes"]) == 2, "both listed")
        answer = daemon.admin_call("GET", "/gpus/processes").json()
        refused = daemon.admin_call("GET", "/gpus/processes?all=1")
    finally:
        daemon.stop()
        for child in children:
            child.kill()
            child.wait()

    by_gpu = {row["gpu_index"]: row for row in answer["processes"]}
    assert by_gpu[0]["pid"] == children[0].pid
    assert by_gpu[0]["gpu_memory_bytes"] == 2**30
    assert by_gpu[0]["command"] == "sleep 60"
    assert by_gpu[0]["user"]
    assert by_gpu[0]["rss_bytes"] > 0
    assert by_gpu[0]["owner_kind"] in ("host", "unit", "container")  # wherever this test itself runs
    # GPU B's driver does not report per-process utilisation: the whole view says so rather than guess.
    assert by_gpu[1]["pid"] == children[1].pid
    assert answer["sm_note"] == SM_UNSUPPORTED
    assert by_gpu[0]["sm_percent"] is None
    host = answer["host"]
    assert host["cpu_count"] >= 1
    assert 0 < host["memory_used_bytes"] <= host["memory_total_bytes"]
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "all"


@pytest.mark.nvml_stub
def test_sm_percent_is_the_drivers_per_process_figure_when_every_gpu_reports_it(nvml_stub, tmp_path):
    marker = f"CORRAL_TEST_GPU_PROCESS={uuid.uuid4().hex}"
    devices = write_devices(
        tmp_path / "gpus.json",
        [{"name": "A", "uuid": "GPU-a", "memory_total": 2**34, "memory_used": 0,
          "processes": [measured_processes(marker, 2**30, sm_util=37)]}],
    )  # fmt: skip
    key, value = marker.split("=", 1)
    child = subprocess.Popen(["sleep", "60"], env={**os.environ, key: value})
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:
        wait_for(lambda: daemon.admin_call("GET", "/gpus/processes").json()["processes"], "the process listed")
        answer = daemon.admin_call("GET", "/gpus/processes").json()
    finally:
        daemon.stop()
        child.kill()
        child.wait()

    assert answer["sm_note"] is None
    assert [(row["pid"], row["sm_percent"]) for row in answer["processes"]] == [(child.pid, 37)]


@pytest.mark.docker
@pytest.mark.nvml_stub
def test_a_gpu_process_in_a_llama_server_container_shows_the_containers_name(
    nvml_stub, tmp_path, run_container, llama_server_image, tiny_model
):
    marker = f"CORRAL_TEST_GPU_PROCESS={uuid.uuid4().hex}"
    key, value = marker.split("=", 1)
    devices = write_devices(
        tmp_path / "gpus.json",
        [{"name": "A", "uuid": "GPU-a", "memory_total": 2**34, "memory_used": 0,
          "processes": [measured_processes(marker, 2**30, comm="llama-server")]}],
    )  # fmt: skip
    name = f"gpu-owner-{uuid.uuid4().hex[:8]}"
    run_container(
        llama_server_image,
        name=name,
        command=["-m", f"/models/{tiny_model.name}", "--host", "127.0.0.1", "--port", str(free_port())],
        volumes={str(tiny_model.parent): {"bind": "/models", "mode": "ro"}},
        environment={key: value},
    )
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:

        def owners() -> list[tuple[str, str]]:
            rows = daemon.admin_call("GET", "/gpus/processes").json()["processes"]
            return [(row["owner_kind"], row["owner"]) for row in rows]

        wait_for(lambda: owners() == [("container", name)], "the process owned by the named container")
        (row,) = daemon.admin_call("GET", "/gpus/processes").json()["processes"]
    finally:
        daemon.stop()

    assert row["command"].startswith("/app/llama-server -m /models/")
    assert row["gpu_memory_bytes"] == 2**30
