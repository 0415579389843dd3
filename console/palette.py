"""Command palette entries: every console action in context, by the same ids as its key binding."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.actions import ACTIONS

if TYPE_CHECKING:
    from console.app import CorralApp


class CorralCommands(Provider):
    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: CorralApp = self.app  # type: ignore[assignment]  # Provider.app is the base App; only CorralApp lists us
        entries: list[tuple[str, str, Callable[[], object]]] = [
            (help_text, f"[{action_id}]", partial(app.actions.run, action_id))
            for action_id, (_, help_text) in ACTIONS.items()
        ]
        entries += [
            ("Go to the dashboard", "[app.dashboard]", partial(app.switch_mode, "dashboard")),
            ("Open the chat", "[app.chat]", partial(app.switch_mode, "chat")),
            (
                "Show the job callbacks (pending, delivered, dead)",
                "[app.callbacks]",
                partial(app.switch_mode, "callbacks"),
            ),
            ("Show the keys for this screen", "[app.help]", app.action_help),
        ]
        # The focused screen's own bindings (cancel a request, stop a deployment...) are offered too.
        for active in app.active_bindings.values():
            binding = active.binding
            if binding.id and binding.description and active.enabled and binding.id not in ACTIONS:
                entries.append(
                    (binding.description, f"[{binding.id}]", partial(app.run_action, binding.action, active.node))
                )
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
