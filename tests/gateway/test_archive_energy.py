"""GPU time and energy per request, end to end: a real corral-core sampling the NVML stub's power values, a real
llama-server provider placed on GPU 0, and the rows the archive writes for its requests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fleet.test_gpus import H100
from tests.gateway.test_archive_end_to_end import entry
from tests.testbed import CorralDaemon, write_devices

pytestmark = [pytest.mark.llama_server, pytest.mark.nvml_stub]

WATTS = H100["power_usage_mw"] / 1000
BODY = {"messages": [{"role": "user", "content": "Count."}], "max_tokens": 300, "temperature": 0, "ignore_eos": True}


def test_a_request_on_a_gpu_provider_records_its_gpu_seconds_and_the_joules_of_the_stubs_power_draw(
    nvml_stub, tmp_path, llama_servers
):
    devices = write_devices(tmp_path / "gpus.json", [H100])
    daemon = CorralDaemon(
        tmp_path / "corral", extra_env=nvml_stub.environment(devices), extra_args=("--gpu-interval", "0.05")
    ).start()
    try:
        on_gpu, elsewhere = llama_servers(2)
        daemon.add_provider("on-gpu", on_gpu.base_url, gpus=[0], models={"gpu-model": "tiny"})
        daemon.add_provider("elsewhere", elsewhere.base_url, models={"cpu-model": "tiny"})
        key = daemon.create_key("app")
        rows: dict[str, dict[str, Any]] = {}
        for model in ("gpu-model", "cpu-model"):
            answer = httpx.post(
                daemon.base_url + "/v1/chat/completions",
                json={"model": model, **BODY},
                headers={"authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            rows[model] = entry(daemon, answer.headers["x-request-id"])
    finally:
        daemon.stop()

    measured = rows["gpu-model"]
    assert measured["provider"] == "on-gpu"
    assert 0 < measured["gpu_seconds"] <= measured["latency_s"] + 0.005  # ends a moment after the latency is read
    assert measured["gpu_seconds"] >= 0.5 * measured["latency_s"], "alone on the GPU, it had all of it while it ran"
    # Alone on a GPU drawing a constant power, its energy is that power over its GPU time.
    assert measured["energy_joules"] == pytest.approx(WATTS * measured["gpu_seconds"], rel=0.02)
    unmeasured = rows["cpu-model"]
    assert (unmeasured["gpu_seconds"], unmeasured["energy_joules"]) == (None, None), "none, not zero"
