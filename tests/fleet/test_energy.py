"""GPU-seconds and joules per request: each GPU's sampled power draw, shared among the requests running on it."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway_core.fleet.energy import EnergyMeter
from gateway_core.fleet.gpus import GpuDevice, GpuSnapshot
from gateway_core.fleet.manager import FleetManager
from gateway_core.providers.config import ProviderConfig
from tests.fakes.clock import FakeClock
from tests.fleet.test_gpus import H100, L4_NO_SENSORS
from tests.testbed import write_devices

# provider -> the GPU indices it runs on; absent: a remote or CPU provider
PLACEMENTS: dict[str, tuple[int, ...]] = {"gpu0": (0,), "gpu1": (1,), "also-gpu0": (0,), "both": (0, 1)}


def snapshot(*watts: float | None) -> GpuSnapshot:
    """A sample of GPUs 0, 1, ... drawing these watts (None: the device has no power sensor)."""
    return GpuSnapshot(
        state="ok",
        devices=tuple(
            GpuDevice(
                index=index,
                uuid=f"GPU-{index}",
                name="NVIDIA H100 80GB HBM3",
                power_draw_watts=draw,
                unsupported=frozenset() if draw is not None else frozenset({"power_draw"}),
            )
            for index, draw in enumerate(watts)
        ),
    )


class Box:
    """A meter over the placements above, its clock, and the samples fed to it."""

    def __init__(self, placements: dict[str, tuple[int, ...]] | None = None) -> None:
        self.clock = FakeClock()
        self.placements = PLACEMENTS if placements is None else placements
        self.asked: list[str] = []
        self.meter = EnergyMeter(self._gpus_of, self.clock.monotonic)

    def _gpus_of(self, provider: str) -> tuple[int, ...] | None:
        self.asked.append(provider)
        return self.placements.get(provider)

    def sample(self, *watts: float | None) -> None:
        self.meter.on_sample(snapshot(*watts))

    def run_for(self, seconds: float, *watts: float | None) -> None:
        """Time passes, then the GPUs are sampled."""
        self.clock.advance(seconds)
        self.sample(*watts)


@pytest.fixture
def box() -> Box:
    box = Box()
    box.sample(200.0, 200.0)
    return box


# -- one GPU ------------------------------------------------------------------------------------------


def test_a_request_alone_for_3_s_at_200_w_gets_3_gpu_seconds_and_600_joules(box: Box):
    box.meter.begin("r1", "gpu0")
    for _ in range(3):
        box.run_for(1.0, 200.0, 200.0)

    gpu_seconds, joules = box.meter.end("r1")

    assert gpu_seconds == pytest.approx(3.0)
    assert joules == pytest.approx(600.0)


def test_two_concurrent_requests_split_the_gpu_time_and_energy(box: Box):
    box.meter.begin("r1", "gpu0")
    box.meter.begin("r2", "gpu0")
    box.run_for(2.0, 300.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((1.0, 300.0))
    assert box.meter.end("r2") == pytest.approx((1.0, 300.0))


def test_a_request_beginning_mid_interval_gets_only_its_overlap(box: Box):
    box.meter.begin("early", "gpu0")
    box.clock.advance(0.6)
    box.meter.begin("late", "gpu0")
    box.run_for(0.4, 250.0, 0.0)

    assert box.meter.end("late") == pytest.approx((0.2, 50.0)), "0.4 s shared by two, at 250 W"
    assert box.meter.end("early") == pytest.approx((0.8, 200.0)), "0.6 s alone, then 0.4 s shared"


def test_each_moment_is_divided_among_the_requests_busy_at_that_moment(box: Box):
    box.meter.begin("a", "gpu0")
    box.clock.advance(0.2)
    box.meter.begin("b", "gpu0")
    box.meter.begin("c", "gpu0")
    box.clock.advance(0.3)
    b = box.meter.end("b")
    box.run_for(0.5, 100.0, 0.0)

    # b ended before the sample, so it is charged the last reading (200 W); a and c get the new one (100 W).
    assert b == pytest.approx((0.1, 20.0))
    assert box.meter.end("c") == pytest.approx((0.1 + 0.25, 10.0 + 25.0))
    assert box.meter.end("a") == pytest.approx((0.2 + 0.1 + 0.25, 20.0 + 10.0 + 25.0))


def test_requests_to_two_providers_on_one_gpu_share_that_gpu(box: Box):
    box.meter.begin("r1", "gpu0")
    box.meter.begin("r2", "also-gpu0")
    box.run_for(1.0, 400.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((0.5, 200.0))
    assert box.meter.end("r2") == pytest.approx((0.5, 200.0))


# -- the power reading between samples ---------------------------------------------------------------


def test_an_interval_is_charged_at_the_power_read_at_its_end(box: Box):
    box.meter.begin("r1", "gpu0")
    box.run_for(1.0, 300.0, 0.0)  # NVML's reading is the average over the second that just ended
    box.run_for(1.0, 100.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((2.0, 300.0 + 100.0))


def test_the_time_after_the_last_sample_is_charged_at_the_last_reading(box: Box):
    box.meter.begin("r1", "gpu0")
    box.run_for(1.0, 300.0, 0.0)
    box.clock.advance(0.5)

    assert box.meter.end("r1") == pytest.approx((1.5, 300.0 + 150.0))


def test_a_request_that_ends_before_any_sample_of_its_gpu_has_gpu_seconds_and_no_joules():
    box = Box()
    box.meter.begin("r1", "gpu0")
    box.clock.advance(0.5)

    assert box.meter.end("r1") == (pytest.approx(0.5), None)


def test_a_failed_sample_leaves_the_interval_to_the_next_good_reading(box: Box):
    box.meter.begin("r1", "gpu0")
    box.clock.advance(1.0)
    box.meter.on_sample(GpuSnapshot(state="unavailable", reason="NVML failed while reading devices: Unknown Error"))
    box.run_for(1.0, 150.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((2.0, 300.0))


# -- GPUs, providers and failover ---------------------------------------------------------------------


def test_a_deployment_on_two_gpus_accumulates_from_both(box: Box):
    box.meter.begin("r1", "both")
    box.meter.begin("r2", "gpu1")
    box.run_for(2.0, 300.0, 100.0)

    assert box.meter.end("r1") == pytest.approx((2.0 + 1.0, 600.0 + 100.0))
    assert box.meter.end("r2") == pytest.approx((1.0, 100.0))


def test_a_gpu_without_a_power_reading_gives_gpu_seconds_and_no_joules(box: Box):
    box.sample(200.0, None)
    box.meter.begin("r1", "gpu1")
    box.meter.begin("r2", "both")
    box.run_for(1.0, 200.0, None)

    assert box.meter.end("r1") == (pytest.approx(0.5), None)
    assert box.meter.end("r2") == (pytest.approx(1.5), None), "a partial figure would pass for the whole"


def test_a_request_to_a_provider_on_no_gpu_here_gets_none_not_zeros(box: Box):
    box.meter.begin("r1", "openai-remote")
    box.run_for(1.0, 200.0, 200.0)

    assert box.meter.end("r1") == (None, None)
    assert box.meter.end("never-begun") == (None, None)


def test_a_request_failing_over_keeps_its_time_on_the_first_provider(box: Box):
    box.meter.begin("r1", "gpu0")
    box.clock.advance(0.5)
    box.meter.begin("r1", "openai-remote")
    box.run_for(0.5, 400.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((0.5, 100.0)), "0.5 s on GPU 0 at the last reading, 200 W"


def test_a_request_failing_over_to_another_gpu_is_charged_on_each_for_its_time_there(box: Box):
    box.meter.begin("r1", "gpu0")
    box.meter.begin("other", "gpu0")
    box.clock.advance(0.5)
    box.meter.begin("r1", "gpu1")
    box.run_for(0.5, 400.0, 100.0)

    # r1 left GPU 0 before the sample, so its stretch there is charged at the last reading (200 W).
    assert box.meter.end("r1") == pytest.approx((0.25 + 0.5, 50.0 + 50.0))
    assert box.meter.end("other") == pytest.approx((0.25 + 0.5, 100.0 + 200.0)), "alone on GPU 0 once r1 left"


def test_a_request_failing_over_from_a_remote_provider_to_a_gpu_is_measured_from_then(box: Box):
    box.meter.begin("r1", "openai-remote")
    box.clock.advance(0.5)
    box.meter.begin("r1", "gpu0")
    box.run_for(0.5, 200.0, 0.0)

    assert box.meter.end("r1") == pytest.approx((0.5, 100.0))


def test_where_a_provider_runs_is_asked_once_until_forgotten(box: Box):
    for request in range(3):
        box.meter.begin(f"r{request}", "openai-remote")
        box.meter.end(f"r{request}")
    box.placements = {**PLACEMENTS, "openai-remote": (1,)}  # say, re-added as a server on GPU 1
    box.meter.begin("before", "openai-remote")
    box.meter.forget("openai-remote")
    box.meter.begin("after", "openai-remote")
    box.run_for(1.0, 200.0, 200.0)

    assert box.asked == ["openai-remote", "openai-remote"]
    assert box.meter.end("before") == (None, None)
    assert box.meter.end("after") == pytest.approx((1.0, 200.0))


def test_a_request_on_no_gpu_here_reads_no_clock_and_leaves_nothing_behind(box: Box):
    reads: list[float] = []

    def monotonic() -> float:
        reads.append(box.clock.monotonic())
        return reads[-1]

    meter = EnergyMeter(box.placements.get, monotonic)
    for request in range(1000):
        meter.begin(f"r{request}", "openai-remote")
        assert meter.end(f"r{request}") == (None, None)

    assert reads == []
    assert meter.running == 0


# -- conservation -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Stay:
    """A request's time on one provider: [start, stop), then (when failing over) the next provider."""

    request: str
    provider: str
    start: float
    stop: float


