"""`corral daemon status|stop|restart|logs|install`: corral-core itself, and the demo's llama-server with it.

The daemon is found through its own answers (GET /status gives its pid and data directory), never by a guess at a
process name. stop sends SIGTERM, which drains the requests in flight, and waits, bounded, until the socket stops
answering and the process is gone; restart then starts it as the console does (console/daemon_link.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway_core.client import CorralClient, CorralError, DaemonNotRunning
from gateway_core.contracts.views import StatusView

from .cli_format import print_json
from .contexts import Context, ContextError, Invocation
from .daemon_link import LOG_NAME, DaemonStartFailed, ensure_daemon, log_tail
from .daemon_unit import UnitUnavailable, daemon_unit, write_unit
from .format import duration
from .ssh_tunnel import SshTunnel, TunnelFailed, reached

STOP_TIMEOUT_S = 45.0  # the daemon's own drain is at most 30 s
POLL_S = 0.1
FOLLOW_POLL_S = 0.25
DEMO_STOP_S = 10.0
DEMO_PID_FILE = Path("demo") / "llama-server.pid"  # under the data directory, written by console/demo.py


class DaemonCommandFailed(Exception):
    """The command could not do what was asked; the message says what and what to do."""


def _fail(message: str) -> int:
    print(f"corral: {message}", file=sys.stderr)
    return 1


def _context(invocation: Invocation) -> Context:
    try:
        return invocation.context()
    except ContextError as error:
        raise DaemonCommandFailed(str(error)) from None


async def _status(socket_path: Path) -> StatusView | None:
    async with CorralClient(socket_path, timeout=5.0) as client:
        try:
            return await client.status()
        except DaemonNotRunning:
            return None


def fetch_status(context: Context) -> StatusView | None:
    """corral-core's status, through a tunnel for a box over SSH; None when nobody answers."""
    try:
        with reached(context) as socket_path:
            status = asyncio.run(_status(socket_path))
    except TunnelFailed as error:
        raise DaemonCommandFailed(error.message) from None
    except CorralError as error:
        raise DaemonCommandFailed(f"something answers on {context.where()}, but not as corral-core: {error}") from None
    return status


def _local_only(context: Context, verb: str) -> None:
    if context.ssh is not None:
        raise DaemonCommandFailed(
            f"context {context.name!r} is the box {context.ssh}: {verb} its corral-core there "
            f"(`ssh {context.ssh.login} corral daemon {verb}`); this console never starts or signals a remote one"
        )


# -- status ---------------------------------------------------------------------------------------------


def status(args: argparse.Namespace, invocation: Invocation) -> int:
    try:
        context = _context(invocation)
        view = fetch_status(context)
    except DaemonCommandFailed as error:
        return _fail(str(error))
    if view is None:
        if args.json:
            print_json({"running": False, "context": context.name, "where": context.where()})
        else:
            print(f"corral-core is not running: nobody answers on {context.where()} (context {context.name})")
        return 1
    log_path = str(Path(view["data_dir"]) / LOG_NAME)
    if args.json:
        print_json(
            {
                "running": True,
                "context": context.name,
                "where": context.where(),
                "pid": view["pid"],
                "version": view["version"],
                "started_at": view["started_at"],
                "uptime_s": view["uptime_s"],
                "data_dir": view["data_dir"],
                "socket": view["socket"],
                "listen": view["listen"],
                "log": log_path,
            }
        )
        return 0
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(view["started_at"]))
    rows = [
        ("context", f"{context.name} ({context.where()})"),
        ("pid", str(view["pid"]) + (f" on {context.ssh.host}" if context.ssh else "")),
        ("uptime", f"{duration(view['uptime_s'])} (since {started})"),
        ("socket", view["socket"] or "-"),
        ("listen", f"http://{view['listen']}" if view["listen"] else "-"),
        ("data", view["data_dir"]),
        ("log", log_path),
    ]
    print(f"corral-core {view['version']} is running")
    for label, value in rows:
        print(f"  {label:<8}{value}")
    return 0


# -- stop and restart -----------------------------------------------------------------------------------


def stop(args: argparse.Namespace, invocation: Invocation) -> int:
    try:
        context = _context(invocation)
        _local_only(context, "stop")
        view = fetch_status(context)
        data_dir = Path(view["data_dir"]) if view else context.data_dir
        if view is None:
            print(f"corral-core is not running on {context.where()}; nothing to stop")
        else:
            _stop_daemon(view, context, args.timeout)
        if data_dir is not None:  # the demo's server ends with its corral-core; this stops one whose tie broke
            _stop_demo(data_dir)
    except DaemonCommandFailed as error:
        return _fail(str(error))
    return 0


def _stop_daemon(view: StatusView, context: Context, timeout_s: float) -> None:
    pid = view["pid"]
    if not _is_corral_core(pid):
        raise DaemonCommandFailed(
            f"the corral-core on {context.where()} says its pid is {pid}, but no corral-core runs as {pid} here "
            "(is it in a container, another PID namespace?); stop it where it runs"
        )
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended between its answer and the signal
    except PermissionError:
        raise DaemonCommandFailed(
            f"not allowed to signal corral-core (pid {pid}): it runs as another user; stop it as that user or with "
            "`sudo corral daemon stop` (or `systemctl stop corral-core` if systemd runs it)"
        ) from None
    deadline = time.monotonic() + timeout_s
    while not (_process_gone(pid) and not _answers(context)):
        if time.monotonic() >= deadline:
            raise DaemonCommandFailed(
                f"corral-core (pid {pid}) is still running {timeout_s:g} s after SIGTERM (still draining?); "
                f"wait, or force it with `kill -KILL {pid}`"
            )
        time.sleep(POLL_S)
    print(f"stopped corral-core (pid {pid}) on {context.where()}")


