"""What a llama-server deployment is, whatever runs it: a Docker container or a systemd service.

Containers, compose files and systemd units all render the same `DeploymentSpec`, and configure
llama-server through its `LLAMA_ARG_*` environment variables rather than a command line.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from gateway_core.contracts.fleet_views import DeploymentSpecView, RouterSpecView, VramEstimateView
from gateway_core.fleet.load_policy import LoadPolicy

DEFAULT_GPU_IMAGE = "ghcr.io/ggml-org/llama.cpp:server-cuda"
DEFAULT_CPU_IMAGE = "ghcr.io/ggml-org/llama.cpp:server"
CONTAINER_MODELS_DIR = "/models"
GPU_IMAGE_MARKERS = ("cuda", "rocm", "vulkan", "musa", "intel", "sycl")  # llama.cpp's GPU builds' tags


def preferred_image(images: list[str], gpus: bool) -> str | None:
    """Of the engine's llama-server images, the one a deployment should default to: llama.cpp's own image for
    the mode when it is there, else one built for the mode (a GPU build's tag names its backend), else any."""
    default = DEFAULT_GPU_IMAGE if gpus else DEFAULT_CPU_IMAGE
    if default in images:
        return default
    for_mode = [image for image in images if any(m in image.lower() for m in GPU_IMAGE_MARKERS) == gpus]
    candidates = for_mode or images
    return candidates[0] if candidates else None


CPU_CONTEXT = 4096  # llama-server's own default: on the CPU there is no VRAM fit to cap a long trained context
CONTEXT_STEP = 256
MIN_CONTEXT = 128  # DeploymentSpec.ctx_size's lower bound


def default_context(trained: int | None, estimate: VramEstimateView | None, free_bytes: int | None) -> int:
    """A deployment's default --ctx-size: the model's trained context, capped by what fits in `free_bytes` of GPU
    memory. The KV cache grows linearly with the context, so `estimate` (at any ctx_size) gives its cost per
    token and what the rest takes. On the CPU (`free_bytes` None), at most CPU_CONTEXT; with no trained context
    known, CPU_CONTEXT. When the weights leave no room for MIN_CONTEXT, as on the CPU: the model is only partly
    offloaded then, and the plan says so."""
    if not trained:
        return CPU_CONTEXT
    if free_bytes is None:
        return min(trained, CPU_CONTEXT)
    if estimate is None or estimate["ctx_size"] <= 0 or estimate["kv_cache"] <= 0:
        return trained
    per_token = estimate["kv_cache"] / estimate["ctx_size"]
    fits = int((free_bytes - (estimate["total"] - estimate["kv_cache"])) / per_token) // CONTEXT_STEP * CONTEXT_STEP
    return min(trained, fits) if fits >= MIN_CONTEXT else min(trained, CPU_CONTEXT)


DEPLOYMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

DeploymentKind = Literal["container", "systemd"]


class RouterSpec(BaseModel):
    """llama-server's router mode: every GGUF of the spec's model_path (a directory) is a model, loaded on use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models_max: int = Field(default=1, ge=0, le=256)  # --models-max: loaded at once (0: no limit)

    def view(self) -> RouterSpecView:
        return {"models_max": self.models_max}


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # also the public model name and the llama-server alias (a router's models keep their own names)
    kind: DeploymentKind = "container"
    model_path: str  # absolute host path of the .gguf (the first file of a split model); a router: its directory
    image: str = DEFAULT_GPU_IMAGE  # containers only
    gpus: Literal["all"] | tuple[int, ...] | None = "all"  # None: CPU only
    ctx_size: int = Field(default=4096, ge=128, le=1_048_576)
    n_gpu_layers: int = Field(default=999, ge=0)
    parallel: int = Field(default=1, ge=1, le=256)
    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    extra_args: tuple[str, ...] = ()
    load: LoadPolicy = LoadPolicy()  # always up, or on demand (fleet/on_demand.py)
    router: RouterSpec | None = None  # router mode: model_path is a directory of GGUFs

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not DEPLOYMENT_NAME.match(name):
            raise ValueError("use 1-63 lowercase letters, digits, '.', '_' or '-' (it names a container and a unit)")
        return name

    @field_validator("model_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not PurePosixPath(path).is_absolute():
            raise ValueError(f"{path!r} must be an absolute path")
        return path

    @field_validator("gpus", mode="before")
    @classmethod
    def _parse_gpus(cls, value: object) -> object:
        """Accept "all", "none", "0,1", [0, 1] or None."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("all", ""):
                return "all" if text else None
            if text in ("none", "cpu"):
                return None
            try:
                return tuple(int(part) for part in text.split(","))
            except ValueError as error:
                raise ValueError(f"{value!r} is not 'all', 'none' or GPU ids such as 0,1") from error
        if isinstance(value, list):
            return tuple(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _cpu_offloads_nothing(cls, data: object) -> object:
        """A CPU-only deployment offloads no layers; normalising it keeps every rendering lossless."""
        if isinstance(data, dict) and data.get("gpus", "all") in (None, "none", "cpu"):
            return {**data, "n_gpu_layers": 0}
        return data

    @model_validator(mode="after")
    def _router_serves_a_directory(self) -> DeploymentSpec:
        if self.router is not None and self.model_path.lower().endswith(".gguf"):
            raise ValueError(
                f"model_path: in router mode it is the directory of GGUFs to serve (--models-dir), not one "
                f"file ({self.model_path}); give its directory, or deploy the file without --router"
            )
        return self

    @property
    def model_file(self) -> str:
        """The GGUF's file name; a router's directory name."""
        return PurePosixPath(self.model_path).name

    @property
    def models_dir(self) -> str:
        """The host directory mounted read-only at /models: the GGUF's, or a router's own model_path."""
        if self.router is not None:
            return self.model_path
        return str(PurePosixPath(self.model_path).parent)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def view(self) -> DeploymentSpecView:
        """The spec as the admin API shows it: what `model_dump(mode="json")` gives, typed."""
        return {
            "name": self.name,
            "kind": self.kind,
            "model_path": self.model_path,
            "image": self.image,
            "gpus": list(self.gpus) if isinstance(self.gpus, tuple) else self.gpus,
            "ctx_size": self.ctx_size,
            "n_gpu_layers": self.n_gpu_layers,
            "parallel": self.parallel,
            "port": self.port,
            "host": self.host,
            "extra_args": list(self.extra_args),
            "load": self.load.view(),
            "router": self.router.view() if self.router is not None else None,
        }

    def llama_env(self, model_path: str | None = None) -> dict[str, str]:
        """llama-server's configuration as LLAMA_ARG_* variables; `model_path` as seen by the server. A router
        gets its directory and models-max instead of a model and an alias: each model is named by its file."""
        if self.router is not None:
            target = {
                "LLAMA_ARG_MODELS_DIR": model_path or self.model_path,
                "LLAMA_ARG_MODELS_MAX": str(self.router.models_max),
            }
        else:
            target = {"LLAMA_ARG_MODEL": model_path or self.model_path, "LLAMA_ARG_ALIAS": self.name}
        env = {
            **target,
            "LLAMA_ARG_CTX_SIZE": str(self.ctx_size),
            "LLAMA_ARG_N_GPU_LAYERS": str(self.n_gpu_layers if self.gpus is not None else 0),
            "LLAMA_ARG_N_PARALLEL": str(self.parallel),
            "LLAMA_ARG_HOST": self.host,
            "LLAMA_ARG_PORT": str(self.port),
        }
        return env

    def container_env(self) -> dict[str, str]:
        if self.router is not None:
            return self.llama_env(CONTAINER_MODELS_DIR)
        return self.llama_env(f"{CONTAINER_MODELS_DIR}/{self.model_file}")

    def cuda_visible_devices(self) -> str | None:
        """For native (systemd) deployments: which GPUs the process may see."""
        if self.gpus is None:
            return ""
        if self.gpus == "all":
            return None
        return ",".join(str(index) for index in self.gpus)


class SystemdOptions(BaseModel):
    """How a systemd deployment's unit is installed (the `systemd` object of a deploy or unit request)."""

    # Strict booleans: a dry run is the one thing between a request and a unit written and enabled, so only
    # true and false say which.
    model_config = ConfigDict(extra="forbid", frozen=True)

    binary: str | None = None  # llama-server; None: settings.llama_server_binary's rule
    user: StrictBool = False  # a user unit rather than a system one
    dry_run: StrictBool = False  # print the unit and the commands, run nothing
    log_dir: str | None = None
