"""The VRAM estimate is exact arithmetic on the model's shape; placement picks GPUs by their free memory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gateway_core.fleet.models import GgufModel, read_model
from gateway_core.fleet.units import GiB, MiB
from gateway_core.fleet.vram import GpuFree, Placement, compute_margin, estimate, place
from tests.testbed.tiny_model import write_tiny_model

# Llama 3 8B Instruct at Q4_K_M: 32 layers, 32 heads sharing 8 KV heads of 128, trained on 8192 tokens.
LLAMA3_8B_Q4_K_M = GgufModel(
    path=Path("/models/Meta-Llama-3-8B-Instruct-Q4_K_M.gguf"),
    name="Meta-Llama-3-8B-Instruct-Q4_K_M",
    architecture="llama",
    parameter_count=8_030_261_248,
    quantization="Q4_K_M",
    context_length=8192,
    layers=32,
    embedding_length=4096,
    head_count=32,
    head_count_kv=8,
    key_length=128,
    value_length=128,
    file_size=4_920_734_720,
    parts=(Path("/models/Meta-Llama-3-8B-Instruct-Q4_K_M.gguf"),),
)
# The same shape with 30 GiB of weights, too big for the GPUs in the partial-offload tests.
BIG = dataclasses.replace(LLAMA3_8B_Q4_K_M, name="big", file_size=30 * GiB)


def gpu(index: int, free_bytes: int) -> GpuFree:
    return GpuFree(index=index, name=f"NVIDIA RTX 4090 #{index}", free_bytes=free_bytes, total_bytes=24 * GiB)


# --- estimate -------------------------------------------------------------------------------------------------


def test_kv_cache_is_key_plus_value_length_times_kv_heads_times_ctx_times_bytes_times_layers():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192)

    assert result.kv_cache == (128 + 128) * 8 * 8192 * 2 * 32 == 1_073_741_824
    assert result.weights == 4_920_734_720
    assert result.compute == 512 * MiB  # 5 % of the weights + 256 MiB is below the 512 MiB floor
    assert result.total == 4_920_734_720 + 1_073_741_824 + 536_870_912 == 6_531_347_456
    assert result.warnings == ()


def test_parallel_slots_share_the_ctx_size_and_do_not_multiply_the_kv_cache():
    single = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192)
    shared = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192, parallel=4)

    assert shared.kv_cache == single.kv_cache
    assert shared.total == single.total
    assert "the 8192 ctx is shared by 4 parallel slots (2048 each)" in shared.explain()


@pytest.mark.parametrize(
    ("kv_cache_type", "kv_cache"),
    [
        ("f32", 2_147_483_648),
        ("f16", 1_073_741_824),
        ("bf16", 1_073_741_824),
        ("q8_0", 570_425_344),  # 34 bytes per block of 32
        ("q4_0", 301_989_888),  # 18 bytes per block of 32
    ],
)
def test_kv_cache_type_sets_the_bytes_per_element(kv_cache_type, kv_cache):
    assert estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192, kv_cache_type=kv_cache_type).kv_cache == kv_cache


def test_compute_margin_is_five_percent_of_weights_plus_256_mib_and_at_least_512_mib():
    assert compute_margin(0) == 512 * MiB
    assert compute_margin(4 * GiB) == 512 * MiB
    assert compute_margin(40 * GiB) == 2 * GiB + 256 * MiB


def test_explanation_shows_each_part_with_its_arithmetic():
    lines = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192).explain()

    assert lines == [
        "weights 4.58 GiB (file size)",
        "KV cache 1.00 GiB = (128+128) \N{MULTIPLICATION SIGN} 8 KV heads \N{MULTIPLICATION SIGN} 8192 ctx"
        " \N{MULTIPLICATION SIGN} 2 B \N{MULTIPLICATION SIGN} 32 layers (f16)",
        "compute 512.00 MiB (margin: 5 % of weights + 256 MiB, at least 512 MiB)",
        "total 6.08 GiB",
    ]


def test_quantized_kv_cache_explains_its_fractional_bytes_per_element():
    lines = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192, kv_cache_type="q8_0").explain()

    assert "\N{MULTIPLICATION SIGN} 1.0625 B \N{MULTIPLICATION SIGN}" in lines[1]
    assert lines[1].endswith("(q8_0)")


def test_ctx_size_beyond_the_trained_context_is_a_warning_naming_both_numbers():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=32768)

    assert result.kv_cache == 4 * GiB
    assert len(result.warnings) == 1
    assert "32768" in result.warnings[0]
    assert "8192" in result.warnings[0]


def test_ctx_size_zero_means_the_trained_context_as_in_llama_server():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=0)

    assert result.ctx_size == 8192
    assert result.kv_cache == 1_073_741_824


def test_a_model_whose_header_lacks_its_shape_gets_no_kv_cache_and_a_warning():
    shapeless = dataclasses.replace(LLAMA3_8B_Q4_K_M, layers=None, context_length=None)

    result = estimate(shapeless, ctx_size=4096)

    assert result.kv_cache == 0
    assert result.total == result.weights + result.compute
    assert "KV cache not counted" in result.explain()[1]
    assert result.warnings == (
        "the KV cache is not counted: the model's header lacks its layer count or attention shape",
    )


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"ctx_size": 4096, "kv_cache_type": "q3_k"}, "unknown KV cache type 'q3_k'"),
        ({"ctx_size": 4096, "parallel": 0}, "parallel must be at least 1"),
        ({"ctx_size": -1}, "ctx_size must not be negative"),
    ],
)
def test_impossible_arguments_raise_value_error(arguments, complaint):
    with pytest.raises(ValueError, match=complaint):
        estimate(LLAMA3_8B_Q4_K_M, **arguments)


def test_estimate_of_a_real_gguf_read_by_the_catalog(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_model(path)

    result = estimate(read_model(path), ctx_size=2048)

    assert result.kv_cache == (16 + 16) * 4 * 2048 * 2 * 2 == 1 * MiB
    assert result.weights == path.stat().st_size
    assert result.total == path.stat().st_size + 1 * MiB + 512 * MiB


def test_estimate_to_dict_is_plain_json_with_numbers_and_explanation():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=16384, parallel=2, kv_cache_type="q8_0")

    as_dict = result.to_dict()

    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["total"] == result.total == as_dict["weights"] + as_dict["kv_cache"] + as_dict["compute"]
    assert as_dict["explanation"] == result.explain()
    assert as_dict["warnings"] == list(result.warnings)
    assert (as_dict["ctx_size"], as_dict["parallel"], as_dict["kv_cache_type"]) == (16384, 2, "q8_0")


# --- placement ------------------------------------------------------------------------------------------------


def test_a_model_that_fits_on_one_gpu_goes_to_the_gpu_with_the_most_free_memory():
    need = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192).total

    placement = place(
        estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192),
        [gpu(0, need // 2), gpu(1, need + 1 * GiB), gpu(2, need + 3 * GiB), gpu(3, need + 2 * GiB)],
    )

    assert placement == Placement(fits=True, gpus=(2,), n_gpu_layers=None, reason=placement.reason)
    assert placement.reason.startswith("fits on GPU 2 (NVIDIA RTX 4090 #2): needs 6.08 GiB")


def test_a_gpu_with_exactly_the_memory_needed_fits():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192)

    placement = place(result, [gpu(0, result.total - 1), gpu(1, result.total)])

    assert (placement.fits, placement.gpus) == (True, (1,))


def test_a_model_too_big_for_any_one_gpu_is_split_across_the_fewest_gpus_largest_first():
    result = estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192)
    need = result.total

    placement = place(
        result, [gpu(0, need * 4 // 10), gpu(1, need * 7 // 10), gpu(2, need * 5 // 10), gpu(3, need // 10)]
    )

    assert (placement.fits, placement.gpus, placement.n_gpu_layers) == (True, (1, 2), None)
    assert "split across GPUs 1, 2" in placement.reason


def test_a_model_too_big_for_all_gpus_together_suggests_a_partial_offload_layer_count():
    result = estimate(BIG, ctx_size=8192)  # 30 GiB weights + 1 GiB KV cache + 1.75 GiB compute over 32 layers

    placement = place(result, [gpu(0, 8 * GiB), gpu(1, 8 * GiB), gpu(2, 0)])

    assert result.total == 30 * GiB + 1 * GiB + (30 * GiB * 5 // 100 + 256 * MiB)
    # (16 GiB free - 1.75 GiB compute) / (31 GiB / 32 layers) = 14.7 layers
    assert placement == Placement(fits=False, gpus=(0, 1), n_gpu_layers=14, reason=placement.reason)
    assert "16.75 GiB short" in placement.reason
    assert "--n-gpu-layers 14" in placement.reason


def test_when_not_even_one_layer_fits_the_model_runs_on_the_cpu():
    placement = place(estimate(BIG, ctx_size=8192), [gpu(0, 1 * GiB)])

    assert placement == Placement(fits=False, gpus=(), n_gpu_layers=0, reason=placement.reason)
    assert "only run on the CPU" in placement.reason


def test_a_model_with_unknown_layers_that_does_not_fit_suggests_no_layer_count():
    shapeless = dataclasses.replace(BIG, layers=None)

    placement = place(estimate(shapeless, ctx_size=8192), [gpu(0, 8 * GiB)])

    assert (placement.fits, placement.gpus, placement.n_gpu_layers) == (False, (0,), None)
    assert "layer count is unknown" in placement.reason


def test_with_no_gpus_at_all_the_model_runs_on_the_cpu():
    placement = place(estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192), [])

    assert (placement.fits, placement.gpus, placement.n_gpu_layers) == (False, (), 0)
    assert "run on the CPU" in placement.reason
    assert "6.08 GiB" in placement.reason


def test_placement_and_gpu_to_dict_are_plain_json():
    placement = place(estimate(LLAMA3_8B_Q4_K_M, ctx_size=8192), [gpu(0, 24 * GiB)])

    assert placement.to_dict() == {"fits": True, "gpus": [0], "n_gpu_layers": None, "reason": placement.reason}
    assert json.loads(json.dumps(gpu(3, GiB).to_dict())) == {
        "index": 3,
        "name": "NVIDIA RTX 4090 #3",
        "free_bytes": GiB,
        "total_bytes": 24 * GiB,
    }
