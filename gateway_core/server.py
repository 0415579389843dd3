"""Run both listeners from one event loop: the public API on TCP and the admin API on a Unix socket.

uvicorn would chmod its Unix socket to 0666, so the daemon binds the socket itself (0600, in a
directory only its owner can enter) and hands it over. Signals are handled here, once, for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from gateway_core import __version__
from gateway_core.api.admin import build_admin_app
from gateway_core.api.public import build_public_app
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.callbacks.settings import CallbackSettings
from gateway_core.fleet.on_demand import DEFAULT_MARGIN_BYTES
from gateway_core.jobs.settings import JobSettings
from gateway_core.listener import ListenerLimits, default_max_connections, listener_protocol, raise_open_file_limit
from gateway_core.metrics import GatewayMetrics
from gateway_core.settings import Settings
from gateway_core.state import GatewayState

log = logging.getLogger("corral.core")
DRAIN_TIMEOUT_S = 30.0


class DaemonError(RuntimeError):
    """Start-up failed in a way the operator can fix; the message says how."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the daemon owns signal handling for both servers
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        pass


def _private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = directory.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DaemonError(
            f"{directory} can be entered by other users (mode {stat.filemode(mode)}); the admin socket needs a "
            f"private directory: run `chmod 700 {directory}` or pass --socket in one"
        )


def bind_admin_socket(path: Path) -> socket.socket:
    _private_dir(path.parent)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket from a daemon that died
        else:
            raise DaemonError(f"another corral-core is already answering on {path}; stop it first")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is never, even briefly, reachable by others
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def bind_public_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise DaemonError(f"cannot listen on {host}:{port}: {error.strerror}; pick another with --listen") from error
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _uvicorn_config(
    app: ASGIApp,
    drain_timeout_s: float,
    http: type[asyncio.Protocol] | Literal["httptools"] = "httptools",
    ws: Literal["auto", "none"] = "auto",
    keep_alive_s: float = 30.0,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="none",
        http=http,
        ws=ws,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(drain_timeout_s),
        timeout_keep_alive=keep_alive_s,  # type: ignore[arg-type]  # typed int; uvicorn only hands it to call_later
    )


def public_config(
    app: ASGIApp, metrics: GatewayMetrics, limits: ListenerLimits, drain_timeout_s: float = DRAIN_TIMEOUT_S
) -> uvicorn.Config:
    """The public listener: deadlines, the connection cap and JSON errors from gateway_core.listener. Never
    uvicorn's limit_concurrency, which answers in plain text; never WebSockets, whose upgrade would take the
    connection out of the listener's count."""
    return _uvicorn_config(
        app,
        drain_timeout_s,
        http=listener_protocol(limits, metrics),
        ws="none",
        keep_alive_s=limits.keep_alive_s,
    )


async def serve(
    settings: Settings,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
    gpu_interval_s: float = 1.0,
    limits: ListenerLimits | None = None,
    archive: ArchiveSettings | None = None,
    jobs: JobSettings | None = None,
    callbacks: CallbackSettings | None = None,
    vram_margin_bytes: int = DEFAULT_MARGIN_BYTES,
    load_keepalive_s: float | None = None,
) -> None:
    limits = limits or ListenerLimits(max_connections=default_max_connections(raise_open_file_limit()))
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = GatewayState(
        settings.data_dir,
        gpu_interval_s=gpu_interval_s,
        archive=archive,
        jobs=jobs,
        callbacks=callbacks,
        vram_margin_bytes=vram_margin_bytes,
    )
    if load_keepalive_s is not None:
        state.pipeline.warming_keepalive_s = load_keepalive_s
    public_sock = bind_public_socket(settings.listen_host, settings.listen_port)
    admin_sock = bind_admin_socket(settings.socket_path)
    bound_port = public_sock.getsockname()[1]
    public = _Server(public_config(build_public_app(state), state.metrics, limits, drain_timeout_s))
    host = f"[{settings.listen_host}]" if ":" in settings.listen_host else settings.listen_host
    admin_app = build_admin_app(state, socket_path=settings.socket_path, listen=f"{host}:{bound_port}")
    admin = _Server(_uvicorn_config(admin_app, drain_timeout_s))  # the 0600 socket: trusted, defaults

    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[None]] = []  # the job queue's drain, started by the first signal

    def stop(signum: int) -> None:
        log.info(
            "corral-core: %s received, draining %d request(s) in flight (up to %.0fs)",
            signal.Signals(signum).name,
            len(state.live),
            drain_timeout_s,
        )
        public.should_exit = admin.should_exit = True
        if not draining:  # jobs stop being taken now, and drain beside the requests in flight
            draining.append(loop.create_task(state.drain(drain_timeout_s)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await state.start()
        log.info(
            "corral-core %s started: public API http://%s:%d, admin socket %s, data %s, %d provider(s)",
            __version__,
            settings.listen_host,
            bound_port,
            settings.socket_path,
            settings.data_dir,
            len(state.registry),
        )
        log.info(
            "public listener: at most %d open connections; headers within %gs, bodies within %gs, idle keep-alive %gs",
            limits.max_connections,
            limits.header_timeout_s,
            limits.body_timeout_s,
            limits.keep_alive_s,
        )
        await asyncio.gather(public.serve(sockets=[public_sock]), admin.serve(sockets=[admin_sock]))
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for task in draining:
            await task
        await state.close()
        with contextlib.suppress(FileNotFoundError):
            settings.socket_path.unlink()
        log.info("corral-core stopped")
