"""A real OpenSSH server on 127.0.0.1 for the console's SSH contexts: its own host key, one authorised test key.

    with SshServer(tmp_path / "sshd").start() as sshd:
        sshd.destination            # "root@127.0.0.1:PORT" (the current user)
        sshd.client_options         # ["UserKnownHostsFile=...", "StrictHostKeyChecking=yes"]: its host key is known
        sshd.identity               # the private key the server accepts

Keys are generated with ssh-keygen (ed25519) in the server's directory; the client's known_hosts holds the host
key, so the client checks it for real. StrictModes is off (the files live under pytest's tmp dir) and
AllowStreamLocalForwarding is on, which `ssh -L LOCAL.sock:REMOTE.sock` needs.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from .child_processes import die_with_parent, stop_process
from .ports import free_port
from .waiting import WaitTimedOut, wait_for

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 10.0
# Running as root, sshd chroots its pre-authentication child into this empty directory (compiled in), which the
# Debian package's service would create; the testbed creates it when it is missing.
PRIVSEP_DIR = Path("/run/sshd")


class SshdUnavailable(RuntimeError):
    pass


def find_sshd() -> tuple[str, str, str]:
    """sshd, ssh and ssh-keygen, or SshdUnavailable naming what is missing."""
    sshd = SSHD if os.access(SSHD, os.X_OK) else shutil.which("sshd")
    ssh, keygen = shutil.which("ssh"), shutil.which("ssh-keygen")
    missing = [name for name, found in (("sshd", sshd), ("ssh", ssh), ("ssh-keygen", keygen)) if found is None]
    if missing or sshd is None or ssh is None or keygen is None:
        raise SshdUnavailable(f"{', '.join(missing)} not found; install Debian's openssh-server and openssh-client")
    return sshd, ssh, keygen


class SshServer:
    def __init__(self, directory: Path, *, set_env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.set_env = set_env or {}  # sshd's SetEnv: the environment every session on the box gets
        self.user = getpass.getuser()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def identity(self) -> Path:
        return self.directory / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def client_options(self) -> list[str]:
        return [f"UserKnownHostsFile={self.known_hosts}", "StrictHostKeyChecking=yes"]

    def start(self) -> SshServer:
        sshd, _, keygen = find_sshd()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        host_key = self.directory / "host_key"
        for key, comment in ((host_key, "corral-testbed-host"), (self.identity, "corral-testbed-client")):
            if not key.exists():
                subprocess.run(
                    [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                    check=True,
                    capture_output=True,
                )
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.port = free_port()
        config = self.directory / "sshd_config"
        config.write_text(self._config(host_key))
        public_host_key = (host_key.with_suffix(".pub")).read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public_host_key[0]} {public_host_key[1]}\n")
        test = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
        if test.returncode != 0:
            raise SshdUnavailable(f"sshd refused its test config: {test.stderr.strip()}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config), "-p", str(self.port), "-h", str(host_key)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            wait_for(self._listening, "sshd to listen", START_TIMEOUT_S)
        except WaitTimedOut:
            self.stop()
            raise SshdUnavailable(f"sshd did not listen within {START_TIMEOUT_S:g} s:\n{self.log_tail()}") from None
        return self

    def _config(self, host_key: Path) -> str:
        lines = [
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.identity}.pub",
            "StrictModes no",
            "AllowStreamLocalForwarding yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "PidFile none",
            "LogLevel VERBOSE",
        ]
        if self.set_env:
            lines.append("SetEnv " + " ".join(f"{name}={value}" for name, value in self.set_env.items()))
        return "\n".join(lines) + "\n"

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise SshdUnavailable(f"sshd exited with {self.process.returncode}:\n{self.log_tail()}")
        return "Server listening on 127.0.0.1" in self.log_tail()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> SshServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
