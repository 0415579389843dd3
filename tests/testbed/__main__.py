"""`python -m tests.testbed prepare`: build and cache every testbed component, one status line each.

The test script runs this before pytest so the slow first build shows its progress instead of
hiding inside a fixture. Under CORRAL_TESTBED=required any missing component exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import docker
import docker.errors

from . import (
    ensure_llama_image,
    ensure_llama_server,
    ensure_nvml_stub,
    ensure_tiny_model,
    testbed_required,
)


def _docker_image() -> str:
    client = docker.from_env(timeout=60)
    try:
        client.ping()
        return ensure_llama_image(client, ensure_llama_server())
    finally:
        client.close()


def prepare() -> int:
    steps: list[tuple[str, Callable[[], object]]] = [
        ("tiny GGUF model", ensure_tiny_model),
        ("NVML stub", lambda: ensure_nvml_stub().library_dir / "libnvidia-ml.so.1"),
        ("llama-server", ensure_llama_server),
        ("Docker image", _docker_image),
    ]
    missing = 0
    for name, step in steps:
        started = time.monotonic()
        try:
            result = step()
        except (RuntimeError, OSError, docker.errors.DockerException) as error:
            missing += 1
            print(f"testbed: {name}: unavailable: {error}", flush=True)
        else:
            print(f"testbed: {name}: {result} ({time.monotonic() - started:.1f}s)", flush=True)
    if missing and testbed_required():
        print(f"testbed: {missing} component(s) missing and CORRAL_TESTBED=required", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed")
    parser.add_argument("command", choices=["prepare"])
    parser.parse_args()
    return prepare()


if __name__ == "__main__":
    raise SystemExit(main())
