"""A remote corral-core's admin socket, forwarded to a private local socket by the operator's own ssh.

    tunnel = SshTunnel(context)
    local_socket = tunnel.open()   # blocks until corral-core answers through it; TunnelFailed says why
    ...
    tunnel.close()                 # ssh stopped, the local socket and its directory removed

`ssh -N -L LOCAL.sock:REMOTE.sock` forwards Unix socket to Unix socket, so nothing listens on TCP at either end.
The local socket lies in a 0700 directory under $XDG_RUNTIME_DIR (else the temp directory). ssh runs with
BatchMode (it never prompts: keys or an agent only) and ExitOnForwardFailure. It is synchronous so the CLI can
use it as it is; the console calls open() in a worker thread and close() may come from any thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from .contexts import Context

OPEN_TIMEOUT_S = 15.0
RESOLVE_TIMEOUT_S = 15.0
POLL_S = 0.05
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 3.0
STDERR_LINES = 8
# ssh's line when the box refused the forwarded connection: nobody listens on the remote socket.
_OPEN_FAILED = "open failed"

# The remote user's default admin socket, as corral-core itself picks it (gateway_core/settings.py):
# $CORRAL_SOCKET, else $XDG_RUNTIME_DIR/corral.sock, else <data dir>/corral.sock.
REMOTE_DEFAULT_SOCKET = (
    'if [ -n "$CORRAL_SOCKET" ]; then printf %s "$CORRAL_SOCKET"; '
    'elif [ -n "$XDG_RUNTIME_DIR" ]; then printf %s/corral.sock "$XDG_RUNTIME_DIR"; '
    'elif [ -n "$CORRAL_DATA_DIR" ]; then printf %s/corral.sock "$CORRAL_DATA_DIR"; '
    'elif [ "$(id -u)" = 0 ]; then printf /var/lib/corral/corral.sock; '
    'else printf %s/corral/corral.sock "${XDG_DATA_HOME:-$HOME/.local/share}"; fi'
)


class TunnelFailed(Exception):
    """The box could not be reached, or its corral-core did not answer; the message carries ssh's own words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def runtime_base(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    return Path(runtime) if runtime and Path(runtime).is_dir() else Path(tempfile.gettempdir())


