"""The CLI and the console write each kind of value one way: durations, latencies, sizes, key states, plans."""

from __future__ import annotations

import pytest

from console.format import (
    GiB,
    ago,
    count,
    dash,
    duration,
    format_bytes,
    gib,
    key_state,
    latency,
    percent,
    plan_headline,
    plan_lines,
    plural,
    process_memory,
    until,
)

NOW = 1_760_000_000.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3.0, "0s"),
        (0.4, "0s"),
        (59.9, "59s"),
        (65, "1m05s"),
        (3599, "59m59s"),
        (3723, "1h02m"),
        (86400 * 3 + 3600 * 4 + 59, "3d04h"),
    ],
)
def test_a_duration_is_compact_in_whole_units(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.84, "840ms"), (1.6, "1.6s"), (59.4, "59.4s"), (75, "1m15s")],
)
def test_a_latency_keeps_its_precision_below_a_minute(seconds, text):
    assert latency(seconds) == text


def test_ago_and_until_read_from_now_and_say_never_for_no_time():
    assert ago(NOW - 12, NOW) == "12s ago"
    assert ago(None, NOW) == "never"
    assert until(NOW + 86400 * 10, NOW) == "in 10d00h"
    assert until(NOW - 65, NOW) == "1m05s ago", "a time that has passed is said as past"
    assert until(None, NOW) == "never"


def test_counts_stay_short():
    assert [count(v) for v in (None, 950, 1234, 15_000, 3_400_000, 2.5)] == ["-", "950", "1.2k", "15k", "3.4M", "2.5"]


def test_missing_values_show_as_a_dash_and_zero_does_not():
    assert [dash(v) for v in (None, "", 0, "x")] == ["-", "-", "0", "x"]
    assert percent(None) == "-"
    assert percent(0.205) == "20%"
    assert [plural(n, "key") for n in (0, 1, 2)] == ["0 keys", "1 key", "2 keys"]


def test_sizes_in_gib_mib_and_binary_units():
    assert gib(9.6 * GiB) == "9.6"
    assert gib(None) == "-"
    assert process_memory(9.1 * GiB) == "9.1G"
    assert process_memory(512 * 1024**2) == "512M"
    assert format_bytes(4 * GiB + GiB // 2) == "4.50 GiB"


def key_view(**fields):
    return {"revoked": False, "expired": False, "expires_at": None, **fields}


def test_a_key_is_active_revoked_or_expired_and_revoked_wins():
    assert key_state(key_view(), NOW) == "active"
    assert key_state(key_view(expires_at=NOW + 60), NOW) == "active"
    assert key_state(key_view(revoked=True, expired=True), NOW) == "revoked"
    assert key_state(key_view(expired=True), NOW) == "expired"


def test_a_key_whose_view_predates_its_expiry_is_expired_once_the_time_passes():
    view = key_view(expires_at=NOW + 60)  # taken while the key was still good

    assert key_state(view, NOW + 61) == "expired"


PLAN = {
    "spec": {"name": "gpu0", "model_path": "/models/tiny.gguf", "port": 8081, "gpus": [0, 1], "image": "img:1"},
    "estimate": {"explanation": ["weights 4.58 GiB (file size)", "total 6.08 GiB"]},
    "placement": {"fits": True, "gpus": [0], "reason": "fits on GPU 0 (18.0 GiB free)"},
    "warnings": ["ignored here"],
}


def test_a_plan_reads_as_a_headline_then_the_estimate_and_the_placement_indented():
    assert plan_headline(PLAN["spec"]) == "gpu0: tiny.gguf on port 8081, gpus 0,1, image img:1"
    assert plan_lines(PLAN) == [
        "  weights 4.58 GiB (file size)",
        "  total 6.08 GiB",
        "  placement: fits on GPU 0 (18.0 GiB free)",
    ]


def test_a_cpu_plan_says_gpus_none():
    assert plan_headline({**PLAN["spec"], "gpus": None}).startswith("gpu0: tiny.gguf on port 8081, gpus none,")