def random_traffic(seed: int, seconds: int) -> list[Stay]:
    """Requests of random lengths on random providers (some remote), some failing over once."""
    rng = random.Random(seed)
    providers = [*PLACEMENTS, "openai-remote"]
    stays = []
    for number in range(rng.randint(5, 40)):
        start = rng.uniform(0.0, seconds - 0.2)
        stop = rng.uniform(start, min(seconds - 0.01, start + rng.choice([0.05, 0.5, 3.0])))
        switch = rng.uniform(start, stop) if rng.random() < 0.25 else None
        first, second = rng.choice(providers), rng.choice(providers)
        if switch is None:
            stays.append(Stay(f"r{number}", first, start, stop))
        else:
            stays += [Stay(f"r{number}", first, start, switch), Stay(f"r{number}", second, switch, stop)]
    return stays


def replay(stays: list[Stay], watts: Callable[[int, int], float], seconds: int) -> dict[str, tuple[Any, Any]]:
    """Feed the traffic to a meter sampling two GPUs every second (reading `watts(gpu, second)`)."""
    box = Box()
    origin = box.clock.monotonic()
    events = [(stay.start, 1, stay.request, stay.provider) for stay in stays]
    events += [(stay.stop, 0, stay.request, "") for stay in stays if stay is last_stay_of(stays, stay.request)]
    events += [(float(second), 2, "", "") for second in range(seconds + 1)]
    answers = {}
    for at, kind, request, provider in sorted(events):  # at one instant: ends, then begins, then the sample
        box.clock.advance(max(0.0, origin + at - box.clock.monotonic()))
        if kind == 0:
            answers[request] = box.meter.end(request)
        elif kind == 1:
            box.meter.begin(request, provider)
        else:
            box.sample(watts(0, int(at)), watts(1, int(at)))
    return answers


