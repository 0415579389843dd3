"""How much GPU memory a GGUF model needs under llama-server, and which GPUs to put it on.

The estimate is deliberately simple, so that every number can be explained to a user:

- weights: the file size (llama.cpp keeps tensors in memory as they are stored);
- KV cache: (key_length + value_length) * KV heads * ctx_size * bytes per element * layers.
  llama-server's `--ctx-size` is the total over all `--parallel` slots, so `parallel` does not multiply it;
- compute: a margin for compute buffers, the CUDA context and fragmentation:
  5 % of the weights + 256 MiB, and at least 512 MiB. It is a heuristic, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from gateway_core.contracts.fleet_views import PlacementView, VramEstimateView

from .models import GgufError, GgufModel, read_model

if TYPE_CHECKING:
    from .deployment import DeploymentSpec
from .units import MiB, format_bytes

TIMES = "\N{MULTIPLICATION SIGN}"
COMPUTE_SHARE_PERCENT = 5
COMPUTE_BASE = 256 * MiB
COMPUTE_MINIMUM = 512 * MiB
# The cache types llama-server accepts for --cache-type-k/-v, as (elements per block, bytes per block).
KV_CACHE_TYPES: dict[str, tuple[int, int]] = {
    name: GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
    for name in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
}


@dataclass(frozen=True, slots=True)
class VramEstimate:
    model: str
    ctx_size: int
    parallel: int
    kv_cache_type: str
    weights: int
    kv_cache: int
    compute: int
    layers: int | None
    key_length: int | None
    value_length: int | None
    head_count_kv: int | None
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute

    def explain(self) -> list[str]:
        lines = [f"weights {format_bytes(self.weights)} (file size)"]
        if self.key_length and self.value_length and self.head_count_kv and self.layers:
            block_size, type_size = KV_CACHE_TYPES[self.kv_cache_type]
            lines.append(
                f"KV cache {format_bytes(self.kv_cache)} = ({self.key_length}+{self.value_length})"
                f" {TIMES} {self.head_count_kv} KV heads {TIMES} {self.ctx_size} ctx"
                f" {TIMES} {type_size / block_size:g} B {TIMES} {self.layers} layers ({self.kv_cache_type})"
            )
        else:
            lines.append("KV cache not counted: the model's header does not give its shape")
        if self.parallel > 1:
            lines.append(
                f"the {self.ctx_size} ctx is shared by {self.parallel} parallel slots"
                f" ({self.ctx_size // self.parallel} each)"
            )
        lines.append(
            f"compute {format_bytes(self.compute)} (margin: {COMPUTE_SHARE_PERCENT} % of weights"
            f" + {COMPUTE_BASE // MiB} MiB, at least {COMPUTE_MINIMUM // MiB} MiB)"
        )
        lines.append(f"total {format_bytes(self.total)}")
        return lines

    def to_dict(self) -> VramEstimateView:
        return {
            "model": self.model,
            "ctx_size": self.ctx_size,
            "parallel": self.parallel,
            "kv_cache_type": self.kv_cache_type,
            "layers": self.layers,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "total": self.total,
            "explanation": self.explain(),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class GpuFree:
    index: int
    name: str
    free_bytes: int
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "free_bytes": self.free_bytes, "total_bytes": self.total_bytes}


@dataclass(frozen=True, slots=True)
class Placement:
    fits: bool
    gpus: tuple[int, ...]
    n_gpu_layers: int | None  # None: offload every layer
    reason: str

    def to_dict(self) -> PlacementView:
        return {"fits": self.fits, "gpus": list(self.gpus), "n_gpu_layers": self.n_gpu_layers, "reason": self.reason}


def estimate(model: GgufModel, ctx_size: int, parallel: int = 1, kv_cache_type: str = "f16") -> VramEstimate:
    """The memory `model` needs with `--ctx-size ctx_size` (0: the trained context, as llama-server reads it)."""
    if kv_cache_type not in KV_CACHE_TYPES:
        raise ValueError(f"unknown KV cache type {kv_cache_type!r}; expected one of {', '.join(KV_CACHE_TYPES)}")
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")
    if ctx_size < 0:
        raise ValueError(f"ctx_size must not be negative, got {ctx_size}")
    warnings: list[str] = []
    if ctx_size == 0:
        if model.context_length is None:
            raise ValueError(f"ctx_size 0 means the trained context, but {model.name} does not give one")
        ctx_size = model.context_length
    elif model.context_length is not None and ctx_size > model.context_length:
        warnings.append(
            f"ctx_size {ctx_size} is larger than the trained context of {model.context_length}:"
            " quality drops beyond it unless RoPE scaling is configured"
        )
    key_length, value_length = model.key_length, model.value_length
    head_count_kv, layers = model.head_count_kv, model.layers
    kv_cache = 0
    if key_length and value_length and head_count_kv and layers:
        block_size, type_size = KV_CACHE_TYPES[kv_cache_type]
        elements = (key_length + value_length) * head_count_kv * ctx_size * layers
        kv_cache = elements * type_size // block_size
    else:
        warnings.append("the KV cache is not counted: the model's header lacks its layer count or attention shape")
    return VramEstimate(
        model=model.name,
        ctx_size=ctx_size,
        parallel=parallel,
        kv_cache_type=kv_cache_type,
        weights=model.file_size,
        kv_cache=kv_cache,
        compute=compute_margin(model.file_size),
        layers=model.layers,
        key_length=model.key_length,
        value_length=model.value_length,
        head_count_kv=model.head_count_kv,
        warnings=tuple(warnings),
    )


def compute_margin(weights: int) -> int:
    return max(COMPUTE_MINIMUM, weights * COMPUTE_SHARE_PERCENT // 100 + COMPUTE_BASE)


def place(estimate: VramEstimate, gpus: list[GpuFree]) -> Placement:
    """Suggest GPUs for the model: the one with the most free memory, else the fewest that fit together."""
    need = estimate.total
    if not gpus:
        return Placement(
            fits=False,
            gpus=(),
            n_gpu_layers=0,
            reason=f"no GPU found (no NVIDIA driver?): llama-server will run on the CPU, using about"
            f" {format_bytes(need)} of RAM",
        )
    by_free = sorted((gpu for gpu in gpus if gpu.free_bytes > 0), key=lambda gpu: (-gpu.free_bytes, gpu.index))
    if by_free and by_free[0].free_bytes >= need:
        best = by_free[0]
        return Placement(
            fits=True,
            gpus=(best.index,),
            n_gpu_layers=None,
            reason=f"fits on GPU {best.index} ({best.name}): needs {format_bytes(need)},"
            f" {format_bytes(best.free_bytes)} free",
        )
    chosen: list[GpuFree] = []
    free = 0
    for gpu in by_free:
        chosen.append(gpu)
        free += gpu.free_bytes
        if free >= need:
            # The compute margin is counted once; each extra GPU also holds a small buffer of its own.
            return Placement(
                fits=True,
                gpus=tuple(sorted(g.index for g in chosen)),
                n_gpu_layers=None,
                reason=f"too big for one GPU (at most {format_bytes(by_free[0].free_bytes)} free on one);"
                f" split across GPUs {_list_indices(chosen)}: needs {format_bytes(need)},"
                f" {format_bytes(free)} free together",
            )
    return _partial_offload(estimate, by_free, free)


def _partial_offload(estimate: VramEstimate, usable: list[GpuFree], free: int) -> Placement:
    need = estimate.total
    short = (
        f"does not fit: needs {format_bytes(need)}, {format_bytes(free)} free on all GPUs together"
        f" ({format_bytes(need - free)} short)"
    )
    indices = tuple(sorted(gpu.index for gpu in usable))
    if estimate.layers is None:
        reason = f"{short}; a partial offload (fewer --n-gpu-layers) may fit, but the layer count is unknown"
        return Placement(fits=False, gpus=indices, n_gpu_layers=None, reason=reason)
    # The compute margin stays on the GPU whatever the layer count; each layer brings its share of weights and KV.
    per_layer = (estimate.weights + estimate.kv_cache) / estimate.layers
    layers = max(0, min(estimate.layers - 1, int((free - estimate.compute) // per_layer)))
    if layers == 0:
        reason = f"{short}; not even one layer fits, so it can only run on the CPU"
        return Placement(fits=False, gpus=(), n_gpu_layers=0, reason=reason)
    return Placement(
        fits=False,
        gpus=indices,
        n_gpu_layers=layers,
        reason=f"{short}; a partial offload of about {layers} of {estimate.layers} layers"
        f" (--n-gpu-layers {layers}) fits, with the rest on the CPU (slower)",
    )


def _list_indices(gpus: list[GpuFree]) -> str:
    return ", ".join(str(index) for index in sorted(gpu.index for gpu in gpus))


def estimate_need(spec: DeploymentSpec) -> int | None:
    """The GPU memory a deployment's model needs by the estimate above; None for a CPU-only deployment, a
    router (its models come and go), or a model file that cannot be read here."""
    if spec.gpus is None or spec.router is not None:
        return None
    try:
        model = read_model(Path(spec.model_path))
    except (GgufError, OSError):
        return None
    return estimate(model, spec.ctx_size, spec.parallel).total
