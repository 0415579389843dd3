"""A busy corral-core for the console to show: fake GPUs, real containers, providers, keys and live requests.

Every part is real but the GPUs: corral-core in a temporary data dir, reading 8 devices from the testbed's NVML
stub; 20 providers and 200 keys made through the admin API; the null upstream in its own process, dripping one
chunk a second to 500 streams held open through the gateway by `bench.console_traffic`; and 32 llama-server
containers (`bench.console_fleet`) when a Docker engine is there. Everything stops on exit, on error too.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.console_fleet import BenchFleet
from bench.processes import NullUpstream
from tests.testbed import CorralDaemon, NvmlStubUnavailable, ensure_nvml_stub, write_devices
from tests.testbed.child_processes import die_with_parent, stop_process

GIB = 1024**3
READY_TIMEOUT_S = 30.0
TRICKLE_MODEL = "trickle"  # public model: one chunk a second (the upstream's `drip`)
FAST_MODEL = "stream-10k"  # public model: 10,000 chunks a second; first in the chat's model list
FAST_RATE = 10_000


@dataclass(frozen=True)
class Scale:
    gpus: int = 8
    deployments: int = 32
    providers: int = 20
    keys: int = 200
    live_requests: int = 500
    stream_s: int = 60  # how long each live request lasts before its slot starts another


def gpu_devices(count: int, pids: list[int]) -> list[dict[str, Any]]:
    """H100s in varied states, each running the given processes."""
    return [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": f"GPU-bench-{index:02d}",
            "memory_total": 80 * GIB,
            "memory_used": (10 + 7 * index) * GIB,
            "utilization_gpu": (13 * index) % 100,
            "utilization_memory": (7 * index) % 100,
            "temperature": 40 + 5 * index,
            "power_usage_mw": 150_000 + 40_000 * index,
            "power_limit_mw": 700_000,
            "fan_speed": 30,
            "processes": [{"pid": pid, "used_memory": (2 + slot) * GIB} for slot, pid in enumerate(pids)],
        }
        for index in range(count)
    ]


class SyntheticState(contextlib.ExitStack):
    """Starts it all with `start()`; leaving the `with` block stops it all."""

    def __init__(self, scale: Scale, workdir: Path) -> None:
        super().__init__()
        self.scale = scale
        self.workdir = workdir
        self.null = NullUpstream(workdir / "null-upstream.log")
        self.daemon = CorralDaemon(workdir / "corral")
        self.fleet = BenchFleet(scale.deployments)
        self.traffic: subprocess.Popen[str] | None = None
        self.produced: dict[str, Any] = {}
        self.keys: list[str] = []

    def start(self) -> dict[str, Any]:
        """Bring everything up and wait until the requests are live; returns what was actually produced."""
        self.callback(self.null.stop)
        self.null.start()
        env, gpus_reason = self._nvml_environment()
        self.daemon.extra_env = env
        self.callback(self.daemon.stop)
        self.callback(self.fleet.stop)
        self.fleet.start()
        self.daemon.start()
        self._add_providers()
        keys = self.keys = self._create_keys()
        self.callback(self._stop_traffic)
        self._start_traffic(keys)
        live = self._wait_live()
        self.produced = {
            "scale": asdict(self.scale),
            "gpus": self.scale.gpus if not gpus_reason else 0,
            "gpus_reason": gpus_reason,
            "deployments": len(self.fleet.names),
            "deployments_reason": self.fleet.reason,
            "providers": self.scale.providers,
            "keys": len(keys),
            "live_requests_at_start": live,
        }
        return self.produced

    @property
    def socket_path(self) -> Path:
        return self.daemon.socket_path

    @property
    def data_dir(self) -> Path:
        return self.daemon.data_dir

    def _nvml_environment(self) -> tuple[dict[str, str], str]:
        if self.scale.gpus <= 0:
            return {}, "none asked for"
        try:
            stub = ensure_nvml_stub()
        except NvmlStubUnavailable as error:
            return {}, str(error)
        assert self.null.process is not None
        devices = write_devices(
            self.workdir / "gpus.json", gpu_devices(self.scale.gpus, [self.null.process.pid, os.getpid()])
        )
        base = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
        stub_env = stub.environment(devices, base)
        return {key: stub_env[key] for key in ("LD_LIBRARY_PATH", "CORRAL_NVML_STUB_CONFIG")}, ""

    def _add_providers(self) -> None:
        models = {TRICKLE_MODEL: "drip", FAST_MODEL: f"drip-{FAST_RATE}"}
        with self.daemon.admin() as admin:
            for index in range(self.scale.providers):
                response = admin.post(
                    "/providers",
                    json={
                        "name": f"edge-{index:02d}",
                        "type": "llama-server",
                        "base_url": self.null.base_url,
                        "models": models,
                    },
                )
                response.raise_for_status()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            providers = self.daemon.admin_call("GET", "/providers").json()
            if sum(p["state"] == "ready" for p in providers) == self.scale.providers:
                return
            time.sleep(0.1)
        raise RuntimeError(f"providers not ready within {READY_TIMEOUT_S:g}s\n{self.daemon.log_tail()}")

    def _create_keys(self) -> list[str]:
        with self.daemon.admin() as admin:
            keys = []
            for index in range(self.scale.keys):
                fields: dict[str, Any] = {"name": f"app-{index:03d}"}
                if index % 4 == 1:
                    fields |= {"rpm": 6000, "tpm": 1_000_000, "max_concurrency": 50}
                if index % 10 == 3:
                    fields["expires_in_days"] = 30
                response = admin.post("/keys", json=fields)
                response.raise_for_status()
                keys.append(response.json()["key"])
        return keys

    def _start_traffic(self, keys: list[str]) -> None:
        if self.scale.live_requests <= 0:
            return
        keys_file = self.workdir / "keys.json"
        keys_file.write_text(json.dumps(keys))
        keys_file.chmod(0o600)
        command = [
            sys.executable,
            "-m",
            "bench.console_traffic",
            "--port",
            str(self.daemon.port),
            "--keys-file",
            str(keys_file),
            "--streams",
            str(self.scale.live_requests),
            "--model",
            TRICKLE_MODEL,
            "--max-tokens",
            str(self.scale.stream_s),
        ]
        self.traffic = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )

    def _wait_live(self) -> int:
        """Live requests once (nearly) all streams are open."""
        want = int(self.scale.live_requests * 0.98)
        deadline = time.monotonic() + READY_TIMEOUT_S
        live = 0
        while time.monotonic() < deadline:
            live = len(self.daemon.admin_call("GET", "/requests").json())
            if live >= want:
                return live
            time.sleep(0.2)
        raise RuntimeError(f"only {live} of {self.scale.live_requests} requests live after {READY_TIMEOUT_S:g}s")

    def live_requests(self) -> int:
        return len(self.daemon.admin_call("GET", "/requests").json())

    def _stop_traffic(self) -> None:
        stop_process(self.traffic)

    def traffic_counts(self) -> dict[str, int]:
        """Stop the live requests and return the traffic process's counts."""
        if self.traffic is None:
            return {}
        stop_process(self.traffic)
        output = self.traffic.stdout.read() if self.traffic.stdout else ""
        lines = [line for line in output.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
