"""A real corral-core process for tests: its own data dir, a free port and a private admin socket."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .ports import free_port
from .waiting import WaitTimedOut, wait_for

START_TIMEOUT_S = 20.0


class DaemonFailedToStart(RuntimeError):
    pass


class _PortTaken(Exception):
    """The daemon exited because another process bound its port first."""


@dataclass
class CorralDaemon:
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()  # more corral-core flags (--header-timeout 1, ...)
    # Run in the child before corral-core starts: a lowered resource limit, or dying with the parent (the bench).
    preexec: Callable[[], None] | None = field(default=None, repr=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "run" / "corral.sock"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "corral-core.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self) -> httpx.Client:
        """A synchronous admin client over the Unix socket (close it, or use it in a with block)."""
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket_path)), base_url="http://corral", timeout=30.0
        )

    def admin_call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        with self.admin() as client:
            return client.request(method, path, json=json)

    def start(self, attempts: int = 3) -> CorralDaemon:
        """Start and wait for the admin socket to answer; on a new port if another process took the chosen one."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path.parent.mkdir(exist_ok=True, mode=0o700)
        for _ in range(attempts):
            self.port = free_port()
            self._spawn()
            try:
                wait_for(self._answers, "corral-core to answer on its admin socket", START_TIMEOUT_S)
                return self
            except _PortTaken:
                continue
            except WaitTimedOut:
                self.stop()
                raise DaemonFailedToStart(
                    f"corral-core did not answer in {START_TIMEOUT_S}s:\n{self.log_tail()}"
                ) from None
        raise DaemonFailedToStart(f"corral-core found no free port in {attempts} attempts:\n{self.log_tail()}")

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "gateway_core.cli",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--socket",
            str(self.socket_path),
            "--drain-timeout",
            "5",
            *self.extra_args,
        ]
        env = {**os.environ, **self.extra_env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec,
            )

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            if f"cannot listen on 127.0.0.1:{self.port}" in self.log_tail():
                raise _PortTaken  # between free_port() and the daemon's bind, as free_port warns
            raise DaemonFailedToStart(f"corral-core exited with {self.process.returncode}:\n{self.log_tail()}")
        # Only once the socket exists: httpcore leaks the socket of a failed Unix connect.
        with contextlib.suppress(httpx.TransportError):
            return self.socket_path.exists() and self.admin_call("GET", "/health").status_code == 200
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then wait; SIGKILL if it will not go. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    # -- conveniences for tests -------------------------------------------------------------------------

    def add_provider(self, name: str, base_url: str, type_: str = "llama-server", **fields: Any) -> dict[str, Any]:
        response = self.admin_call("POST", "/providers", {"name": name, "type": type_, "base_url": base_url, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def create_key(self, name: str, **fields: Any) -> str:
        response = self.admin_call("POST", "/keys", {"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()["key"]


def daemons_on(socket_path: Path) -> list[int]:
    """Pids of processes started with `--socket socket_path` (the daemons this test started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--socket" in args and str(socket_path).encode() in args:
            pids.append(int(entry.name))
    return pids
