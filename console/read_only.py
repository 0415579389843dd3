"""Read-only mode (`corral --read-only`, or `"read_only": true` in console.json): a console that can look at
everything and change nothing.

Every binding and palette command has an id, and every id is named here once: MUTATING (it changes something in
corral-core, the fleet or the queue) or READS (it only looks, moves, or changes the console's own view). A test
lists every binding of every screen and widget and fails on an id in neither, so a new key cannot slip past.

The chat stays: it spends tokens under the admin identity but changes no state. `fleet.export` writes a
docker-compose file the operator asked for and changes nothing in Corral, so it stays too.
"""

from __future__ import annotations

from textual import actions
from textual.binding import Binding
from textual.dom import DOMNode, NoScreen

MUTATING: frozenset[str] = frozenset(
    {
        "fleet.deploy",
        "fleet.toggle",
        "fleet.restart",
        "fleet.load",
        "fleet.unload",
        "fleet.pin",
        "fleet.mode",
        "fleet.remove",
        "provider.add",
        "provider.edit",
        "provider.toggle",
        "provider.remove",
        "provider.load_model",
        "provider.unload_model",
        "key.create",
        "key.edit",
        "key.revoke",
        "key.remove",
        "request.cancel",
        "job.cancel",
        "job.retry",
        "callback.redeliver",
        # Only reached from a mutating action (a form, a confirmation), which read-only mode never opens.
        "form.save",
        "confirm.yes",
    }
)

READS: frozenset[str] = frozenset(
    {
        "app.help",
        "app.dashboard",
        "app.chat",
        "app.history",
        "app.usage",
        "app.callbacks",
        "app.quit",
        "fleet.logs",
        "fleet.detail",
        "fleet.export",
        "job.open",
        "job.back",
        "deployment.back",
        "callbacks.filter",
        "callbacks.refresh",
        "chat.send",
        "chat.stop",
        "chat.clear",
        "chat.copy",
        "confirm.no",
        "form.cancel",
        "help.close",
        "history.open",
        "history.filter",
        "history.refresh",
        "history.list",
        "history.back",
        "history.raw",
        "key.copy",
        "key.copy_webhook_secret",
        "key.done",
        "provider.test",
        "provider.test_detail",
        "usage.metric",
        "usage.group",
        "usage.range",
        "usage.bucket",
        "usage.refresh",
        "table.up",
        "table.down",
        "table.page_up",
        "table.page_down",
        "table.first",
        "table.last",
        "table.left",
        "table.right",
        "table.filter",
        "table.clear_filter",
        "table.filter_clear",
        "table.filter_done",
        "table.sort",
        "table.reverse",
        "logs.back",
        "logs.bottom",
        "logs.copy",
        "logs.down",
        "logs.follow",
        "logs.last_hour",
        "logs.last_minute",
        "logs.matching",
        "logs.next",
        "logs.previous",
        "logs.save",
        "logs.search",
        "logs.timestamps",
        "logs.top",
        "logs.up",
        "logs.wrap",
        "logs.last_100",
        "logs.last_1000",
        "logs.last_15m",
        "key.detail",
        "provider.detail",
        "request.detail",
        "detail.back",
        "detail.copy_json",
        "detail.copy_yaml",
        "detail.refresh",
        "gpu.history",
        "gpu.processes",
        "provider.history",
        "charts.back",
        "charts.next_window",
        "charts.window_1",
        "charts.window_5",
        "charts.window_15",
        "charts.window_60",
        "processes.back",
        "processes.refresh",
    }
)

SUB_TITLE = "read-only"
REFUSAL = 'this console is read-only: start `corral` without --read-only (and without "read_only" in console.json)'


def mutates(binding_id: str | None) -> bool:
    return binding_id in MUTATING


def is_read_only(node: DOMNode) -> bool:
    return bool(getattr(node.app, "read_only", False))


def refuses(node: DOMNode, action: str, parameters: tuple[object, ...]) -> bool:
    """For a `check_action`: True when the console is read-only and `action` is what a mutating binding on the
    focused widget's chain (or on `node`) runs."""
    if not is_read_only(node):
        return False
    try:
        screen = node.screen
    except NoScreen:  # not mounted: nothing can press its keys yet
        return False
    focused = screen.focused
    chain = [node, *(focused.ancestors_with_self if focused is not None else (screen,))]
    wanted = (action, tuple(parameters))
    return any(wanted in _mutating_actions(type(each)) for each in chain)


Actions = frozenset[tuple[str, tuple[object, ...]]]
_ACTIONS_BY_CLASS: dict[type[DOMNode], Actions] = {}


def _mutating_actions(cls: type[DOMNode]) -> Actions:
    """(action name, parameters) of every mutating binding the class declares or inherits."""
    known = _ACTIONS_BY_CLASS.get(cls)
    if known is None:
        found: set[tuple[str, tuple[object, ...]]] = set()
        for klass in cls.__mro__:
            for binding in vars(klass).get("BINDINGS", ()):
                if isinstance(binding, Binding) and mutates(binding.id):
                    _, name, parameters = actions.parse(binding.action)
                    found.add((name, tuple(parameters)))
        known = _ACTIONS_BY_CLASS[cls] = frozenset(found)
    return known
