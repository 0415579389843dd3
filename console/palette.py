"""Command palette entries: every console action in context, by the same ids as its key binding."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from console.actions import ACTIONS
from console.read_only import mutates
from console.widgets.live_table import CURSOR_BINDING_IDS, LiveTable
from console.widgets.panels import split_router_model_key

if TYPE_CHECKING:
    from console.app import CorralApp


def selected_row(screen: Screen[Any]) -> str | None:
    """The focused table's selected row in words ("chat-7b", "router: gemma-2b"), which its keys act on."""
    focused = screen.focused
    if not isinstance(focused, LiveTable):
        return None
    key = focused.cursor_key()
    if key is None:
        return None
    router_model = split_router_model_key(key)
    return (
        f"{router_model[0]}: {router_model[1]}" if router_model else str(focused.get_cell(key, focused.column_keys[0]))
    )


def described(tooltip: str | None, keys: str | None) -> str:
    """An entry's help line: what it does, in words, and the key that does it here."""
    parts = [tooltip] if tooltip else []
    if keys:
        parts.append(f"key: {keys}")
    return " · ".join(parts)


class CorralCommands(Provider):
    def _keys(self) -> dict[str, tuple[str, str | None]]:
        """Binding id -> (its keys as shown, its tooltip), for the bindings active where the palette opened."""
        return {
            active.binding.id: (self.app.get_key_display(active.binding), active.binding.tooltip or None)
            for active in self.screen.active_bindings.values()
            if active.binding.id
        }

    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: CorralApp = self.app  # type: ignore[assignment]  # Provider.app is the base App; only CorralApp lists us
        keys = self._keys()

        def help_for(binding_id: str, fallback: str = "") -> str:
            shown, tooltip = keys.get(binding_id, (None, None))
            return described(tooltip or fallback, shown)

        # First what is wanted before anything is typed: where to go, how it looks, and the keys.
        entries: list[tuple[str, str, Callable[[], object]]] = [
            ("Go to the dashboard", help_for("app.dashboard"), partial(app.switch_mode, "dashboard")),
            ("Open the chat", help_for("app.chat"), partial(app.switch_mode, "chat")),
            ("Theme", "Change the colour theme; the choice is kept in console.json", app.action_change_theme),
            ("Show the keys for this screen", help_for("app.help"), app.action_help),
            (
                "Show the job callbacks (pending, delivered, dead)",
                help_for("app.callbacks"),
                partial(app.switch_mode, "callbacks"),
            ),
        ]
        entries += [
            (help_text, help_for(action_id), partial(app.actions.run, action_id))
            for action_id, (_, help_text) in ACTIONS.items()
            if not (app.read_only and mutates(action_id))
        ]
        # Other corral-cores (console/contexts.py); switching changes nothing on any of them, so read-only keeps it.
        entries += [
            (f"Switch context: {name}", f"follow {context.where()} instead", partial(app.switch_context, name))
            for name, context in app.contexts().items()
            if name != app.context.name
        ]
        # The focused screen's own bindings (cancel a request, load a deployment...) are offered too, named by what
        # they act on and described by their tooltip.
        # self.screen is the screen the palette opened over (while it shows, app.screen is the palette itself).
        target = selected_row(self.screen)
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if (
                binding.id
                and binding.description
                and active.enabled
                and binding.id not in ACTIONS
                and binding.id not in CURSOR_BINDING_IDS  # moving the cursor is for keys, not commands
                and not (app.read_only and mutates(binding.id))
            ):
                name = (
                    f"{binding.description}: {target}"
                    if target and binding.action.startswith("screen.item")
                    else binding.description
                )
                help_text = described(binding.tooltip, self.app.get_key_display(binding))
                entries.append((name, help_text, partial(app.run_action, binding.action, active.node)))
        return entries

    async def discover(self) -> Hits:
        for name, help_text, callback in self._entries():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
