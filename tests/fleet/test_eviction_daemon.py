"""Eviction by measured GPU memory, through corral-core: real containers with GPU device requests on the testbed's
GPU engine, and the NVML stub counting each live llama-server's memory on GPU 0 (tests/testbed/gpu_corral.py)."""

from __future__ import annotations

import socket
import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest

from gateway_core.fleet.units import GiB, MiB
from tests.testbed.gpu_corral import GpuCorral
from tests.testbed.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.llama_server, pytest.mark.nvml_stub]

# Each model uses 3 GiB while it runs; the GPU has room for one of them and the 512 MiB margin, not two.
MODEL_BYTES = 3 * GiB
GPU_BYTES = 3 * GiB + 768 * MiB


def admin(corral: GpuCorral, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = corral.daemon.admin_call(method, path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def states(corral: GpuCorral) -> dict[str, str]:
    return {view["name"]: view["state"] for view in admin(corral, "GET", "/fleet/on-demand")}


def chat(corral: GpuCorral, key: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return httpx.post(
        corral.daemon.base_url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
    )


def decisions(corral: GpuCorral) -> list[str]:
    return [
        line.split("on-demand: ", 1)[1] for line in corral.daemon.log_tail(500).splitlines() if "on-demand: " in line
    ]


@pytest.fixture
def two_models(gpu_corral, tiny_model):
    """On-demand deployments A and B, each measured at 3 GiB, both cold, on a GPU that holds only one. Their names
    are unique: the stub counts every process on the machine whose environment names the deployment."""
    suffix = uuid.uuid4().hex[:6]
    a, b = f"a{suffix}", f"b{suffix}"
    # Streams waiting for a load get a keep-alive comment every 0.5 s (5 s by default).
    corral = gpu_corral(
        memory_total=GPU_BYTES, measured={a: MODEL_BYTES, b: MODEL_BYTES}, extra_args=("--load-keepalive", "0.5")
    )
    for name in (a, b):
        # The tiny model's whole context, so a stream can be long enough to fill the socket buffers (SlowReader).
        body = corral.deploy_body(name, tiny_model, ctx_size=2048, load={"mode": "on-demand"})
        admin(corral, "POST", "/fleet/deployments", body, status=201)
        wait_for(lambda n=name: admin(corral, "GET", f"/fleet/on-demand/{n}")["measured_memory_bytes"], "its memory")
        admin(corral, "POST", f"/fleet/deployments/{name}/unload")
    corral.wait_memory_used(0)
    return corral, corral.daemon.create_key("app"), a, b


def test_a_request_for_a_starts_a_and_then_a_request_for_b_stops_a_and_starts_b(two_models):
    corral, key, a, b = two_models

    first = chat(corral, key, a)
    after_a = states(corral)
    second = chat(corral, key, b)

    assert first.status_code == 200, first.text
    assert after_a == {a: "warm", b: "cold"}
    assert second.status_code == 200, second.text
    assert states(corral) == {a: "cold", b: "warm"}
    made = decisions(corral)
    stop = next(line for line in reversed(made) if line.startswith(f"stop {a}:"))
    assert f"to make room for '{b}' on GPU 0" in stop
    assert made.index(stop) < max(i for i, line in enumerate(made) if line.startswith(f"start {b}:"))


def test_a_pinned_model_is_never_stopped_and_the_refusal_names_what_holds_the_memory(two_models):
    corral, key, a, b = two_models
    admin(corral, "PATCH", f"/fleet/deployments/{a}/policy", {"pin": True})
    assert chat(corral, key, a).status_code == 200

    refused = chat(corral, key, b)

    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "insufficient_gpu_memory"
    assert f"{a} (pinned) 3.00 GiB" in error["message"], error["message"]
    assert "corral fleet unload" in error["message"]
    assert states(corral) == {a: "warm", b: "cold"}


def test_a_model_that_can_never_fit_gets_a_503_naming_what_holds_the_memory(two_models):
    corral, key, a, _ = two_models
    corral.set_gpu(memory_used=3 * GiB)  # something outside the fleet holds the memory
    corral.wait_memory_used(3 * GiB)

    refused = chat(corral, key, a)

    assert refused.status_code == 503
    message = refused.json()["error"]["message"]
    assert "needs 3.00 GiB on GPU 0" in message, message
    assert "memory no listed process accounts for 3.00 GiB" in message
    assert states(corral)[a] == "cold"


class SlowReader:
    """A streamed request whose client reads only its first bytes, so its answer stays in flight in corral-core
    (the relay waits for the client to read) until it is closed."""

    def __init__(self, corral: GpuCorral, key: str, model: str) -> None:
        body = orjson.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2000,
                "stream": True,
                "ignore_eos": True,
                "n_probs": 50,  # big frames (kilobytes a token), so the socket buffers fill
            }
        )
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", corral.daemon.port))
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: corral\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body)
        self.sock.recv(1024)  # its headers have come: the request holds its slot

    def close(self) -> None:
        self.sock.close()


