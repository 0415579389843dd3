"""Deployments driven through corral-core, as an operator would: the CLI, the admin API and the gateway."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import httpx
import openai
import pytest
import yaml

from tests.testbed import CorralDaemon, write_devices
from tests.testbed.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]


@pytest.fixture
def fleet_daemon(tmp_path, llama_server_image):
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


def corral(daemon, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args, "--socket", str(daemon.socket_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deploy(daemon, tiny_model, image, name, *extra: str) -> subprocess.CompletedProcess[str]:
    return corral(
        daemon,
        "fleet",
        "deploy",
        str(tiny_model),
        "--name",
        name,
        "--image",
        image,
        "--gpus",
        "none",
        "--ctx",
        "1024",
        *extra,
    )


def provider_state(daemon, name: str) -> str | None:
    response = daemon.admin_call("GET", f"/providers/{name}")
    return response.json()["state"] if response.status_code == 200 else None


def test_a_deployed_gguf_is_served_through_the_gateway_to_the_openai_sdk(
    fleet_daemon, tiny_model, llama_server_image, names
):
    name = names()

    deployed = deploy(fleet_daemon, tiny_model, llama_server_image, name)

    assert deployed.returncode == 0, deployed.stderr
    assert f"deployed {name}: healthy" in deployed.stdout
    assert "KV cache" in deployed.stdout, "the VRAM estimate is explained"
    client = openai.OpenAI(
        base_url=fleet_daemon.base_url + "/v1", api_key=fleet_daemon.create_key("app"), max_retries=0
    )
    reply = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=6, extra_body={"ignore_eos": True}
    )
    client.close()
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens == 6
    listed = corral(fleet_daemon, "fleet", "list", "--json")
    (deployment,) = [d for d in json.loads(listed.stdout)["deployments"] if d["name"] == name]
    assert (deployment["managed"], deployment["state"], deployment["gpus"]) == (True, "running", "none")
    assert deployment["spec"]["model_path"] == str(tiny_model)


def test_stop_start_restart_and_remove_keep_routing_in_step(fleet_daemon, tiny_model, llama_server_image, names):
    name = names()
    assert deploy(fleet_daemon, tiny_model, llama_server_image, name).returncode == 0

    assert corral(fleet_daemon, "fleet", "stop", name).returncode == 0
    wait_for(lambda: provider_state(fleet_daemon, name) == "down", "the stopped deployment to be down (not routed)")
    assert corral(fleet_daemon, "fleet", "start", name).returncode == 0
    wait_for(lambda: provider_state(fleet_daemon, name) == "ready", "the deployment to be ready again")
    assert corral(fleet_daemon, "fleet", "restart", name).returncode == 0
    wait_for(lambda: provider_state(fleet_daemon, name) == "ready", "the deployment to be ready again")

    removed = corral(fleet_daemon, "fleet", "remove", name)

    assert removed.returncode == 0, removed.stderr
    assert provider_state(fleet_daemon, name) is None, "removing a deployment removes its provider"
    assert name not in corral(fleet_daemon, "fleet", "list").stdout


def test_logs_tail_and_follow(fleet_daemon, tiny_model, llama_server_image, names):
    name = names()
    assert deploy(fleet_daemon, tiny_model, llama_server_image, name).returncode == 0

    tail = corral(fleet_daemon, "fleet", "logs", name, "--tail", "50")
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "fleet",
            "logs",
            name,
            "-f",
            "--tail",
            "5",
            "--socket",
            str(fleet_daemon.socket_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    followed: list[str] = []

    def read_followed() -> None:
        for line in follow.stdout:
            followed.append(line)

    reader = threading.Thread(target=read_followed, daemon=True)
    reader.start()
    # The last lines so far come first: once they are out, the follower is attached and sees what comes next.
    wait_for(lambda: followed, "the follower to print the log so far")
    httpx.post(
        f"{fleet_daemon.admin_call('GET', f'/providers/{name}').json()['base_url']}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    wait_for(lambda: any("release" in line for line in followed), "the follower to show the request served after it")
    follow.terminate()
    follow.wait(timeout=10)
    reader.join(timeout=10)
    follow.stdout.close()

    assert tail.returncode == 0
    assert "server is listening" in tail.stdout or "listening" in tail.stdout
    unknown = corral(fleet_daemon, "fleet", "logs", "no-such-deployment", "-f")
    assert unknown.returncode == 1
    assert "no deployment 'no-such-deployment'" in unknown.stderr


def test_container_events_reach_the_event_stream(fleet_daemon, tiny_model, llama_server_image, names):
    name = names()
    seen: list[str] = []
    with fleet_daemon.admin() as admin, admin.stream("GET", "/events", timeout=30) as events:
        assert deploy(fleet_daemon, tiny_model, llama_server_image, name).returncode == 0
        assert corral(fleet_daemon, "fleet", "stop", name).returncode == 0
        for line in events.iter_lines():
            if line.startswith("data: ") and f'"name":"{name}"' in line and '"action"' in line:
                seen.append(line)
            if any('"action":"die"' in s for s in seen):
                break

    assert any('"action":"start"' in s for s in seen)
    assert any('"action":"die"' in s for s in seen)


def test_compose_export_then_import_recreates_the_same_deployment(
    fleet_daemon, tiny_model, llama_server_image, names, tmp_path
):
    name = names()
    assert deploy(fleet_daemon, tiny_model, llama_server_image, name, "--parallel", "2").returncode == 0
    before = json.loads(corral(fleet_daemon, "fleet", "list", "--json").stdout)["deployments"]
    compose_file = tmp_path / "docker-compose.yml"
    assert corral(fleet_daemon, "fleet", "export-compose", "-o", str(compose_file)).returncode == 0
    exported = yaml.safe_load(compose_file.read_text())
    # The engine may hold other deployments (another test run's); this test round-trips its own.
    exported["services"] = {name: exported["services"][name]}
    compose_file.write_text(yaml.safe_dump(exported))
    assert corral(fleet_daemon, "fleet", "remove", name).returncode == 0

    imported = corral(fleet_daemon, "fleet", "import-compose", str(compose_file))

    assert imported.returncode == 0, imported.stderr
    after = json.loads(corral(fleet_daemon, "fleet", "list", "--json").stdout)["deployments"]
    assert [d["spec"] for d in after if d["name"] == name] == [d["spec"] for d in before if d["name"] == name]
    assert provider_state(fleet_daemon, name) == "ready"


def test_bad_deployments_are_refused_with_the_problem_named(
    fleet_daemon, tiny_model, llama_server_image, names, tmp_path
):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(tiny_model.read_bytes()[:2000])
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = str(busy.getsockname()[1])

    cases = {
        "not a GGUF": (corral(fleet_daemon, "fleet", "deploy", str(not_gguf), "--gpus", "none"), "bad magic"),
        "truncated": (corral(fleet_daemon, "fleet", "deploy", str(truncated), "--gpus", "none"), "truncated"),
        "missing image": (
            corral(
                fleet_daemon,
                "fleet",
                "deploy",
                str(tiny_model),
                "--name",
                names(),
                "--gpus",
                "none",
                "--image",
                "corral-testbed/absent:1",
            ),
            "not on this Docker engine",
        ),
        "port in use": (deploy(fleet_daemon, tiny_model, llama_server_image, names(), "--port", busy_port), busy_port),
        "GPU without driver": (
            deploy(fleet_daemon, tiny_model, llama_server_image, names(), "--gpus", "0"),
            "no NVIDIA driver",
        ),
    }
    busy.close()

    for case, (result, words) in cases.items():
        assert result.returncode == 1, case
        assert words in result.stderr, (case, result.stderr)
    listed = json.loads(corral(fleet_daemon, "fleet", "list", "--json").stdout)["deployments"]
    assert not [d for d in listed if d["name"] in names.made], "a refused deployment leaves nothing behind"


def test_a_gpu_id_that_does_not_exist_is_refused(tmp_path, nvml_stub, tiny_model, llama_server_image, names):
    two_gpus = [
        {
            "name": "NVIDIA L4",
            "uuid": f"GPU-{i}",
            "memory_total": 24 * 2**30,
            "memory_used": i * 2**30,
            "utilization_gpu": 0,
            "utilization_memory": 0,
        }
        for i in range(2)
    ]
    devices = write_devices(tmp_path / "gpus.json", two_gpus)
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    try:
        refused = deploy(daemon, tiny_model, llama_server_image, names(), "--gpus", "0,5")
        plan = corral(daemon, "fleet", "deploy", str(tiny_model), "--plan", "--json", "--image", llama_server_image)
    finally:
        daemon.stop()

    assert refused.returncode == 1
    assert "GPU id(s) [5] do not exist here; this box has GPUs [0, 1]" in refused.stderr
    placement = json.loads(plan.stdout)["placement"]
    assert placement["fits"] is True
    assert placement["gpus"] == [0], "the GPU with the most free memory is suggested"


def test_an_unreachable_engine_is_reported_and_nothing_else_breaks(tmp_path, tiny_model):
    daemon = CorralDaemon(tmp_path / "corral", extra_env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}).start()
    try:
        listed = corral(daemon, "fleet", "list")
        deployed = corral(daemon, "fleet", "deploy", str(tiny_model), "--gpus", "none")
        status = corral(daemon, "status")
    finally:
        daemon.stop()

    assert "containers unavailable: cannot reach the Docker engine" in listed.stdout
    assert deployed.returncode == 1
    assert "cannot reach the Docker engine" in deployed.stderr
    assert status.returncode == 0


def test_systemd_install_dry_run_prints_the_unit_and_commands_without_running_them(
    fleet_daemon, tiny_model, llama_server_binary, names
):
    name = names()

    dry = corral(
        fleet_daemon,
        "fleet",
        "install",
        str(tiny_model),
        "--name",
        name,
        "--gpus",
        "none",
        "--binary",
        str(llama_server_binary),
        "--dry-run",
    )
    unit = corral(
        fleet_daemon,
        "fleet",
        "systemd-unit",
        str(tiny_model),
        "--name",
        name,
        "--gpus",
        "none",
        "--binary",
        str(llama_server_binary),
    )

    assert dry.returncode == 0, dry.stderr
    assert "[Service]" in dry.stdout
    assert "systemctl daemon-reload" in dry.stdout
    assert f"corral-{name}.service" in dry.stdout
    settings = [line for line in unit.stdout.splitlines() if line and not line.startswith("#")]
    assert "[Unit]" in settings
    assert "Restart=on-failure" in settings
    assert not [line for line in settings if line.startswith("PrivateDevices")], "it would hide /dev/nvidia*"
    assert provider_state(fleet_daemon, name) is None, "a dry run registers nothing"
