"""Contexts: the corral-cores the console and the CLI know by name, each a local socket or a box reached over SSH.

They live in console.json (console/settings.py) as `"contexts": {NAME: FIELDS}` with `"context": NAME` the
current one. The built-in context "default" is the local socket the flags and environment name. A remote box's
admin socket is forwarded by ssh (console/ssh_tunnel.py); no admin API is ever opened on TCP.

    context = chosen(settings, name=None, default=default_context(socket_path, data_dir))
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .cli_format import print_json, table
from .settings import ConsoleSettings

DEFAULT = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*=\S.*")


class ContextError(ValueError):
    """A context that cannot be used as given; the message says which and what to fix."""


@dataclass(frozen=True, slots=True)
class SshDestination:
    """`[user@]host[:port]`, as ssh takes it (the port apart, as -p)."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SshDestination:
        user, _, rest = text.rpartition("@")
        host, port = rest, None
        if rest.startswith("["):  # [::1]:2222
            close = rest.find("]")
            host, tail = rest[: close + 1], rest[close + 1 :]
            if tail:
                port = _port(text, tail.removeprefix(":"))
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
            port = _port(text, port_text)
        if (user and not _USER.fullmatch(user)) or not _HOST.fullmatch(host):
            raise ContextError(f"{text!r} is not an SSH destination such as admin@gpu-box or admin@10.0.0.5:2222")
        return cls(host=host.strip("[]"), user=user or None, port=port)

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        where = f"{self.user}@{host}" if self.user else host
        return f"{where}:{self.port}" if self.port else where


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ContextError(f"{text!r}: the port {port!r} is not a number from 1 to 65535")
    return int(port)


@dataclass(frozen=True, slots=True)
class Context:
    """One corral-core: a local socket (`socket`), or a box over SSH (`ssh`) and the admin socket there."""

    name: str
    socket: Path | None = None
    data_dir: Path | None = None  # a local context's: corral-core is started there when nobody answers
    ssh: SshDestination | None = None
    identity: Path | None = None  # ssh -i
    remote_socket: str | None = None  # None: the default socket of the remote user, asked over ssh
    ssh_options: tuple[str, ...] = field(default=())  # each passed as ssh -o KEY=VALUE

    @property
    def remote(self) -> bool:
        return self.ssh is not None

    @property
    def autostart(self) -> bool:
        """Only a local corral-core whose data directory is known is ever started; a remote box never is."""
        return self.ssh is None and self.data_dir is not None

    def where(self) -> str:
        """Where it is, in a few words, for the header and `corral context list`."""
        if self.ssh is None:
            return str(self.socket)
        return f"ssh {self.ssh} {self.remote_socket or '(its default socket)'}"

    def fields(self) -> dict[str, object]:
        """What console.json keeps."""
        saved: dict[str, object] = {}
        if self.socket is not None:
            saved["socket"] = str(self.socket)
        if self.data_dir is not None:
            saved["data_dir"] = str(self.data_dir)
        if self.ssh is not None:
            saved["ssh"] = str(self.ssh)
        if self.identity is not None:
            saved["identity"] = str(self.identity)
        if self.remote_socket is not None:
            saved["remote_socket"] = self.remote_socket
        if self.ssh_options:
            saved["ssh_options"] = list(self.ssh_options)
        return saved

    @classmethod
    def from_fields(cls, name: str, saved: dict[str, object]) -> Context:
        def text(key: str) -> str | None:
            value = saved.get(key)
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise ContextError(f"context {name!r}: {key} must be a non-empty string")
            return value

        options = saved.get("ssh_options", [])
        if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
            raise ContextError(f"context {name!r}: ssh_options must be a list of KEY=VALUE strings")
        socket, ssh, data_dir, identity = text("socket"), text("ssh"), text("data_dir"), text("identity")
        return make_context(
            name,
            socket=Path(socket) if socket else None,
            ssh=ssh,
            data_dir=Path(data_dir) if data_dir else None,
            identity=Path(identity) if identity else None,
            remote_socket=text("remote_socket"),
            ssh_options=[str(option) for option in options],
        )


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ContextError(f"{name!r} is not a context name: use letters, digits, '.', '_' and '-' (at most 63)")
    return name