def _answers(context: Context) -> bool:
    return fetch_status(context) is not None


def _stop_demo(data_dir: Path) -> None:
    """The demo's llama-server, named by the pid file the demo writes, if that pid is still the demo's server."""
    pid_file = data_dir / DEMO_PID_FILE
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _command_line_mentions(pid, str(data_dir / "demo")):
        pid_file.unlink(missing_ok=True)  # it ended long ago; the pid may be someone else's now
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + DEMO_STOP_S
    while not _process_gone(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if not _process_gone(pid):
        _signal(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print(f"stopped the demo llama-server (pid {pid})")


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just ended by itself
        os.kill(pid, signum)


def restart(args: argparse.Namespace, invocation: Invocation) -> int:
    try:
        context = _context(invocation)
        _local_only(context, "restart")
        view = fetch_status(context)
        if view is not None:
            _stop_daemon(view, context, args.timeout)
            data_dir, listen = Path(view["data_dir"]), view["listen"]
        elif context.data_dir is None:
            raise DaemonCommandFailed(
                f"corral-core is not running on {context.where()}, and context {context.name!r} names no data "
                f"directory to start it in; start it with `corral-core --socket {context.socket} --data-dir DIR`"
            )
        else:
            print(f"corral-core was not running on {context.where()}")
            data_dir, listen = context.data_dir, None
        assert context.socket is not None
        outcome = asyncio.run(ensure_daemon(context.socket, data_dir, listen=listen))
    except DaemonCommandFailed as error:
        return _fail(str(error))
    except DaemonStartFailed as error:
        return _fail(error.message)
    print(f"started corral-core {outcome.version or ''} (pid {outcome.pid}, log {outcome.log_path})")
    return 0


# -- logs -----------------------------------------------------------------------------------------------


def logs(args: argparse.Namespace, invocation: Invocation) -> int:
    try:
        context = _context(invocation)
        view = fetch_status(context)
    except DaemonCommandFailed as error:
        return _fail(str(error))
    if context.ssh is not None:
        return _remote_logs(context, view, args)
    data_dir = Path(view["data_dir"]) if view else context.data_dir
    if data_dir is None:
        return _fail(f"corral-core is not running on {context.where()}; pass --data-dir to read its log")
    log_path = data_dir / LOG_NAME
    if not log_path.exists():
        return _fail(
            f"{log_path} does not exist: corral-core was never started here by the console, or systemd runs it "
            "(then `journalctl -u corral-core`)"
        )
    if args.lines:
        print(log_tail(log_path, args.lines), flush=True)
    if args.follow:
        _follow(log_path)
    return 0


def _remote_logs(context: Context, view: StatusView | None, args: argparse.Namespace) -> int:
    """A box's log, read there by `tail` over the same ssh (its path from the box's own corral-core)."""
    if view is None:
        return _fail(f"no corral-core answers on {context.where()}; read its log on the box itself")
    tail = ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), str(Path(view["data_dir"]) / LOG_NAME)]
    try:
        return subprocess.run([*SshTunnel(context).ssh_args(), shlex.join(tail)], stdin=subprocess.DEVNULL).returncode
    except KeyboardInterrupt:
        return 130


def _follow(log_path: Path) -> None:
    """Print what is appended to the log until interrupted (Ctrl-C); a log cut short is read from its start."""
    with log_path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        while True:
            chunk = log.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
                continue
            if log_path.stat().st_size < log.tell():
                log.seek(0)
            time.sleep(FOLLOW_POLL_S)


# -- install --------------------------------------------------------------------------------------------


def install(args: argparse.Namespace, invocation: Invocation) -> int:
    try:
        unit = daemon_unit(
            user=args.user,
            data_dir=Path(args.data_dir).absolute() if args.data_dir else None,
            socket=args.unit_socket,
            listen=args.listen,
        )
    except UnitUnavailable as error:
        print(f"corral: {error}", file=sys.stderr)
        return 2
    path = unit.path(Path(args.unit_dir) if args.unit_dir else None)
    text = unit.render()
    if args.dry_run:
        print(f"# {path}")
        print(text, end="")
        print(f"\n# then: {unit.next_commands()[0]}")
        return 0
    try:
        write_unit(path, text)
    except OSError as error:
        hint = " (a system unit needs root: sudo, or --user)" if isinstance(error, PermissionError) else ""
        return _fail(f"cannot write {path}: {error.strerror}{hint}")
    print(f"wrote {path}")
    print(f"next: {unit.next_commands()[0]}")
    if not args.user:
        print(f"the console and CLI reach it with --socket {unit.socket} (or CORRAL_SOCKET={unit.socket})")
    return 0


# -- processes ------------------------------------------------------------------------------------------


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_corral_core(pid: int) -> bool:
    words = _command_line(pid)
    return any(word.endswith("corral-core") or word == "gateway_core.cli" for word in words)


def _command_line_mentions(pid: int, text: str) -> bool:
    return not _process_gone(pid) and any(text in word for word in _command_line(pid))


def _process_gone(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (it no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
