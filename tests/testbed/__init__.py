"""The testbed: real llama-server, Docker engine, tiny GGUF model and NVML stub, built on demand and cached;
corral-core as a real process (`CorralDaemon`) or as its objects in the test's process (`in_process`, imported
on its own so that collecting tests never imports the daemon); and `waiting.wait_for`, the one way to wait."""

from .daemon import CorralDaemon, DaemonFailedToStart, daemons_on
from .docker_image import IMAGE as LLAMA_SERVER_IMAGE
from .docker_image import ImageUnavailable, ensure_llama_image
from .llama_build import LlamaServerUnavailable, ensure_llama_server
from .llama_process import LlamaServerFailedToStart, LlamaServerPool, LlamaServerProcess
from .nvml import NvmlStub, NvmlStubUnavailable, ensure_nvml_stub, write_devices
from .ports import free_port, free_ports
from .requirement import component_unavailable, testbed_required
from .tiny_model import ensure_tiny_model

__all__ = [
    "LLAMA_SERVER_IMAGE",
    "CorralDaemon",
    "DaemonFailedToStart",
    "ImageUnavailable",
    "LlamaServerFailedToStart",
    "LlamaServerPool",
    "LlamaServerProcess",
    "LlamaServerUnavailable",
    "NvmlStub",
    "NvmlStubUnavailable",
    "component_unavailable",
    "daemons_on",
    "ensure_llama_image",
    "ensure_llama_server",
    "ensure_nvml_stub",
    "ensure_tiny_model",
    "free_port",
    "free_ports",
    "testbed_required",
    "write_devices",
]