def test_a_request_still_in_flight_to_a_holds_a_until_it_ends(two_models):
    corral, key, a, b = two_models
    assert chat(corral, key, a).status_code == 200
    reader = SlowReader(corral, key, a)
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(chat(corral, key, b)))
    waiting.start()
    try:
        wait_for(
            lambda: f"waiting for requests on {a}" in admin(corral, "GET", f"/fleet/on-demand/{b}")["reason"],
            "b's load to wait for a's request",
        )
        held = states(corral)
    finally:
        reader.close()
    waiting.join(timeout=120)

    assert held == {a: "warm", b: "loading"}, "a is not stopped while its request is in flight"
    assert answers[0].status_code == 200, answers[0].text
    assert states(corral) == {a: "cold", b: "warm"}


def test_a_stream_waiting_for_its_model_to_load_gets_keep_alive_comments_then_its_answer(two_models):
    corral, key, a, b = two_models
    assert chat(corral, key, a).status_code == 200
    reader = SlowReader(corral, key, a)  # b's load waits for this request to end
    body = {"model": b, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    lines: list[str] = []
    try:
        with httpx.stream(
            "POST",
            corral.daemon.base_url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
        ) as answer:
            status = answer.status_code
            for line in answer.iter_lines():
                lines.append(line)
                if line.startswith(": corral: loading model") and len(lines) >= 2:
                    reader.close()  # a's request ends: b's load goes on
    finally:
        reader.close()

    assert status == 200
    comments = [line for line in lines if line.startswith(":")]
    assert comments[0] == f": corral: loading model '{b}'"
    assert len(comments) >= 2
    data = [line for line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    assert any('"choices"' in line for line in data), data
    assert not any('"error"' in line for line in data), data
    assert states(corral) == {a: "cold", b: "warm"}


def test_what_a_model_was_measured_using_outlives_a_restart_of_corral_core(two_models):
    corral, _, a, _b = two_models  # both ran, were measured at 3 GiB, and were stopped

    corral.daemon.stop()
    corral.daemon.start()

    wait_for(lambda: a in states(corral), "the deployments to be read again")
    view = admin(corral, "GET", f"/fleet/on-demand/{a}")
    assert view["state"] == "cold"
    assert view["measured_memory_bytes"] == MODEL_BYTES, "its next start is judged by what it used, not the estimate"


def test_a_client_that_leaves_while_its_model_loads_is_ended_and_the_load_goes_on(two_models):
    corral, key, a, b = two_models
    assert chat(corral, key, a).status_code == 200
    reader = SlowReader(corral, key, a)  # b's load waits for this request to end
    body = {"model": b, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    try:
        with httpx.stream(
            "POST",
            corral.daemon.base_url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
        ) as answer:
            first = next(answer.iter_lines())  # a keep-alive comment: then the client leaves
        wait_for(lambda: not [r for r in admin(corral, "GET", "/requests") if r["model"] == b], "it to be ended")
    finally:
        reader.close()

    assert first.startswith(": corral: loading model")
    wait_for(lambda: states(corral) == {a: "cold", b: "warm"}, "b's load to go on without its client")