def make_context(
    name: str,
    *,
    socket: Path | None = None,
    ssh: str | None = None,
    data_dir: Path | None = None,
    identity: Path | None = None,
    remote_socket: str | None = None,
    ssh_options: list[str] | None = None,
) -> Context:
    """A context from what an operator typed or console.json kept; ContextError says what is wrong with it."""
    check_name(name)
    if (socket is None) == (ssh is None):
        raise ContextError(f"context {name!r} needs either a local socket (--socket) or an SSH destination (--ssh)")
    if ssh is None and (identity or remote_socket or ssh_options):
        raise ContextError(f"context {name!r}: --identity, --remote-socket and --ssh-option go with --ssh")
    if ssh is not None and data_dir is not None:
        raise ContextError(f"context {name!r}: --data-dir is for a local socket; a remote box is never started")
    if remote_socket is not None and not remote_socket.startswith("/"):
        raise ContextError(f"context {name!r}: the remote socket {remote_socket!r} must be an absolute path")
    for option in ssh_options or []:
        if not _OPTION.fullmatch(option):
            raise ContextError(f"context {name!r}: ssh option {option!r} is not KEY=VALUE (as ssh -o takes it)")
    try:
        destination = SshDestination.parse(ssh) if ssh is not None else None
    except ContextError as error:
        raise ContextError(f"context {name!r}: {error}") from None
    return Context(
        name=name,
        socket=socket.absolute() if socket else None,
        data_dir=data_dir.absolute() if data_dir else None,
        ssh=destination,
        identity=identity.expanduser().absolute() if identity else None,
        remote_socket=remote_socket,
        ssh_options=tuple(ssh_options or ()),
    )


def default_context(socket_path: Path, data_dir: Path) -> Context:
    """The built-in context: the socket the flags and environment name, started in `data_dir` when silent."""
    return Context(name=DEFAULT, socket=socket_path, data_dir=data_dir)


def saved_contexts(settings: ConsoleSettings) -> tuple[dict[str, Context], list[str]]:
    """The contexts console.json names, and a line for each one that cannot be used (the others still can)."""
    found: dict[str, Context] = {}
    problems = []
    for name, saved in sorted(settings.contexts.items()):
        try:
            found[name] = Context.from_fields(name, saved)
        except ContextError as error:
            problems.append(f"{error}; fix or remove it with `corral context remove {name}`")
    return found, problems


def all_contexts(settings: ConsoleSettings, default: Context) -> dict[str, Context]:
    """The built-in default first, then the saved ones by name."""
    return {DEFAULT: default, **saved_contexts(settings)[0]}


def chosen(settings: ConsoleSettings, name: str | None, default: Context, *, explicit_socket: bool) -> Context:
    """The context a command runs against: `name` (from --context), else the default when a socket was named
    (--socket, $CORRAL_SOCKET), else the current one console.json remembers, else the default."""
    if name is None:
        if explicit_socket or settings.context in (None, DEFAULT):
            return default
        name = settings.context
    if name == DEFAULT:
        return default
    saved = settings.contexts.get(name)
    if saved is None:
        known = ", ".join([DEFAULT, *sorted(settings.contexts)])
        raise ContextError(f"no context named {name!r} (known: {known}); add it with `corral context add {name} ...`")
    return Context.from_fields(name, saved)


def remember_current(settings: ConsoleSettings, name: str, path: Path | None = None) -> None:
    settings.context = None if name == DEFAULT else name
    settings.save(path)


