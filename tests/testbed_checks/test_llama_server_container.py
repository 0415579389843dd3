"""llama-server also runs in a real container, from the offline-built testbed image, on the host network."""

from __future__ import annotations

import contextlib

import httpx
import openai
import pytest

from tests.testbed import free_port
from tests.testbed.waiting import WaitTimedOut, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]

PROMPT = [{"role": "user", "content": "Say something."}]
GENERATION = {"max_tokens": 8, "temperature": 0, "extra_body": {"ignore_eos": True}}


def wait_healthy(base_url: str, container, timeout_s: float = 60.0) -> None:
    def healthy() -> bool:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"container exited: {container.logs(tail=20).decode(errors='replace')}")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(base_url + "/health", timeout=1.0).status_code == 200
        return False

    try:
        wait_for(healthy, "the container's llama-server /health", timeout_s, interval_s=0.1)
    except WaitTimedOut:
        pytest.fail(f"container not healthy in {timeout_s}s: {container.logs(tail=20).decode(errors='replace')}")


def test_containerised_llama_server_answers_like_the_native_one(
    llama_server_image, run_container, tiny_model, llama_servers
):
    port = free_port()
    container = run_container(
        llama_server_image,
        command=[
            "-m",
            f"/models/{tiny_model.name}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--alias",
            "tiny",
            "--threads",
            "1",
        ],
        volumes={str(tiny_model.parent): {"bind": "/models", "mode": "ro"}},
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, container)

    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)

    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8
    # Same binary, same model, temperature 0: the container must say exactly what the native process says.
    (native,) = llama_servers(1)
    native_client = openai.OpenAI(base_url=native.base_url + "/v1", api_key="unused", max_retries=0)
    native_reply = native_client.chat.completions.create(model="tiny", messages=PROMPT, **GENERATION)
    assert reply.choices[0].message.content == native_reply.choices[0].message.content
    assert reply.usage.prompt_tokens == native_reply.usage.prompt_tokens


def test_testbed_image_runs_llama_server_as_its_entrypoint(llama_server_image, docker_client):
    image = docker_client.images.get(llama_server_image)

    assert image.attrs["Config"]["Entrypoint"] == ["/app/llama-server"]
    output = docker_client.containers.run(
        llama_server_image, command=["--version"], network_mode="host", remove=True, stderr=True
    )
    assert b"version" in output.lower()
