"""The views the daemon builds field by field are the JSON it sent before they were typed (gateway_core/contracts).

Each producer used to be a `dataclasses.asdict` or a pydantic dump; these pin that the typed versions put the
same fields with the same values on the wire.
"""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from pydantic import SecretStr

from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.gpus import GpuDevice, GpuProcess, GpuSnapshot
from gateway_core.fleet.inventory import ContainerEvent, ContainerInfo
from gateway_core.providers.config import ProviderConfig


def on_the_wire(value: object) -> object:
    return orjson.loads(orjson.dumps(value))


@pytest.mark.parametrize("gpus", ["all", "0,2", None])
def test_a_deployment_specs_view_is_its_json_dump(gpus):
    spec = DeploymentSpec(name="tiny", model_path="/models/tiny.gguf", port=8081, gpus=gpus, extra_args=("--jinja",))

    assert spec.view() == spec.model_dump(mode="json")
    assert list(spec.view()) == list(spec.model_dump(mode="json"))


def test_a_providers_public_view_is_every_configured_field_but_the_key_with_a_hint():
    config = ProviderConfig(
        name="remote", type="openai", base_url="https://api.example.com/v1", api_key=SecretStr("sk-secret-1234")
    )

    view = config.public_view()

    assert view == {**config.model_dump(exclude={"api_key"}), "api_key_hint": "…1234"}
    assert "api_key" not in view


def test_a_gpu_snapshot_is_its_dataclass_fields_with_unsupported_readings_sorted():
    device = GpuDevice(
        index=0,
        uuid="GPU-0",
        name="NVIDIA L4",
        memory_total_bytes=24 << 30,
        processes=(GpuProcess(pid=42, name="llama-server", used_memory_bytes=1 << 30),),
        unsupported=frozenset({"fan", "power_limit"}),
    )
    snapshot = GpuSnapshot(state="ok", driver_version="550.54", devices=(device,))

    expected = dataclasses.asdict(snapshot)
    expected["devices"][0]["unsupported"] = ["fan", "power_limit"]
    assert on_the_wire(snapshot.to_dict()) == on_the_wire(expected)
    assert GpuSnapshot(state="unavailable", reason="no driver").to_dict()["devices"] == []


def test_containers_and_their_events_are_their_dataclass_fields():
    info = ContainerInfo(
        name="tiny",
        container="corral-tiny",
        id="0123456789ab",
        managed=True,
        state="running",
        health="healthy",
        image="ghcr.io/ggml-org/llama.cpp:server",
        model="/models/tiny.gguf",
        gpus="none",
        port=8081,
        started_at="2026-01-01T00:00:00+00:00",
        uptime_s=1.5,
        exit_code=None,
        spec={"name": "tiny", "gpus": None},
    )
    event = ContainerEvent(action="die", name="tiny", managed=True, time=1.0, container="corral-tiny", detail="137")

    assert info.to_dict() == dataclasses.asdict(info)
    assert event.to_dict() == dataclasses.asdict(event)
