"""Paths and listen addresses, from flags, then CORRAL_* environment, then defaults (DESIGN.md section 3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8800"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    socket_path: Path
    listen_host: str
    listen_port: int


def default_data_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CORRAL_DATA_DIR"):
        return Path(env["CORRAL_DATA_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/corral")
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "corral"


def default_socket_path(data_dir: Path, env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
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
    env: dict[str, str] | None = None,
) -> Settings:
    env = os.environ if env is None else env
    resolved_data_dir = Path(data_dir) if data_dir else default_data_dir(env)
    host, port = parse_listen(listen or env.get("CORRAL_LISTEN") or DEFAULT_LISTEN)
    resolved_socket = Path(socket_path) if socket_path else default_socket_path(resolved_data_dir, env)
    return Settings(data_dir=resolved_data_dir, socket_path=resolved_socket, listen_host=host, listen_port=port)