class SshTunnel:
    def __init__(self, context: Context, *, ssh: str = "ssh", base_dir: Path | None = None) -> None:
        if context.ssh is None:
            raise ValueError(f"context {context.name!r} is a local socket; it needs no tunnel")
        self.context = context
        self._destination = context.ssh
        self._ssh = ssh
        self._base_dir = base_dir
        self.directory: Path | None = None
        self.local_socket: Path | None = None
        self.remote_socket: str | None = context.remote_socket
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the command lines ------------------------------------------------------------------------------

    def ssh_args(self) -> list[str]:
        """ssh's options and the destination, shared by the forward and the remote socket's look-up."""
        args = [self._ssh, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self._destination.port:
            args += ["-p", str(self._destination.port)]
        if self.context.identity:
            args += ["-i", str(self.context.identity), "-o", "IdentitiesOnly=yes"]
        for option in self.context.ssh_options:
            args += ["-o", option]
        return [*args, self._destination.login]

    def forward_command(self, local_socket: Path, remote_socket: str) -> list[str]:
        options = ["-N", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes"]
        options += ["-o", "ServerAliveInterval=15", "-L", f"{local_socket}:{remote_socket}"]
        base = self.ssh_args()
        return [base[0], *options, *base[1:]]

    # -- open and close ---------------------------------------------------------------------------------

    def open(self, timeout_s: float = OPEN_TIMEOUT_S) -> Path:
        """Start the forward and return the local socket once corral-core answers /health through it."""
        if shutil.which(self._ssh) is None:
            raise TunnelFailed(f"cannot reach {self._destination}: no `{self._ssh}` on PATH (install openssh-client)")
        remote = self.remote_socket or self._resolve_remote_socket()
        self.remote_socket = remote
        base = self._base_dir or runtime_base()
        with self._lock:
            if self._closed:
                raise TunnelFailed(f"the tunnel to {self._destination} was closed while it opened")
            self.directory = Path(tempfile.mkdtemp(prefix="corral-ssh-", dir=base))  # mode 0700
            self.local_socket = self.directory / "corral.sock"
            stderr = (self.directory / "ssh.log").open("wb")
            with stderr:
                self.process = subprocess.Popen(
                    self.forward_command(self.local_socket, remote),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
        self._wait_answering(timeout_s)
        return self.local_socket

    def close(self) -> None:
        """Stop ssh and remove the local socket and its directory; safe to call twice, or from another thread."""
        with self._lock:
            self._closed = True
            process, self.process = self.process, None
            directory = self.directory
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_GRACE_S)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)  # ssh leaves its forwarded socket behind

    @property
    def alive(self) -> bool:
        process = self.process
        return process is not None and process.poll() is None

    def ssh_stderr(self) -> str:
        """ssh's last words, for a message."""
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "ssh.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line.strip() for line in text.splitlines()[-STDERR_LINES:] if line.strip())

    @contextlib.contextmanager
    def opened(self, timeout_s: float = OPEN_TIMEOUT_S) -> Iterator[Path]:
        try:
            yield self.open(timeout_s)
        finally:
            self.close()

    # -- inside ---------------------------------------------------------------------------------------

    def _resolve_remote_socket(self) -> str:
        command = [*self.ssh_args(), REMOTE_DEFAULT_SOCKET]
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise TunnelFailed(
                f"ssh {self._destination} did not answer within {RESOLVE_TIMEOUT_S:g} s; check the box is up"
            ) from None
        path = result.stdout.strip()
        if result.returncode != 0 or not path.startswith("/"):
            words = result.stderr.strip() or f"it printed {path!r}"
            raise TunnelFailed(
                f"cannot ask {self._destination} for its corral-core socket (ssh exited {result.returncode}): {words}"
            )
        return path

    def _wait_answering(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_error = "the local socket did not appear"
        while True:
            process, local = self.process, self.local_socket
            if process is None or local is None:
                raise TunnelFailed(f"the tunnel to {self._destination} was closed while it opened")
            if process.poll() is not None:
                words = self.ssh_stderr() or "(ssh said nothing)"
                self.close()
                raise TunnelFailed(f"ssh to {self._destination} exited with code {process.returncode}: {words}")
            if local.exists():
                answered, last_error = _answers(local)
                if answered:
                    return
                if _OPEN_FAILED in self.ssh_stderr():
                    words = self.ssh_stderr()
                    self.close()
                    raise TunnelFailed(
                        f"ssh reached {self._destination}, but no corral-core answers on {self.remote_socket} "
                        f"there (is it running? `corral daemon status` on the box): {words}"
                    )
            if time.monotonic() >= deadline:
                words = self.ssh_stderr()
                self.close()
                raise TunnelFailed(
                    f"no corral-core answered through ssh {self._destination} ({self.remote_socket}) within "
                    f"{timeout_s:g} s: {last_error}" + (f"; ssh said: {words}" if words else "")
                )
            time.sleep(POLL_S)


def _answers(socket_path: Path) -> tuple[bool, str]:
    """Whether corral-core answers /health on `socket_path`, and if not, why."""
    try:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://corral", timeout=PROBE_TIMEOUT_S
        ) as client:
            response = client.get("/health")
    except httpx.HTTPError as error:
        return False, str(error) or type(error).__name__
    if response.status_code != 200:
        return False, f"/health answered {response.status_code}"
    return True, ""


@contextlib.contextmanager
def reached(context: Context) -> Iterator[Path]:
    """The socket to talk to `context` through: its own for a local one, a tunnel's while this block runs for a box
    over SSH (TunnelFailed says why it could not be opened)."""
    if context.ssh is None:
        assert context.socket is not None  # make_context gives a local context its socket
        yield context.socket
        return
    with SshTunnel(context).opened() as local_socket:
        yield local_socket
