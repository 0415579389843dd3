"""A second Docker engine of the tests' own, on which containers with GPU device requests start.

Docker 20.10 registers its `nvidia` device driver only when an executable named
`nvidia-container-runtime-hook` is on dockerd's PATH when it starts (moby's daemon/nvidia_linux.go).
A container with a GPU device request then gets NVIDIA_VISIBLE_DEVICES in its environment and an OCI
prestart hook that runs that executable (`nvidia-container-runtime-hook prestart`, the container's
state on stdin); without it, the engine refuses to start the container ("could not select device
driver"). The machine's own dockerd has no such hook, and is left alone.

This engine runs with its own socket, data root, exec root and pid file under one temporary directory,
with `--bridge=none --iptables=false` (containers use the host network), and a PATH whose first entry
holds FAKE_HOOK. It needs root, as any dockerd does. `GpuDockerEngine.stop` removes its containers,
stops it and removes its directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from .docker_image import ensure_llama_image

HOOK_NAME = "nvidia-container-runtime-hook"
# A test double for the NVIDIA Container Toolkit's hook, which cannot exist without an NVIDIA driver: it reads
# the container state runc hands it, records its arguments (for tests to see that it ran) and lets the
# container start, without mounting any device or driver library into it.
FAKE_HOOK = """#!/bin/sh
# Test double for the NVIDIA Container Toolkit's prestart hook (no NVIDIA driver on this machine).
echo "$*" >> "$(dirname "$0")/../hook-calls.log"
cat > /dev/null
exit 0
"""
ROOT_PREFIX = "corral-gpu-docker-"
OWNER_FILE = "owner.pid"  # the pid of the test process that started the engine, to reap engines it left behind
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
MNT_DETACH = 2


class GpuDockerUnavailable(RuntimeError):
    pass


@dataclass
class GpuDockerEngine:
    """A running dockerd of the tests' own; `docker_host` is what DOCKER_HOST should say to reach it."""

    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    image: str = ""  # the llama-server image, once imported

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def hook_calls_path(self) -> Path:
        """One line per run of the fake hook: its arguments (`prestart`)."""
        return self.root / "hook-calls.log"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def client(self, timeout_s: int = 60) -> docker.DockerClient:
        """A new client of this engine (close it)."""
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remove_containers(self) -> None:
        """Remove every container on this engine (all of them are the tests')."""
        with contextlib.closing(self.client()) as client:
            for container in client.containers.list(all=True):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)

    def stop(self) -> None:
        """Remove its containers, stop dockerd (and the containerd it started), remove its directory."""
        try:
            if self.process.poll() is None:
                with contextlib.suppress(docker.errors.DockerException):
                    self.remove_containers()
        finally:
            _stop_engine(self.root, self.process)


def start_gpu_docker(llama_server_binary: Path | None = None) -> GpuDockerEngine:
    """Start the engine and wait until it answers; import the llama-server image into it if a binary is given."""
    problem = _cannot_run_dockerd()
    if problem:
        raise GpuDockerUnavailable(problem)
    _reap_abandoned_engines()
    # Short, under /tmp: the sockets containerd makes under the exec root must fit in a Unix socket path.
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir="/tmp"))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    hook_dir = root / "bin"
    hook_dir.mkdir()
    hook = hook_dir / HOOK_NAME
    hook.write_text(FAKE_HOOK)
    hook.chmod(0o755)
    env = {**os.environ, "PATH": os.pathsep.join([str(hook_dir), os.environ.get("PATH", "/usr/sbin:/usr/bin")])}
    env.pop("DOCKER_HOST", None)
    command = [
        "dockerd",
        f"--host=unix://{root / 'docker.sock'}",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'docker.pid'}",
        "--bridge=none",
        "--iptables=false",
    ]
    with (root / "dockerd.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_parent,
        )
    engine = GpuDockerEngine(root, process)
    try:
        _wait_until_answering(engine)
        if llama_server_binary is not None:
            with contextlib.closing(engine.client()) as client:
                engine.image = ensure_llama_image(client, llama_server_binary)
    except BaseException:
        engine.stop()
        raise
    return engine


def _cannot_run_dockerd() -> str | None:
    if shutil.which("dockerd") is None:
        return "dockerd is not on PATH (install Debian's docker.io)"
    if shutil.which("containerd") is None:
        return "containerd is not on PATH (it comes with Debian's docker.io)"
    if os.geteuid() != 0:
        return "starting a second dockerd (for GPU device requests) needs root, and this test process is not root"
    return None


def _stop_with_parent() -> None:
    """A `preexec_fn`: SIGTERM (dockerd then shuts down cleanly) if the test process dies without stopping it."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_answering(engine: GpuDockerEngine) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if engine.process.poll() is not None:
            raise GpuDockerUnavailable(
                f"dockerd exited with {engine.process.returncode} at start:\n{engine.log_tail()}"
            )
        if engine.socket_path.exists():
            with contextlib.suppress(docker.errors.DockerException), contextlib.closing(engine.client(5)) as client:
                if client.ping():
                    return
        if time.monotonic() >= deadline:
            raise GpuDockerUnavailable(f"dockerd did not answer within {START_TIMEOUT_S:g} s:\n{engine.log_tail()}")
        time.sleep(0.1)


def _stop_engine(root: Path, process: subprocess.Popen[bytes] | None) -> None:
    """Stop a dockerd by its process (or, left behind by a killed run, by its pid file) and remove `root`."""
    pid = process.pid if process is not None else _read_pid(root / "docker.pid")
    if pid is not None and (process is None or process.poll() is None) and _is_dockerd_of(pid, root):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, process, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, process, 5.0)
    # dockerd stops its containerd as it exits; one that outlived a SIGKILLed dockerd is stopped here.
    containerd = _read_pid(root / "exec" / "containerd" / "containerd.pid")
    if containerd is not None and _is_process_under(containerd, root):
        os.kill(containerd, signal.SIGKILL)
        _wait_gone(containerd, None, 5.0)
    _unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)


def _reap_abandoned_engines() -> None:
    """Stop and remove the engines of test processes that died without stopping theirs."""
    for root in Path("/tmp").glob(ROOT_PREFIX + "*"):
        owner = _read_pid(root / OWNER_FILE)
        if owner is not None and owner != os.getpid() and Path(f"/proc/{owner}").exists():
            continue  # another live test process's engine (another xdist worker)
        if owner is None and _age_s(root) < START_TIMEOUT_S:
            continue  # being set up by another test process, its owner not written yet
        _stop_engine(root, None)


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_dockerd_of(pid: int, root: Path) -> bool:
    args = _cmdline(pid)
    return bool(args) and Path(args[0]).name == "dockerd" and f"--data-root={root / 'data'}" in args


def _is_process_under(pid: int, root: Path) -> bool:
    """Whether `pid` was started with an argument inside `root` (its containerd's config or state)."""
    return any(str(root) in arg for arg in _cmdline(pid))


def _wait_gone(pid: int, process: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _unmount_under(root: Path) -> None:
    """Detach what dockerd left mounted under `root` (its network namespace file, a container's rootfs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        libc.umount2(point.encode(), MNT_DETACH)
