"""Real llama-server processes on free 127.0.0.1 ports, killed at teardown whatever happens."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .child_processes import die_with_parent, stop_process
from .ports import free_port
from .waiting import WaitTimedOut, wait_for

HEALTH_TIMEOUT_S = 30.0


class LlamaServerFailedToStart(RuntimeError):
    pass


@dataclass
class LlamaServerProcess:
    binary: Path
    model: Path
    log_path: Path
    parallel: int = 1
    ctx_size: int = 1024
    alias: str = "tiny"
    extra_args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--parallel",
            str(self.parallel),
            "--ctx-size",
            str(self.ctx_size * self.parallel),
            "--alias",
            self.alias,
            "--threads",
            "1",
            *self.extra_args,
        ]

    def start(self, attempts: int = 3) -> LlamaServerProcess:
        """Start and wait for /health; retry on a new port if the chosen one was taken meanwhile."""
        last_error: Exception | None = None
        for _ in range(attempts):
            self.port = free_port()
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            log.close()
            try:
                self._wait_healthy()
                return self
            except LlamaServerFailedToStart as error:
                last_error = error
                self.stop()
        raise LlamaServerFailedToStart(f"llama-server did not start after {attempts} attempts: {last_error}")

    def _wait_healthy(self) -> None:
        try:
            wait_for(self._healthy, "llama-server's /health", HEALTH_TIMEOUT_S)
        except WaitTimedOut:
            raise LlamaServerFailedToStart(
                f"/health not ready within {HEALTH_TIMEOUT_S}s; log tail:\n{self.log_tail()}"
            ) from None

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise LlamaServerFailedToStart(f"exited with {self.process.returncode}; log tail:\n{self.log_tail()}")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200
        return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.process)


class LlamaServerPool:
    """Starts llama-server processes on demand and stops every one of them on exit, even after an error."""

    def __init__(self, binary: Path, model: Path, log_dir: Path) -> None:
        self.binary = binary
        self.model = model
        self.log_dir = log_dir
        self.servers: list[LlamaServerProcess] = []

    def start(
        self, count: int = 1, *, parallel: int = 1, alias: str = "tiny", extra_args: tuple[str, ...] = ()
    ) -> list[LlamaServerProcess]:
        started = []
        for _ in range(count):
            server = LlamaServerProcess(
                binary=self.binary,
                model=self.model,
                log_path=self.log_dir / f"llama-server-{len(self.servers)}.log",
                parallel=parallel,
                alias=alias,
                extra_args=extra_args,
            )
            self.servers.append(server)  # tracked before starting, so a failed start is still cleaned up
            started.append(server.start())
        return started

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LlamaServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()