def last_stay_of(stays: list[Stay], request: str) -> Stay:
    return [stay for stay in stays if stay.request == request][-1]


def busy_seconds(stays: list[Stay], gpu: int, since: float, until: float) -> float:
    """How long at least one request was in flight on `gpu` in [since, until): the union of the stays."""
    spans = sorted(
        (max(s.start, since), min(s.stop, until))
        for s in stays
        if gpu in PLACEMENTS.get(s.provider, ()) and s.start < until and s.stop > since
    )
    busy, reach = 0.0, since
    for start, stop in spans:
        if stop > reach:
            busy += stop - max(start, reach)
            reach = stop
    return busy


SECONDS = 12


@pytest.mark.parametrize("seed", range(12))
def test_the_gpu_seconds_of_all_requests_add_up_to_each_gpus_busy_time(seed: int):
    stays = random_traffic(seed, SECONDS)

    answers = replay(stays, lambda gpu, second: 100.0 + 50 * ((gpu + second) % 5), SECONDS)

    busy = sum(busy_seconds(stays, gpu, 0.0, SECONDS) for gpu in (0, 1))
    assert sum(gpu_s for gpu_s, _ in answers.values() if gpu_s is not None) == pytest.approx(busy, abs=1e-9)
    remote = {s.request for s in stays} - {s.request for s in stays if s.provider in PLACEMENTS}
    assert all(answers[request] == (None, None) for request in remote)


