"""What the benchmark runs against: llama-servers, the null upstream and corral-core, all stopped on exit.

`Stack` is a context manager; every process it starts is tracked before it is waited on, so a failed start or
an exception anywhere still ends them all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.testbed import CorralDaemon, LlamaServerPool, ensure_llama_server, ensure_tiny_model, free_port
from tests.testbed.child_processes import die_with_parent, stop_process

READY_TIMEOUT_S = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15, counted after the comm field


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


class NullUpstream:
    """bench.null_upstream in its own process on a free port."""

    def __init__(self, log_path: Path, model: str = "null") -> None:
        self.log_path = log_path
        self.model = model
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> NullUpstream:
        for _ in range(attempts):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "bench.null_upstream", "--port", str(self.port), "--model", self.model],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200:
                        return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"the null upstream did not start; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Endpoints:
    llama: list[tuple[str, int]]
    null: tuple[str, int]
    gateway: tuple[str, int]
    key: str


class Stack(contextlib.ExitStack):
    """Starts `llama_servers` llama-servers (model "tiny"), a null upstream (model "null") and corral-core."""

    def __init__(self, llama_servers: int = 2, parallel: int = 8) -> None:
        super().__init__()
        self.llama_count = llama_servers
        self.parallel = parallel
        self.llama_binary = ensure_llama_server()
        self.workdir = Path(self.enter_context(tempfile.TemporaryDirectory(prefix="corral-bench-")))
        self.pool = self.enter_context(LlamaServerPool(self.llama_binary, ensure_tiny_model(), self.workdir))
        self.null = NullUpstream(self.workdir / "null-upstream.log")
        self.callback(self.null.stop)
        self.daemon = CorralDaemon(self.workdir / "corral")
        self.callback(self.daemon.stop)

    def start(self) -> Endpoints:
        servers = self.pool.start(self.llama_count, parallel=self.parallel, alias="tiny")
        self.null.start()
        self.daemon.start()
        for index, server in enumerate(servers):
            self.daemon.add_provider(f"llama{index}", server.base_url)
        self.daemon.add_provider("null", self.null.base_url)
        key = self.daemon.create_key("bench")
        self._wait_ready(len(servers) + 1)
        return Endpoints(
            llama=[("127.0.0.1", server.port) for server in servers],
            null=("127.0.0.1", self.null.port),
            gateway=("127.0.0.1", self.daemon.port),
            key=key,
        )

    @property
    def gateway_pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    def upstream_errors(self) -> int:
        """Failed upstream attempts corral-core has counted, over all providers."""
        return sum(provider["errors"] for provider in self.daemon.admin_call("GET", "/providers").json())

    def _wait_ready(self, expected: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            providers = self.daemon.admin_call("GET", "/providers").json()
            if len(providers) == expected and all(p["state"] == "ready" and p["models"] for p in providers):
                return
            time.sleep(0.1)
        raise RuntimeError(f"providers not ready within {READY_TIMEOUT_S}s: {providers}\n{self.daemon.log_tail()}")

    def llama_version(self) -> str:
        result = subprocess.run(
            [str(self.llama_binary), "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30
        )
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("version")]
        return lines[0].removeprefix("version: ") if lines else "unknown"
