"""What the console's management keys do: open a form or a confirmation, then ask corral-core.

A mixin for CorralApp, so the app module stays about wiring. Every call goes through the admin
client in a worker; refusals come back as notifications with the daemon's own message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from textual import work

from console.screens.confirm import ConfirmScreen
from console.screens.deploy_form import DeployForm
from console.screens.key_forms import KeyCreateForm, KeyEditForm
from console.screens.logs import LogsScreen
from console.screens.provider_form import ProviderForm
from gateway_core.client import CorralError

if TYPE_CHECKING:
    from gateway_core.client import CorralClient

# Action ids (also Binding ids and palette entries) -> method name on ConsoleActions.
ACTIONS: dict[str, tuple[str, str]] = {
    "provider.add": ("add_provider", "Add a provider endpoint"),
    "key.create": ("create_key", "Create an API key"),
    "fleet.deploy": ("deploy_model", "Deploy a GGUF model"),
    "fleet.export": ("export_compose", "Export the fleet as docker-compose.yml"),
}


class ConsoleActions:
    client: CorralClient

    def act_on(self, section: str, key: str, action: str) -> None:
        """An action on one row of the dashboard: a provider by name, a key by id, a deployment by name."""
        live = self.live  # type: ignore[attr-defined]
        if section == "providers" and key in live.providers:
            provider = live.providers[key]
            if action == "edit":
                self.edit_provider(provider)
            elif action == "toggle":
                enabled = not provider.get("enabled", True)
                self._call_daemon(
                    lambda: self.client.update_provider(key, enabled=enabled),
                    f"{'enabled' if enabled else 'disabled'} provider {key}",
                )
            elif action == "remove":
                self.remove_provider(key)
        elif section == "keys" and key in live.keys:
            found = live.keys[key]
            if action == "edit":
                self.edit_key(found)
            elif action == "revoke":
                self.revoke_key(key, found["name"])
            elif action == "remove":
                self.confirm_then(
                    f"Delete key {found['name']} ({key})?",
                    "This cannot be undone.",
                    lambda: self.client.remove_key(key),
                    f"deleted key {found['name']}",
                )
        elif section == "fleet":
            deployment = next((d for d in live.fleet.get("deployments", []) if key in (d["name"], d["container"])), {})
            key = deployment.get("name", key)  # rows are keyed by container; the daemon wants the deployment
            if action == "logs":
                self.show_logs(key)
            elif action == "toggle":
                self.control_deployment(key, "stop" if deployment.get("state") == "running" else "start")
            elif action == "restart":
                self.control_deployment(key, "restart")
            elif action == "remove":
                self.remove_deployment(key)

    def run_action_id(self, action_id: str) -> None:
        method, _ = ACTIONS[action_id]
        getattr(self, method)()

    # -- forms ----------------------------------------------------------------------------------------

    def add_provider(self) -> None:
        self.push_screen(ProviderForm(), self._saved("provider"))  # type: ignore[attr-defined]

    def edit_provider(self, provider: dict[str, Any]) -> None:
        self.push_screen(ProviderForm(provider), self._saved("provider"))  # type: ignore[attr-defined]

    def create_key(self) -> None:
        self.push_screen(KeyCreateForm(), self._saved("key"))  # type: ignore[attr-defined]

    def edit_key(self, key: dict[str, Any]) -> None:
        self.push_screen(KeyEditForm(key), self._saved("key"))  # type: ignore[attr-defined]

    def deploy_model(self) -> None:
        self.push_screen(DeployForm(), self._saved("deployment"))  # type: ignore[attr-defined]

    def show_logs(self, deployment: str) -> None:
        self.push_screen(LogsScreen(deployment))  # type: ignore[attr-defined]

    def _saved(self, what: str) -> Callable[[dict[str, Any] | None], None]:
        def done(result: dict[str, Any] | None) -> None:
            if result:
                name = result.get("name") or result.get("deployment", {}).get("name", "")
                self.notify(f"{what} {name} saved")  # type: ignore[attr-defined]

        return done

    # -- destructive actions, confirmed first --------------------------------------------------------

    def confirm_then(self, question: str, detail: str, call: Callable[[], Awaitable[Any]], done: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._call_daemon(call, done)

        self.push_screen(ConfirmScreen(question, detail), answered)  # type: ignore[attr-defined]

    def remove_provider(self, name: str) -> None:
        self.confirm_then(
            f"Remove provider {name}?",
            "Requests for its models go to other providers, if any.",
            lambda: self.client.remove_provider(name),
            f"removed provider {name}",
        )

    def revoke_key(self, key_id: str, name: str) -> None:
        self.confirm_then(
            f"Revoke key {name} ({key_id})?",
            "Apps using it are refused from their next request.",
            lambda: self.client.revoke_key(key_id),
            f"revoked key {name}",
        )

    def remove_deployment(self, name: str) -> None:
        self.confirm_then(
            f"Remove deployment {name}?",
            "Its container and its provider are removed.",
            lambda: self.client.remove_deployment(name),
            f"removed deployment {name}",
        )

    def control_deployment(self, name: str, action: str) -> None:
        if action == "stop":
            self.confirm_then(
                f"Stop deployment {name}?",
                "It stops serving until started again.",
                lambda: self.client.control_deployment(name, "stop"),
                f"stopped {name}",
            )
        else:
            self._call_daemon(lambda: self.client.control_deployment(name, action), f"{name}: {action} done")

    def cancel_live_request(self, request_id: str) -> None:
        self._call_daemon(lambda: self.client.cancel_request(request_id), f"cancelled {request_id}")

    def export_compose(self) -> None:
        self._export_compose()

    @work(group="daemon-calls")
    async def _export_compose(self) -> None:
        try:
            text = await self.client.export_compose()
        except CorralError as error:
            self.notify(error.message, title="export failed", severity="error")  # type: ignore[attr-defined]
            return
        self.copy_to_clipboard(text)  # type: ignore[attr-defined]
        self.notify(
            f"docker-compose.yml copied to the clipboard ({len(text.splitlines())} lines); "  # type: ignore[attr-defined]
            "`corral fleet export-compose -o FILE` writes it to a file"
        )

    @work(group="daemon-calls")
    async def _call_daemon(self, call: Callable[[], Awaitable[Any]], done: str) -> None:
        try:
            await call()
        except CorralError as error:
            self.notify(error.message, title="corral-core refused", severity="error")  # type: ignore[attr-defined]
        else:
            self.notify(done)  # type: ignore[attr-defined]
