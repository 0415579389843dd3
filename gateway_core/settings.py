"""Where the daemon finds things: flags first, then CORRAL_* environment, then defaults.

Every path the daemon takes from its environment is resolved here and nowhere else, so two commands can never
disagree about, say, which llama-server binary they mean.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8800"
LLAMA_SERVER_ENV = "CORRAL_LLAMA_SERVER"
MODELS_DIRS_ENV = "CORRAL_MODELS_DIRS"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    socket_path: Path
    listen_host: str
    listen_port: int


class BinaryNotFound(ValueError):
    """No llama-server binary was named and none is on PATH; the message says what to pass."""

    param = "binary"


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = _environ(env)
    if env.get("CORRAL_DATA_DIR"):
        return Path(env["CORRAL_DATA_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/corral")
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "corral"


def default_socket_path(data_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    env = _environ(env)
    if env.get("CORRAL_SOCKET"):
        return Path(env["CORRAL_SOCKET"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "corral.sock"
    return data_dir / "corral.sock"


def parse_listen(value: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 as [::1]:PORT); raise ValueError with a usable message otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {value!r} is not HOST:PORT (for example {DEFAULT_LISTEN})")
    return host.strip("[]"), int(port)


def resolve_settings(
    data_dir: str | None = None,
    listen: str | None = None,
    socket_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = _environ(env)
    resolved_data_dir = Path(data_dir) if data_dir else default_data_dir(env)
    host, port = parse_listen(listen or env.get("CORRAL_LISTEN") or DEFAULT_LISTEN)
    resolved_socket = Path(socket_path) if socket_path else default_socket_path(resolved_data_dir, env)
    return Settings(data_dir=resolved_data_dir, socket_path=resolved_socket, listen_host=host, listen_port=port)


def llama_server_binary(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The llama-server a systemd unit runs: the one asked for, then $CORRAL_LLAMA_SERVER, then PATH's.

    Read when asked (not at start), so the daemon's environment is the one that counts. Raises BinaryNotFound
    rather than naming a binary that is not there.
    """
    env = _environ(env)
    binary = explicit or env.get(LLAMA_SERVER_ENV) or shutil.which("llama-server", path=env.get("PATH"))
    if not binary:
        raise BinaryNotFound(
            f"no llama-server binary: pass --binary PATH, set {LLAMA_SERVER_ENV} for corral-core, "
            "or put llama-server on corral-core's PATH"
        )
    return binary


def models_dirs(data_dir: Path, env: Mapping[str, str] | None = None) -> list[Path]:
    """Where the GGUF catalog looks: $CORRAL_MODELS_DIRS (colon-separated), else <data-dir>/models."""
    configured = _environ(env).get(MODELS_DIRS_ENV)
    if configured:
        return [Path(part).expanduser() for part in configured.split(os.pathsep) if part]
    return [data_dir / "models"]