# -- `corral context list|add|remove|use` -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a command line chose: console.json, the built-in default, and --context (resolved on demand, so
    `corral context ...` still works when the remembered context is broken)."""

    settings: ConsoleSettings
    default: Context
    name: str | None = None  # --context
    explicit_socket: bool = False  # --socket or $CORRAL_SOCKET named the default's socket
    settings_path: Path | None = None

    def context(self) -> Context:
        return chosen(self.settings, self.name, self.default, explicit_socket=self.explicit_socket)


def add_context_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("context", help="the corral-cores this console knows: local sockets and boxes over SSH")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the contexts; * marks the current one")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(standalone=context_list)
    add = actions.add_parser(
        "add",
        help="add a context: --socket PATH, or --ssh user@host[:port] for a box whose socket ssh forwards",
        description="Add a context. A remote box is reached with your own ssh (keys or an agent; it never prompts) "
        "and its admin socket is forwarded to a private local one; nothing is opened on TCP.",
    )
    add.add_argument("name", metavar="NAME")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", dest="context_socket", metavar="PATH", help="a corral-core's socket on this machine")
    where.add_argument("--ssh", metavar="USER@HOST[:PORT]", help="a box reached over SSH")
    add.add_argument("--identity", metavar="FILE", help="the private key ssh uses (ssh -i)")
    add.add_argument(
        "--remote-socket", metavar="PATH", help="corral-core's socket on the box (default: the box user's default)"
    )
    add.add_argument(
        "--ssh-option", action="append", metavar="KEY=VALUE", help="passed to ssh as -o KEY=VALUE (repeatable)"
    )
    add.add_argument(
        "--context-data-dir",
        metavar="DIR",
        help="for --socket: corral-core's data directory, to start it there when nobody answers",
    )
    add.add_argument("--use", action="store_true", help="make it the current context too")
    add.set_defaults(standalone=context_add)
    for name, handler, help_ in (
        ("remove", context_remove, "forget a context (the box itself is untouched)"),
        ("use", context_use, f"make a context the current one ('{DEFAULT}': the local default socket)"),
    ):
        actions.add_parser(name, help=help_).set_defaults(standalone=handler)
        actions.choices[name].add_argument("name", metavar="NAME")


def context_list(args: argparse.Namespace, invocation: Invocation) -> int:
    saved, problems = saved_contexts(invocation.settings)
    current = invocation.settings.context or DEFAULT
    every = {DEFAULT: invocation.default, **saved}
    if args.json:
        print_json([{"name": name, "current": name == current, **context.fields()} for name, context in every.items()])
    else:
        rows = [
            ["*" if name == current else "", name, "ssh" if context.remote else "socket", context.where()]
            for name, context in every.items()
        ]
        print(table(["", "NAME", "KIND", "WHERE"], rows))
    for problem in problems:
        print(f"corral: {problem}", file=sys.stderr)
    return 0


def context_add(args: argparse.Namespace, invocation: Invocation) -> int:
    settings = invocation.settings
    if args.name == DEFAULT or args.name in settings.contexts:
        print(f"corral: a context named {args.name!r} exists; remove it first or pick another name", file=sys.stderr)
        return 1
    try:
        context = make_context(
            args.name,
            socket=Path(args.context_socket) if args.context_socket else None,
            ssh=args.ssh,
            data_dir=Path(args.context_data_dir) if args.context_data_dir else None,
            identity=Path(args.identity) if args.identity else None,
            remote_socket=args.remote_socket,
            ssh_options=args.ssh_option,
        )
    except ContextError as error:
        print(f"corral: {error}", file=sys.stderr)
        return 2
    settings.contexts[context.name] = context.fields()
    if args.use:
        settings.context = context.name
    settings.save(invocation.settings_path)
    print(f"added context {context.name}: {context.where()}" + (" (now current)" if args.use else ""))
    return 0


def context_remove(args: argparse.Namespace, invocation: Invocation) -> int:
    settings = invocation.settings
    if args.name not in settings.contexts:
        print(f"corral: no context named {args.name!r}; `corral context list` shows them", file=sys.stderr)
        return 1
    del settings.contexts[args.name]
    was_current = settings.context == args.name
    if was_current:
        settings.context = None
    settings.save(invocation.settings_path)
    print(f"removed context {args.name}" + (f"; the current context is now {DEFAULT}" if was_current else ""))
    return 0


def context_use(args: argparse.Namespace, invocation: Invocation) -> int:
    settings = invocation.settings
    if args.name != DEFAULT:
        try:
            chosen(settings, args.name, invocation.default, explicit_socket=False)
        except ContextError as error:
            print(f"corral: {error}", file=sys.stderr)
            return 1
    remember_current(settings, args.name, invocation.settings_path)
    print(f"the current context is {args.name}")
    return 0
