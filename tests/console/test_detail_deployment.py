"""A deployment's detail: corral-core masks secrets before they leave it (names, flags and values that look like
keys), and its detail route answers a real llama-server container's command, image, environment, spec, health
checks and last exit; the console's detail view shows them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
import pytest_asyncio
from textual.app import App
from textual.widgets import Static

from console.live_state import LiveState
from console.screens.deployment_detail import DeploymentDetailScreen
from gateway_core.api.detail_routes import mask_command, mask_environment, mask_text, recent_errors, systemd_detail
from gateway_core.client import CorralClient, CorralError
from gateway_core.contracts.detail_views import MASKED, DeploymentDetailView
from gateway_core.fleet.manager import FleetManager
from tests.test_client import mismatches
from tests.testbed import CorralDaemon, free_port
from tests.testbed.waiting import wait_for_async

SECRET = "sk-live-0123456789abcdef"


def test_secret_looking_names_are_masked_and_other_values_kept():
    environment = mask_environment(
        [
            "HF_TOKEN=hf_abcdefghijklmnop",
            "OPENAI_API_KEY=anything",
            "DB_PASSWORD=hunter2",
            "MY_SECRET=x",
            "LLAMA_ARG_PORT=8081",
            f"NOTES=uses {SECRET} today",
            "EMPTY_KEY=",
        ]
    )
    assert environment == {
        "HF_TOKEN": MASKED,
        "OPENAI_API_KEY": MASKED,
        "DB_PASSWORD": MASKED,
        "MY_SECRET": MASKED,
        "LLAMA_ARG_PORT": "8081",
        "NOTES": f"uses {MASKED} today",
        "EMPTY_KEY": "",
    }


def test_a_secret_flags_value_is_masked_in_the_command_line():
    command = ["/app/llama-server", "--api-key", "plain-words", "--hf-token=abc", "--api-key-file", "/run/k", SECRET]
    assert mask_command(command) == [
        "/app/llama-server",
        "--api-key",
        MASKED,
        f"--hf-token={MASKED}",
        "--api-key-file",
        "/run/k",
        MASKED,
    ]


def test_keys_in_log_text_are_masked_and_error_lines_are_picked():
    log = "\n".join(
        [
            "main: server is listening",
            "srv  params: error: the request exceeds the available context size",
            f"auth failed for Bearer {SECRET}",
            "slot release: done",
        ]
    )
    assert recent_errors(log) == [
        "srv  params: error: the request exceeds the available context size",
        f"auth failed for Bearer {MASKED}",
    ]
    assert mask_text("whsec_abcdefghij1234") == MASKED


class Host(App[None]):
    def __init__(self, client: CorralClient) -> None:
        super().__init__()
        self.client = client
        self.live = LiveState()


@pytest.fixture
def name(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"detail-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{name}").remove(force=True)


@pytest_asyncio.fixture
async def deployed(
    fleet_daemon: CorralDaemon, llama_server_image: str, tmp_path: Path, name: str
) -> AsyncIterator[CorralClient]:
    client = CorralClient(fleet_daemon.socket_path)
    model = tmp_path / "models" / "tiny-llama.gguf"  # where fleet_daemon put it
    await client.deploy(
        health_timeout_s=90,
        name=name,
        model_path=str(model),
        image=llama_server_image,
        ctx_size=512,
        extra_args=["--api-key", SECRET],  # llama-server's own key: /health stays open, so it deploys
    )
    yield client
    with contextlib.suppress(CorralError):
        await client.remove_deployment(name)
    await client.aclose()


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_the_detail_route_answers_a_containers_command_environment_and_health_with_secrets_masked(
    deployed: CorralClient, name: str, llama_server_image: str
) -> None:
    detail = await deployed.deployment_detail(name)
    assert mismatches(detail, DeploymentDetailView) == []  # exactly its contract's fields and types
    assert detail["kind"] == "container"
    assert detail["managed"]
    assert detail["image"] == llama_server_image
    assert detail["state"] == "running"
    assert detail["command"][-2:] == ["--api-key", MASKED]
    assert detail["environment"]["LLAMA_ARG_ALIAS"] == name
    assert detail["spec"] is not None
    assert detail["spec"]["extra_args"] == ["--api-key", MASKED]
    assert detail["exit_code"] is None
    assert SECRET not in str(detail)

    with pytest.raises(CorralError) as missing:
        await deployed.deployment_detail("no-such-deployment")
    assert missing.value.status == 404

    app = Host(deployed)
    async with app.run_test(size=(120, 60)) as pilot:
        await app.push_screen(DeploymentDetailScreen(name))
        facts = app.screen.query_one("#detail-facts", Static)
        await wait_for_async(lambda: "launch command" in str(facts.render()), "the detail route", pause=pilot.pause)
        text = str(facts.render())
        assert "LLAMA_ARG_CTX_SIZE" in text
        assert llama_server_image in text
        assert SECRET not in text


@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_a_systemd_deployments_detail_is_its_units_command_and_environment_masked(
    systemd_fleet: FleetManager, tiny_model: Path, llama_server_binary: Path
) -> None:
    fields = {"name": "native", "kind": "systemd", "model_path": str(tiny_model), "gpus": "none", "port": free_port(),
              "ctx_size": 512, "extra_args": ["--api-key", SECRET], "load": {"mode": "on-demand"}}  # fmt: skip
    await systemd_fleet.deploy(fields, 60, {"binary": str(llama_server_binary)}, start=False)
    assert await systemd_fleet.inspect("native") is None  # no container to inspect
    record = systemd_fleet.systemd_deployment("native")
    assert record is not None

    detail = systemd_detail(record.spec, record.binary, "")
    assert mismatches(detail, DeploymentDetailView) == []
    assert detail["command"][0] == str(llama_server_binary)
    assert detail["command"][-2:] == ["--api-key", MASKED]
    assert detail["environment"]["CUDA_VISIBLE_DEVICES"] == ""  # CPU only: CUDA sees no device
    assert SECRET not in str(detail)
