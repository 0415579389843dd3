"""`corral fleet` for models on demand, as an operator types it, against a real corral-core and a real
llama-server container on the CPU: deploy --on-demand, on-demand, policy, pin, unpin, load, unload, list, and
the compose export of the policy an operator changed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from tests.testbed import CorralDaemon

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]
LOAD_TIMEOUT = "90s"


@pytest.fixture
def name(docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique deployment name; its container is removed at teardown whatever happened."""
    made = f"cli{uuid.uuid4().hex[:8]}"
    yield made
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{made}").remove(force=True)


@pytest.fixture
def daemon(tmp_path: Path, llama_server_image: str) -> Iterator[CorralDaemon]:
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


def corral(daemon: CorralDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args, "--socket", str(daemon.socket_path)],
        capture_output=True,
        text=True,
        timeout=180,  # past a deploy's load timeout (LOAD_TIMEOUT), so a stalled load fails with its reason
    )


def ok(daemon: CorralDaemon, *args: str) -> str:
    result = corral(daemon, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def on_demand_json(daemon: CorralDaemon, name: str) -> dict[str, Any]:
    (view,) = [view for view in json.loads(ok(daemon, "fleet", "on-demand", "--json")) if view["name"] == name]
    return view


def container_state(docker_client: docker.DockerClient, name: str) -> str:
    state: str = docker_client.containers.get(f"corral-{name}").status
    return state


def test_an_on_demand_deployment_is_deployed_shown_changed_unloaded_and_loaded_from_the_cli(
    daemon: CorralDaemon, docker_client: docker.DockerClient, tiny_model: Path, llama_server_image: str, name: str
):
    deployed = ok(daemon, "fleet", "deploy", str(tiny_model), "--name", name, "--image", llama_server_image,
                  "--gpus", "none", "--ctx", "1024", "--on-demand", "--idle-ttl", "10m", "--priority", "2",
                  "--load-timeout", LOAD_TIMEOUT)  # fmt: skip

    assert f"deployed {name}, served as model '{name}'" in deployed
    assert (
        f"{name}: warm (running); on demand: stopped after 10m idle, priority 2, not pinned, load timeout 90s"
        in deployed
    )
    view = on_demand_json(daemon, name)
    assert (view["state"], view["kind"]) == ("warm", "container")
    assert view["policy"] == {"mode": "on-demand", "idle_ttl_s": 600, "pin": False, "priority": 2, "load_timeout_s": 90}
    assert view["last_load_s"] is not None
    spec = json.loads(ok(daemon, "fleet", "list", "--json"))["deployments"]
    assert [d["spec"]["load"]["mode"] for d in spec if d["name"] == name] == ["on-demand"], "the label has the policy"

    table = ok(daemon, "fleet", "on-demand").splitlines()
    assert table[0].split() == ["NAME", "KIND", "STATE", "POLICY", "REQUESTS", "LAST", "USED", "LAST", "LOAD",
                                "MEASURED", "ESTIMATE"]  # fmt: skip
    (row,) = [line for line in table if line.startswith(name)]
    assert "container  warm   on-demand idle 10m p2" in row
    assert "s ago" in row, "the last load, as how long ago"
    assert "warm (on demand)" in ok(daemon, "fleet", "list")

    pinned = ok(daemon, "fleet", "pin", name)
    assert f"{name}: warm (running); on demand: stopped after 10m idle, priority 2, pinned" in pinned
    changed = json.loads(ok(daemon, "fleet", "policy", name, "--idle-ttl", "90s", "--no-pin", "--priority", "5",
                            "--json"))  # fmt: skip
    assert changed["policy"] == {"mode": "on-demand", "idle_ttl_s": 90, "pin": False, "priority": 5,
                                 "load_timeout_s": 90}  # fmt: skip
    assert ok(daemon, "fleet", "policy", name).startswith(f"{name}: warm (running); on demand: stopped after 90s idle")

    unloaded = ok(daemon, "fleet", "unload", name)
    assert unloaded.startswith(f"{name}: cold (stopped; started by the next request for it)")
    assert container_state(docker_client, name) == "exited"
    loaded = json.loads(ok(daemon, "fleet", "load", name, "--json"))
    assert loaded["state"] == "warm"
    assert container_state(docker_client, name) == "running"

    exported = yaml.safe_load(ok(daemon, "fleet", "export-compose"))["services"][name]
    operators = {"mode": "on-demand", "idle_ttl": "90s", "pin": False, "priority": 5, "load_timeout": "90s"}
    assert exported["x-corral"]["load"] == operators, "the policy the operator set, not the label's"


def test_always_and_unpin_switch_an_existing_deployment_back(
    daemon: CorralDaemon, tiny_model: Path, llama_server_image: str, name: str
):
    ok(daemon, "fleet", "deploy", str(tiny_model), "--name", name, "--image", llama_server_image, "--gpus", "none",
       "--ctx", "1024", "--on-demand", "--pin", "--load-timeout", LOAD_TIMEOUT)  # fmt: skip

    assert on_demand_json(daemon, name)["policy"]["pin"] is True
    assert ", not pinned," in ok(daemon, "fleet", "unpin", name)
    always = ok(daemon, "fleet", "policy", name, "--always")

    assert always.startswith(f"{name}: warm; always up")
    assert on_demand_json(daemon, name)["policy"]["mode"] == "always"


def test_policy_flags_without_on_demand_and_bad_durations_are_refused_before_anything_is_deployed(
    daemon: CorralDaemon, tiny_model: Path, name: str
):
    without = corral(daemon, "fleet", "deploy", str(tiny_model), "--name", name, "--idle-ttl", "5m")
    bad = corral(daemon, "fleet", "deploy", str(tiny_model), "--name", name, "--on-demand", "--idle-ttl", "soon")
    unknown = corral(daemon, "fleet", "pin", "no-such-deployment")

    assert without.returncode == 2
    assert "set an on-demand policy: add --on-demand" in without.stderr
    assert bad.returncode == 2
    assert "argument --idle-ttl: 'soon' is not a duration" in bad.stderr
    assert unknown.returncode == 1
    assert "no-such-deployment" in unknown.stderr
    # Other corral-cores' containers on a shared engine are listed too: only this name must be absent.
    assert name not in [view["name"] for view in json.loads(ok(daemon, "fleet", "on-demand", "--json"))]
