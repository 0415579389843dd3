"""The gateway's Prometheus metrics, read back through the exposition text that GET /metrics serves."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway_core.metrics import GatewayMetrics

Labels = tuple[tuple[str, str], ...]


def series(metrics: GatewayMetrics, sample_name: str) -> dict[Labels, float]:
    """Every sample of that name in the rendered output, keyed by its sorted labels."""
    body, _ = metrics.render()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == sample_name
    }


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def finish(metrics: GatewayMetrics, model: str = "llama", provider: str = "gpu1", **overrides: object) -> None:
    fields: dict[str, object] = {
        "status": 200,
        "duration_s": 1.2,
        "ttft_s": 0.3,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "overhead_s": 0.0004,
    }
    metrics.request_finished(model, provider, **{**fields, **overrides})  # type: ignore[arg-type]


def test_finished_request_counts_tokens_by_kind():
    metrics = GatewayMetrics()
    finish(metrics, prompt_tokens=10, completion_tokens=20)
    finish(metrics, prompt_tokens=5, completion_tokens=0)

    assert series(metrics, "corral_tokens_total") == {
        labels(model="llama", provider="gpu1", kind="prompt"): 15.0,
        labels(model="llama", provider="gpu1", kind="completion"): 20.0,
    }


def test_finished_request_is_counted_by_model_provider_and_status():
    metrics = GatewayMetrics()
    finish(metrics, status=200)
    finish(metrics, status=200)
    finish(metrics, status="502")
    finish(metrics, model="qwen", provider="gpu2", status=429)

    assert series(metrics, "corral_requests_total") == {
        labels(model="llama", provider="gpu1", status="200"): 2.0,
        labels(model="llama", provider="gpu1", status="502"): 1.0,
        labels(model="qwen", provider="gpu2", status="429"): 1.0,
    }


def test_duration_is_observed_in_llm_sized_buckets():
    metrics = GatewayMetrics()
    finish(metrics, duration_s=1.2)
    finish(metrics, duration_s=90.0)

    buckets = series(metrics, "corral_request_duration_seconds_bucket")
    llama = {dict(key)["le"]: value for key, value in buckets.items()}
    assert (llama["0.005"], llama["1.0"], llama["2.5"], llama["60.0"], llama["120.0"], llama["+Inf"]) == (
        0.0,
        0.0,
        1.0,
        1.0,
        2.0,
        2.0,
    )
    assert series(metrics, "corral_request_duration_seconds_sum") == {labels(model="llama", provider="gpu1"): 91.2}


def test_ttft_is_observed_only_for_requests_that_have_one():
    metrics = GatewayMetrics()
    finish(metrics, ttft_s=0.3)
    finish(metrics, ttft_s=None)
    finish(metrics, model="embed", ttft_s=None)

    assert series(metrics, "corral_time_to_first_token_seconds_count") == {labels(model="llama", provider="gpu1"): 1.0}
    assert series(metrics, "corral_time_to_first_token_seconds_sum") == {labels(model="llama", provider="gpu1"): 0.3}


def test_gateway_overhead_has_fine_buckets_and_no_labels():
    metrics = GatewayMetrics()
    finish(metrics, overhead_s=0.00005)
    finish(metrics, overhead_s=0.0004)
    finish(metrics, overhead_s=0.2)

    bucket_series = series(metrics, "corral_gateway_overhead_seconds_bucket")
    buckets = {dict(key)["le"]: value for key, value in bucket_series.items()}
    assert buckets == {
        "0.0001": 1.0,
        "0.00025": 1.0,
        "0.0005": 2.0,
        "0.001": 2.0,
        "0.0025": 2.0,
        "0.005": 2.0,
        "0.01": 2.0,
        "0.025": 2.0,
        "0.05": 2.0,
        "0.1": 2.0,
        "+Inf": 3.0,
    }
    assert series(metrics, "corral_gateway_overhead_seconds_count") == {(): 3.0}


def test_in_flight_follows_the_deltas_per_provider():
    metrics = GatewayMetrics()
    metrics.in_flight("gpu1", 1)
    metrics.in_flight("gpu1", 1)
    metrics.in_flight("gpu2", 1)
    metrics.in_flight("gpu1", -1)

    assert series(metrics, "corral_requests_in_flight") == {labels(provider="gpu1"): 1.0, labels(provider="gpu2"): 1.0}


def test_provider_state_is_one_hot():
    metrics = GatewayMetrics()
    metrics.provider_state("gpu1", "loading")
    metrics.provider_state("gpu1", "ready")
    metrics.provider_state("gpu2", "circuit_open")

    assert series(metrics, "corral_provider_up") == {
        labels(provider="gpu1", state="ready"): 1.0,
        labels(provider="gpu1", state="loading"): 0.0,
        labels(provider="gpu1", state="down"): 0.0,
        labels(provider="gpu1", state="circuit_open"): 0.0,
        labels(provider="gpu2", state="ready"): 0.0,
        labels(provider="gpu2", state="loading"): 0.0,
        labels(provider="gpu2", state="down"): 0.0,
        labels(provider="gpu2", state="circuit_open"): 1.0,
    }


def test_unknown_provider_state_is_refused():
    metrics = GatewayMetrics()

    with pytest.raises(ValueError, match="unknown provider state 'sleeping'"):
        metrics.provider_state("gpu1", "sleeping")
    assert series(metrics, "corral_provider_up") == {}


def test_removed_provider_stops_being_exported_and_others_stay():
    metrics = GatewayMetrics()
    for provider in ("gpu1", "gpu2"):
        finish(metrics, provider=provider, status=200)
        finish(metrics, model="qwen", provider=provider, status=503, ttft_s=None)
        metrics.in_flight(provider, 1)
        metrics.provider_state(provider, "ready")

    metrics.remove_provider("gpu1")
    metrics.remove_provider("never-seen")

    for name in (
        "corral_requests_total",
        "corral_request_duration_seconds_count",
        "corral_time_to_first_token_seconds_count",
        "corral_tokens_total",
        "corral_requests_in_flight",
        "corral_provider_up",
    ):
        providers = {dict(key)["provider"] for key in series(metrics, name)}
        assert providers == {"gpu2"}, name
    assert series(metrics, "corral_gateway_overhead_seconds_count") == {(): 4.0}


def test_two_gateways_do_not_share_metrics():
    first, second = GatewayMetrics(), GatewayMetrics()
    finish(first)
    first.provider_state("gpu1", "down")

    assert series(first, "corral_requests_total") == {labels(model="llama", provider="gpu1", status="200"): 1.0}
    assert series(second, "corral_requests_total") == {}
    assert series(second, "corral_provider_up") == {}


def test_metrics_stay_out_of_the_global_registry():
    finish(GatewayMetrics())

    assert b"corral_" not in generate_latest(REGISTRY)


def test_render_gives_the_prometheus_text_format():
    body, content_type = GatewayMetrics().render()

    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE corral_request_duration_seconds histogram" in body
    assert b"# TYPE corral_provider_up gauge" in body
