"""`corral fleet deploy --router MODELS_DIR`: one router-mode llama-server container through corral-core, with
the directory mounted read-only and llama-server configured by LLAMA_ARG_MODELS_DIR and LLAMA_ARG_MODELS_MAX
(no model, no alias); its provider serves every GGUF of the directory by its file name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]


@pytest.fixture
def fleet_daemon(tmp_path: Path, llama_server_image: str) -> Iterator[CorralDaemon]:
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def models_dir(tmp_path: Path, tiny_model: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    for name in ("alpha", "beta"):
        shutil.copyfile(tiny_model, directory / f"{name}.gguf")
    return directory


def corral(daemon: CorralDaemon, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args, "--socket", str(daemon.socket_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deploy_router(daemon: CorralDaemon, image: str, *args: str) -> subprocess.CompletedProcess[str]:
    common = ("--image", image, "--gpus", "none", "--ctx", "1024", "--parallel", "2")
    return corral(daemon, "fleet", "deploy", *args, *common)


def provider(daemon: CorralDaemon, name: str) -> dict[str, Any] | None:
    response = daemon.admin_call("GET", f"/providers/{name}")
    return response.json() if response.status_code == 200 else None


def test_a_router_deploy_runs_one_container_with_the_directory_mounted_read_only_and_serves_both_models(
    fleet_daemon: CorralDaemon,
    llama_server_image: str,
    docker_client: docker.DockerClient,
    models_dir: Path,
    names: Callable[[], str],
) -> None:
    name = names()

    deployed = deploy_router(
        fleet_daemon, llama_server_image, "--router", str(models_dir), "--models-max", "1", "--name", name
    )

    assert deployed.returncode == 0, deployed.stderr
    assert "served by their file names" in deployed.stdout
    assert "estimate is for its largest model (alpha.gguf), loaded one at a time" in deployed.stdout + deployed.stderr
    container = docker_client.containers.get(f"corral-{name}")
    (mount,) = container.attrs["Mounts"]
    assert (mount["Source"], mount["Destination"], mount["RW"]) == (str(models_dir), "/models", False)
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    assert (env["LLAMA_ARG_MODELS_DIR"], env["LLAMA_ARG_MODELS_MAX"]) == ("/models", "1")
    assert "LLAMA_ARG_MODEL" not in env
    assert "LLAMA_ARG_ALIAS" not in env
    wait_for(lambda: (provider(fleet_daemon, name) or {}).get("router_models"), "the router's models to be listed")
    view = provider(fleet_daemon, name)
    assert view is not None
    assert sorted(view["models"]) == ["alpha", "beta"]
    key = fleet_daemon.create_key("app")
    with httpx.Client(base_url=fleet_daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=60) as public:
        for model in ("alpha", "beta", "alpha"):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            answer = public.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["model"], answer.headers["x-corral-provider"]) == (model, name)
    # Configured through LLAMA_ARG_N_PARALLEL, which its model instances inherit and their argv does not show, the
    # router's slots are known once a model has loaded: one model (models-max 1) of two slots.
    wait_for(lambda: (provider(fleet_daemon, name) or {}).get("capacity") == 2, "the capacity measured", 15)
    listed = corral(fleet_daemon, "fleet", "list", "--json")
    (deployment,) = [d for d in json.loads(listed.stdout)["deployments"] if d["name"] == name]
    assert deployment["spec"]["router"] == {"models_max": 1}
    assert deployment["spec"]["model_path"] == str(models_dir)
    models = corral(fleet_daemon, "providers", "models", name, "--json")
    assert {m["id"] for m in json.loads(models.stdout)} == {"alpha", "beta"}


def test_a_router_deploy_refuses_a_gguf_file_or_a_directory_without_one_and_says_what_to_give(
    fleet_daemon: CorralDaemon, llama_server_image: str, tiny_model: Path, tmp_path: Path, names: Callable[[], str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, said in ((tiny_model, "must be a directory of .gguf files"), (empty, "holds no .gguf file")):
        refused = deploy_router(fleet_daemon, llama_server_image, "--router", str(target), "--name", names())
        assert refused.returncode == 1
        assert said in refused.stderr, refused.stderr
    both = deploy_router(fleet_daemon, llama_server_image, str(tiny_model), "--router", str(tmp_path))
    assert both.returncode == 2  # a usage error, before the daemon is asked
    assert "not both" in both.stderr
    lone_max = deploy_router(fleet_daemon, llama_server_image, str(tiny_model), "--models-max", "2")
    assert lone_max.returncode == 2
    assert "--models-max goes with --router" in lone_max.stderr


def test_an_on_demand_router_lists_its_models_while_cold_and_a_request_for_one_starts_it(
    fleet_daemon: CorralDaemon,
    llama_server_image: str,
    docker_client: docker.DockerClient,
    models_dir: Path,
    names: Callable[[], str],
) -> None:
    name = names()

    deployed = deploy_router(
        fleet_daemon, llama_server_image, "--router", str(models_dir), "--name", name, "--on-demand"
    )

    assert deployed.returncode == 0, deployed.stderr
    unload = fleet_daemon.admin_call("POST", f"/fleet/deployments/{name}/unload")
    assert unload.status_code == 200, unload.text
    assert docker_client.containers.get(f"corral-{name}").status != "running"
    cold = provider(fleet_daemon, name)
    assert cold is not None
    assert sorted(cold["models"]) == ["alpha", "beta"], "a cold router's models are listed from its directory"
    key = fleet_daemon.create_key("app")
    with httpx.Client(
        base_url=fleet_daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=120
    ) as public:
        body = {"model": "beta", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        answer = public.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-corral-provider"] == name
    docker_client.containers.get(f"corral-{name}").reload()
    assert docker_client.containers.get(f"corral-{name}").status == "running"


def test_a_cold_on_demand_router_still_lists_its_models_after_corral_core_restarts(
    fleet_daemon: CorralDaemon, llama_server_image: str, models_dir: Path, names: Callable[[], str]
) -> None:
    name = names()
    deployed = deploy_router(
        fleet_daemon, llama_server_image, "--router", str(models_dir), "--name", name, "--on-demand"
    )
    assert deployed.returncode == 0, deployed.stderr
    assert fleet_daemon.admin_call("POST", f"/fleet/deployments/{name}/unload").status_code == 200

    fleet_daemon.stop()
    fleet_daemon.start()

    cold = provider(fleet_daemon, name)
    assert cold is not None
    assert sorted(cold["models"]) == ["alpha", "beta"]
    key = fleet_daemon.create_key("app")
    with httpx.Client(
        base_url=fleet_daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=120
    ) as public:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        answer = public.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