@pytest.mark.parametrize("seed", range(12))
def test_the_energy_of_all_requests_adds_up_to_each_gpus_energy_while_busy(seed: int):
    stays = random_traffic(seed, SECONDS)
    draw = {0: 310.0, 1: 95.0}

    answers = replay(stays, lambda gpu, second: draw[gpu], SECONDS)

    energy = sum(draw[gpu] * busy_seconds(stays, gpu, 0.0, SECONDS) for gpu in (0, 1))
    assert sum(joules for _, joules in answers.values() if joules is not None) == pytest.approx(energy, abs=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_with_a_changing_draw_the_energy_adds_up_to_within_the_last_stretch_charged_at_the_older_reading(
    seed: int,
):
    stays = random_traffic(seed, SECONDS)
    draws = random.Random(seed).choices([80.0, 150.0, 400.0, 700.0], k=2 * (SECONDS + 1))

    def watts(gpu: int, second: int) -> float:
        return draws[gpu * (SECONDS + 1) + second]

    answers = replay(stays, watts, SECONDS)

    # Each second is charged at the reading that ends it, while it was busy ...
    energy = sum(
        watts(gpu, second) * busy_seconds(stays, gpu, second - 1, second)
        for gpu in (0, 1)
        for second in range(1, SECONDS + 1)
    )
    # ... except the stretch of a stay that ends between samples, which is charged at the reading before.
    bound = sum(
        abs(watts(gpu, int(s.stop) + 1) - watts(gpu, int(s.stop))) * (s.stop - max(s.start, int(s.stop)))
        for s in stays
        for gpu in PLACEMENTS.get(s.provider, ())
    )
    measured = sum(joules for _, joules in answers.values() if joules is not None)
    assert abs(measured - energy) <= bound + 1e-6


# -- through the real NVML path ------------------------------------------------------------------------

# The parent writes each sample's devices file; the child moves it into place and samples (LD_LIBRARY_PATH
# is read when a process starts, so the stub is loaded in a fresh interpreter).
SAMPLES_SCRIPT = """
import dataclasses, json, os, sys
from gateway_core.fleet.gpus import NvmlReader
config, readings = sys.argv[1], sys.argv[2:]
reader = NvmlReader()
for reading in readings:
    os.replace(reading, config)
    print(json.dumps(dataclasses.asdict(reader.sample()), default=sorted), flush=True)
reader.close()
"""


def sampled_through_nvml(env: dict[str, str], config: Path, readings: list[Path]) -> list[GpuSnapshot]:
    result = subprocess.run(
        [sys.executable, "-c", SAMPLES_SCRIPT, str(config), *map(str, readings)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [_snapshot_from(json.loads(line)) for line in result.stdout.splitlines()]


def _snapshot_from(data: dict[str, Any]) -> GpuSnapshot:
    devices = tuple(
        GpuDevice(**{**device, "processes": (), "unsupported": frozenset(device["unsupported"])})
        for device in data["devices"]
    )
    return GpuSnapshot(**{**data, "devices": devices})


@pytest.mark.nvml_stub
def test_power_read_through_nvml_from_the_stub_is_shared_among_the_requests(nvml_stub, tmp_path: Path):
    config = write_devices(tmp_path / "gpus.json", [{**H100, "power_usage_mw": 100_000}, L4_NO_SENSORS])
    readings = [
        write_devices(tmp_path / f"sample-{number}.json", [{**H100, "power_usage_mw": milliwatts}, L4_NO_SENSORS])
        for number, milliwatts in enumerate([200_000, 200_000, 500_000, 350_000])
    ]

    first, second, third, fourth = sampled_through_nvml(nvml_stub.environment(config), config, readings)

    assert [s.devices[0].power_draw_watts for s in (first, second, third, fourth)] == [200.0, 200.0, 500.0, 350.0]
    box = Box({"h100": (0,), "l4": (1,)})
    box.meter.on_sample(first)
    box.meter.begin("alone-then-shared", "h100")
    box.meter.begin("on-the-l4", "l4")
    box.clock.advance(1.0)
    box.meter.on_sample(second)
    box.meter.begin("joins", "h100")
    box.clock.advance(1.0)
    box.meter.on_sample(third)
    box.clock.advance(1.0)
    box.meter.on_sample(fourth)
    box.clock.advance(0.5)

    assert box.meter.end("joins") == pytest.approx((0.5 + 0.5 + 0.25, 250.0 + 175.0 + 87.5))
    assert box.meter.end("alone-then-shared") == pytest.approx((1.0 + 0.5 + 0.5 + 0.25, 200.0 + 250.0 + 175.0 + 87.5))
    assert box.meter.end("on-the-l4") == (pytest.approx(3.5), None), "the L4 has no power sensor"


# -- where a provider's GPUs come from ----------------------------------------------------------------


async def _noop(*_: object) -> None:
    return None


def fleet(devices: int = 2, **options: Any) -> FleetManager:
    gpus = snapshot(*[300.0] * devices) if devices else GpuSnapshot(state="unavailable", reason="no NVIDIA driver")
    return FleetManager(
        gpus=lambda: gpus,
        register=_noop,
        unregister=_noop,
        publish=lambda *_: None,
        on_deployment_changed=_noop,
        **options,
    )


def container(name: str, gpus: str, *, managed: bool = True) -> dict[str, Any]:
    return {"name": name, "managed": managed, "gpus": gpus, "spec": None, "state": "running"}


def test_a_container_deployment_runs_on_the_gpus_of_its_label():
    manager = fleet()
    manager.latest = {
        "engine": {"state": "ok", "reason": ""},
        "deployments": [  # only the fields gpus_of reads
            container("qwen", "1"),
            container("llama", "0,1"),
            container("everywhere", "all"),
            container("cpu", "none"),
            container("by-hand", "0", managed=False),
        ],
    }

    assert manager.gpus_of("qwen") == (1,)
    assert manager.gpus_of("llama") == (0, 1)
    assert manager.gpus_of("everywhere") == (0, 1), "all: every device in the latest GPU sample"
    assert manager.gpus_of("cpu") is None
    assert manager.gpus_of("by-hand") is None, "not ours: its provider says where it runs (ProviderConfig.gpus)"
    assert manager.gpus_of("openai") is None


def test_all_gpus_on_a_box_whose_gpus_cannot_be_read_is_none():
    manager = fleet(devices=0)
    manager.latest = {"engine": {"state": "ok", "reason": ""}, "deployments": [container("x", "all")]}

    assert manager.gpus_of("x") is None


@pytest.mark.asyncio
async def test_a_systemd_deployment_runs_on_the_gpus_of_its_spec(monkeypatch, tiny_model: Path):
    class InstalledUnit:  # no systemd here: the unit is "installed" and its server "healthy"
        def __init__(self, **_: object) -> None:
            pass

        def install(self, *_: object, **__: object) -> list[str]:
            return []

    monkeypatch.setattr("gateway_core.fleet.manager._wait_http_healthy", _noop)
    manager = fleet(systemd=InstalledUnit)

    fields = {"model_path": str(tiny_model), "name": "native", "kind": "systemd", "gpus": "1"}
    await manager.deploy(fields, 1.0, systemd={"binary": "/opt/llama.cpp/llama-server"})

    assert manager.gpus_of("native") == (1,)


def test_an_operators_own_server_is_configured_with_its_gpus_and_shows_them():
    config = ProviderConfig(name="mine", type="llama-server", base_url="http://127.0.0.1:8080", gpus=[0, 2])

    assert config.public_view()["gpus"] == [0, 2]
    assert ProviderConfig.model_validate(config.stored()).gpus == [0, 2]
    legacy = {"name": "old", "type": "llama-server", "base_url": "http://127.0.0.1:8080"}
    assert ProviderConfig.model_validate(legacy).public_view()["gpus"] is None


@pytest.mark.parametrize(
    ("gpus", "says"),
    [([], "leave gpus out"), ([0, -1], "0 or more"), ([1, 1], "once")],
)
def test_a_providers_gpus_must_be_distinct_gpu_indices(gpus: list[int], says: str):
    with pytest.raises(ValidationError, match=says) as raised:
        ProviderConfig(name="mine", type="llama-server", base_url="http://127.0.0.1:8080", gpus=gpus)

    assert raised.value.errors()[0]["loc"] == ("gpus",)


@pytest.mark.nvml_stub
def test_the_stub_reads_its_file_again_at_each_sample_not_only_at_init(nvml_stub, tmp_path: Path):
    config = write_devices(tmp_path / "gpus.json", [H100])
    readings = [write_devices(tmp_path / f"{n}.json", [{**H100, "power_usage_mw": n * 1000}]) for n in (10, 20)]
    for reading in readings:
        os.utime(reading, (0, 0))  # the same size and time stamp: only the contents differ

    samples = sampled_through_nvml(nvml_stub.environment(config), config, readings)

    assert [s.devices[0].power_draw_watts for s in samples] == [10.0, 20.0]
