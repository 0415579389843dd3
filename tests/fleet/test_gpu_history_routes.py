"""corral-core keeps the history from its start, so a console that opens later sees the past: GET /gpus/history
and GET /providers/history, downsampled to the window asked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fleet.test_gpus import H100
from tests.testbed import CorralDaemon, write_devices
from tests.testbed.waiting import wait_for


def latest(daemon: CorralDaemon, path: str, pick: Any) -> Any:
    """The newest non-empty bucket of the series `pick` takes from the answer (one-second buckets)."""
    answer = daemon.admin_call("GET", f"{path}?minutes=1&points=60").json()
    present = [value for value in pick(answer) if value is not None]
    return present[-1] if present else None


@pytest.mark.nvml_stub
def test_gpu_history_follows_the_readings_and_answers_the_window_asked(nvml_stub, tmp_path):
    devices = write_devices(tmp_path / "gpus.json", [H100])
    env = nvml_stub.environment(devices)
    daemon = CorralDaemon(tmp_path / "corral", extra_env=env, extra_args=("--gpu-interval", "0.2")).start()
    try:

        def util() -> Any:
            return latest(daemon, "/gpus/history", lambda answer: answer["devices"][0]["utilization_percent"])

        wait_for(lambda: util() == 87, "the sampled utilisation in the history")
        write_devices(devices, [{**H100, "utilization_gpu": 12, "temperature": 70}])
        wait_for(lambda: util() == 12, "the new utilisation in the newest bucket")
        hour = daemon.admin_call("GET", "/gpus/history?minutes=60&points=30").json()
        refused = [daemon.admin_call("GET", f"/gpus/history?{query}") for query in ("minutes=61", "points=0", "x=1")]
    finally:
        daemon.stop()

    assert (hour["minutes"], hour["points"], hour["step_s"], hour["interval_s"]) == (60, 30, 120.0, 0.2)
    series = hour["devices"][0]
    assert series["name"] == H100["name"]
    assert len(series["utilization_percent"]) == 30
    assert series["utilization_percent"][:-1] == [None] * 29, "nothing before corral-core started"
    assert 12 < series["utilization_percent"][-1] < 87, "the last two minutes mix both readings"
    assert series["memory_used_bytes"][-1] == H100["memory_used"]
    assert series["power_draw_watts"][-1] == H100["power_usage_mw"] / 1000
    assert [response.status_code for response in refused] == [400, 400, 400]
    assert refused[0].json()["error"]["message"] == "minutes: '61' must be a whole number from 1 to 60"


@pytest.mark.llama_server
def test_provider_history_counts_the_requests_and_tokens_each_second(tmp_path, shared_llama_server):
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--gpu-interval", "0.2")).start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        key = daemon.create_key("app")

        def rps() -> Any:
            # Empty until the first tick after the provider was added has seen it.
            return latest(
                daemon, "/providers/history", lambda a: a["providers"][0]["requests_per_s"] if a["providers"] else []
            )

        wait_for(lambda: rps() == 0, "an idle provider's zero rate")
        with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=60) as http:
            for _ in range(3):
                body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
                assert http.post("/v1/chat/completions", json=body).status_code == 200

        def minute() -> Any:
            return daemon.admin_call("GET", "/providers/history?minutes=1&points=1").json()

        wait_for(lambda: (minute()["providers"][0]["requests_per_s"][0] or 0) > 0, "a tick after the requests")
        answer = minute()
    finally:
        daemon.stop()

    (series,) = answer["providers"]
    assert series["name"] == "local"
    # One bucket: the mean over the last minute's samples, 3 requests spread over its 60 s at most.
    assert series["requests_per_s"][0] > 0
    assert series["tokens_per_s"][0] > 0
