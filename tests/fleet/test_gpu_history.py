"""An hour of GPU readings and provider rates in fixed rings, downsampled to the window asked."""

from __future__ import annotations

from gateway_core.fleet.gpu_history import GpuHistory, ProviderRates, SeriesRing, ring_capacity
from gateway_core.fleet.gpus import GpuDevice, GpuSnapshot

START = 1_800_000_000.0
GIB = 1024**3


def device(util: int | None, *, used: int = 4 * GIB, index: int = 0, uuid: str = "GPU-a") -> GpuDevice:
    return GpuDevice(
        index=index,
        uuid=uuid,
        name="NVIDIA H100",
        memory_total_bytes=80 * GIB,
        memory_used_bytes=used,
        utilization_percent=util,
        temperature_c=50,
        power_draw_watts=300.5,
    )


def snapshot(*devices: GpuDevice) -> GpuSnapshot:
    return GpuSnapshot(state="ok", devices=devices)


def test_an_hour_at_one_sample_a_second_fits_and_older_samples_give_way_to_newer():
    history = GpuHistory(interval_s=1.0)
    assert history.capacity == 3601
    for second in range(5000):  # 83 minutes: the first 23 are overwritten
        history.record(snapshot(device(second % 100)), START + second)
    end = START + 4999 + 1

    hour = history.view(60, 60, end)["devices"][0]["utilization_percent"]
    assert all(value is not None for value in hour), "every minute of the last hour has its samples"
    # The first minute of the window is seconds 1400..1459 of the run: (1400..1459) % 100 = 0..59.
    assert hour[0] == sum(range(60)) / 60
    assert history.view(60, 60, end + 3600)["devices"][0]["utilization_percent"] == [None] * 60


def test_a_window_answers_bucket_means_oldest_first_and_none_where_nothing_was_sampled():
    history = GpuHistory(interval_s=1.0)
    for second, util in ((0, 10), (1, 30), (5, 80)):
        history.record(snapshot(device(util, used=GIB * (second + 1))), START + second)

    view = history.view(1, 6, START + 60)  # six 10 s buckets
    series = view["devices"][0]
    assert view["step_s"] == 10.0
    assert series["utilization_percent"] == [40.0, None, None, None, None, None]  # (10 + 30 + 80) / 3
    assert series["memory_used_bytes"][0] == round((1 + 2 + 6) / 3 * GIB)
    assert series["power_draw_watts"][0] == 300.5
    assert series["temperature_c"][0] == 50
    assert series["memory_total_bytes"] == 80 * GIB


def test_a_reading_the_gpu_does_not_support_is_left_out_of_the_mean():
    history = GpuHistory(interval_s=1.0)
    history.record(snapshot(device(None)), START)
    history.record(snapshot(device(60)), START + 1)
    history.record(snapshot(device(None)), START + 2)

    assert history.view(1, 1, START + 60)["devices"][0]["utilization_percent"] == [60.0]
    assert history.view(1, 60, START + 60)["devices"][0]["utilization_percent"][0] is None


def test_several_gpus_are_answered_in_index_order_and_an_unavailable_sample_keeps_nothing():
    history = GpuHistory(interval_s=1.0)
    history.record(snapshot(device(1, index=1, uuid="GPU-b"), device(2, index=0, uuid="GPU-a")), START)
    history.record(GpuSnapshot(state="unavailable", reason="no driver"), START + 1)

    devices = history.view(1, 1, START + 60)["devices"]
    assert [(d["index"], d["uuid"], d["utilization_percent"]) for d in devices] == [
        (0, "GPU-a", [2.0]),
        (1, "GPU-b", [1.0]),
    ]


def test_a_ring_costs_24_bytes_a_sample_for_four_metrics_so_an_hour_of_8_gpus_is_675_kib():
    ring = SeriesRing(("a", "b", "c", "d"), ring_capacity(1.0))
    per_sample = ring._times.itemsize + sum(values.itemsize for values in ring._values.values())
    assert per_sample == 24
    assert per_sample * 3600 * 8 == 691_200


def test_the_ring_is_bounded_however_fast_the_sampler_runs():
    assert ring_capacity(0.001) == 36_000
    assert ring_capacity(0.5) == 7201


def test_provider_rates_are_requests_and_tokens_per_second_between_samples():
    rates = ProviderRates(interval_s=1.0)
    rates.record([("local", 0, 0)], START)
    rates.record([("local", 4, 100)], START + 2)  # 2 req/s, 50 tok/s
    rates.record([("local", 4, 100), ("cloud", 7, 7)], START + 3)  # local idle; cloud's first sample

    view = rates.view(1, 60, START + 4)
    by_name = {series["name"]: series for series in view["providers"]}
    assert list(by_name) == ["cloud", "local"]
    assert by_name["cloud"]["requests_per_s"] == [None] * 60, "a rate needs two samples"
    # The 60 buckets of the last minute end at START+4: the samples at +2 and +3 are in the last two.
    assert by_name["local"]["requests_per_s"][-3:] == [None, 2.0, 0.0]
    assert by_name["local"]["tokens_per_s"][-2:] == [50.0, 0.0]


def test_a_removed_provider_is_forgotten():
    rates = ProviderRates(interval_s=1.0)
    rates.record([("old", 0, 0), ("kept", 0, 0)], START)
    rates.forget(["kept"])
    assert [series["name"] for series in rates.view(1, 1, START + 1)["providers"]] == ["kept"]


def test_a_full_hour_of_8_gpus_answers_every_bucket_of_every_gpu():
    history = GpuHistory(interval_s=1.0)
    for second in range(3600):
        history.record(snapshot(*(device(50, index=i, uuid=f"GPU-{i}") for i in range(8))), START + second)
    view = history.view(60, 120, START + 3600)
    assert [d["index"] for d in view["devices"]] == list(range(8))
    assert all(d["utilization_percent"] == [50.0] * 120 for d in view["devices"])


def test_extra_samples_between_ticks_do_not_shorten_the_hour():
    history, rates = GpuHistory(interval_s=1.0), ProviderRates(interval_s=1.0)
    for tick in range(3):
        for offset in (0.0, 0.1, 0.2):  # an on-demand load samples between the sampler's ticks
            history.record(snapshot(device(10 * tick + int(10 * offset))), START + tick + offset)
            rates.record([("local", 10 * tick + int(10 * offset), 0)], START + tick + offset)

    assert history.view(1, 60, START + 60)["devices"][0]["utilization_percent"][:3] == [0.0, 10.0, 20.0]
    assert rates.view(1, 60, START + 60)["providers"][0]["requests_per_s"][:3] == [None, 10.0, 10.0]
