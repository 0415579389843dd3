"""The NVML stub: a libnvidia-ml.so.1 built with gcc from nvml_stub.c, with fake GPUs from a JSON file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import build_lock, cache_root

SOURCE = Path(__file__).with_name("nvml_stub") / "nvml_stub.c"
CONFIG_ENV = "CORRAL_NVML_STUB_CONFIG"


class NvmlStubUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class NvmlStub:
    library_dir: Path

    def environment(self, devices_file: Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment in which nvidia-ml-py loads the stub, serving the devices in `devices_file`."""
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.library_dir), env.get("LD_LIBRARY_PATH")]))
        env[CONFIG_ENV] = str(devices_file)
        return env


def write_devices(path: Path, devices: list[dict[str, Any]], driver_version: str = "550.54.15") -> Path:
    """Write (or rewrite) the stub's devices; the stub reads the file again at each sample."""
    # Written whole and renamed into place: a stub sampling meanwhile sees the old file or the new one.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"driver_version": driver_version, "devices": devices}))
    partial.replace(path)
    return path


def measured_processes(
    environ: str, used_memory: int, comm: str | None = None, sm_util: int | None = None
) -> dict[str, Any]:
    """A `processes` entry standing for every live process whose environment holds exactly `environ`
    (KEY=VALUE), and whose /proc/PID/comm is `comm` if given: each is listed with its real pid and adds
    `used_memory` to the device's memory_used until it exits, as the driver does. With `sm_util`, the device
    also answers nvmlDeviceGetProcessUtilization (that percent for each); without, it does not support it."""
    entry: dict[str, Any] = {"environ": environ, "used_memory": used_memory}
    if comm is not None:
        entry["comm"] = comm
    if sm_util is not None:
        entry["sm_util"] = sm_util
    return entry


def deployment_memory(deployment: str, used_memory: int) -> dict[str, Any]:
    """A `processes` entry for a deployment's llama-server (found by its LLAMA_ARG_ALIAS, which Corral sets to
    the deployment's name; `comm` leaves out the container's healthcheck, which runs with the same environment)."""
    return measured_processes(f"LLAMA_ARG_ALIAS={deployment}", used_memory, comm="llama-server")


def ensure_nvml_stub() -> NvmlStub:
    compiler = shutil.which("gcc") or shutil.which("cc")
    source_hash = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    library_dir = cache_root() / f"nvml-stub-{source_hash}"
    library = library_dir / "libnvidia-ml.so.1"
    if library.exists():
        return NvmlStub(library_dir)
    if compiler is None:
        raise NvmlStubUnavailable("no C compiler (gcc) to build the NVML stub; install gcc")
    with build_lock("nvml-stub"):
        if not library.exists():
            library_dir.mkdir(parents=True, exist_ok=True)
            partial = library_dir / "libnvidia-ml.so.1.partial"
            result = subprocess.run(
                [
                    compiler,
                    "-shared",
                    "-fPIC",
                    "-O2",
                    "-Wall",
                    "-Werror",
                    "-Wl,-soname,libnvidia-ml.so.1",
                    "-o",
                    str(partial),
                    str(SOURCE),
                ],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0:
                raise NvmlStubUnavailable(f"gcc could not build the NVML stub: {result.stderr.strip()}")
            partial.rename(library)
    return NvmlStub(library_dir)
