"""What the console's management keys do: open a form or a confirmation, then ask corral-core.

`ConsoleActions` is a collaborator the app holds, not a part of the app: it is given the app (to push screens,
notify and run workers), the admin client and the live state, and uses nothing else. Every daemon call runs
in an app worker; refusals come back as notifications with the daemon's own message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from textual.app import App

from console.live_state import LiveState
from console.read_only import REFUSAL, mutates
from console.screens.confirm import ConfirmScreen
from console.screens.deploy_form import DeployForm
from console.screens.deployment_detail import DeploymentDetailScreen
from console.screens.detail import KeyDetailScreen, ProviderDetailScreen, RequestDetailScreen
from console.screens.job_detail import JobDetailScreen
from console.screens.key_forms import KeyCreateForm, KeyEditForm
from console.screens.logs import LogsScreen
from console.screens.provider_form import ProviderForm
from console.widgets.panels import finished_request_id, split_router_model_key
from gateway_core.client import CorralClient, CorralError
from gateway_core.contracts.fleet_views import OnDemandView
from gateway_core.contracts.jobs import FINAL_STATES, DeliveryView, JobView
from gateway_core.contracts.views import KeyView, ProviderView

DAEMON_CALLS = "daemon-calls"  # the worker group every call to corral-core from an action runs in
SECTION_IDS = {"providers": "provider", "keys": "key", "jobs": "job"}  # a dashboard section -> its binding ids' prefix


class ConsoleActions:
    def __init__(self, app: App[Any], client: CorralClient, live: LiveState) -> None:
        self.app = app
        self.client = client
        self.live = live

    def refused(self, action_id: str) -> bool:
        """True (and says why) when the console is read-only and this action would change something: the keys
        are not offered then, and this stops one that comes another way."""
        if getattr(self.app, "read_only", False) and mutates(action_id):
            self.app.notify(REFUSAL, title="read-only", severity="warning")
            return True
        return False

    def act_on(self, section: str, key: str, action: str) -> None:
        """An action on one row of the dashboard: a provider by name, a key by id, a deployment by name."""
        if self.refused(f"{SECTION_IDS.get(section, section)}.{action}"):
            return
        live = self.live
        router_model = split_router_model_key(key) if section == "providers" else None
        if router_model is not None:
            key = router_model[0]  # a router model's row: the provider's actions act on its provider
        if section == "providers" and action in ("load_model", "unload_model"):
            self.router_model_action(key, router_model[1] if router_model else None, action)
        elif section == "providers" and key in live.providers:
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
            elif action == "detail":
                self.app.push_screen(ProviderDetailScreen(key))
        elif section == "keys" and key in live.keys:
            found = live.keys[key]
            if action == "edit":
                self.edit_key(found)
            elif action == "revoke":
                self.revoke_key(found)
            elif action == "detail":
                self.app.push_screen(KeyDetailScreen(key))
            elif action == "remove":
                self.confirm_then(
                    f"Delete key {found['name']} ({key})?",
                    "This cannot be undone.",
                    lambda: self.client.remove_key(key),
                    f"deleted key {found['name']}",
                )
        elif section == "fleet":
            deployment = next((d for d in live.fleet["deployments"] if key in (d["name"], d["container"])), None)
            if deployment is not None:
                key = deployment["name"]  # rows are keyed by container; the daemon wants the deployment
            if action == "logs":
                self.show_logs(key)
            elif action == "toggle":
                running = deployment is not None and deployment["state"] == "running"
                self.control_deployment(key, "stop" if running else "start")
            elif action == "restart":
                self.control_deployment(key, "restart")
            elif action == "remove":
                self.remove_deployment(key)
            elif action in ("load", "unload", "pin", "mode", "detail"):
                self.on_demand_action(key, action)
        elif section == "jobs" and key in live.jobs.recent:
            if action == "cancel":
                self.cancel_job(live.jobs.recent[key])
            elif action == "retry":
                self.retry_job(live.jobs.recent[key])
            elif action == "open":
                self.app.push_screen(JobDetailScreen(key))
        elif section == "requests" and action == "detail":
            self.app.push_screen(RequestDetailScreen(finished_request_id(key) or key))  # a finished row's too

    def run(self, action_id: str) -> None:
        """The action with this id (see ACTIONS): from a key binding or the command palette."""
        method, _ = ACTIONS[action_id]
        if not self.refused(action_id):
            method(self)

    # -- forms ----------------------------------------------------------------------------------------

    def add_provider(self) -> None:
        self.app.push_screen(ProviderForm(), self._saved("provider"))

    def edit_provider(self, provider: ProviderView) -> None:
        self.app.push_screen(ProviderForm(provider), self._saved("provider"))

    def create_key(self) -> None:
        self.app.push_screen(KeyCreateForm(), self._saved("key"))

    def edit_key(self, key: KeyView) -> None:
        self.app.push_screen(KeyEditForm(key), self._saved("key"))

    def deploy_model(self) -> None:
        self.app.push_screen(DeployForm(), self._saved("deployment"))

    def show_logs(self, deployment: str) -> None:
        self.app.push_screen(LogsScreen(deployment))

    def _saved(self, what: str) -> Callable[[Mapping[str, Any] | None], None]:
        def done(result: Mapping[str, Any] | None) -> None:
            if result:
                name = result.get("name") or result.get("deployment", {}).get("name", "")
                self.app.notify(f"saved {what} {name}")

        return done

    # -- destructive actions, confirmed first --------------------------------------------------------

    def confirm_then(
        self, question: str, detail: str, call: Callable[[], Awaitable[object]], done: str, *, yes_label: str = "Yes"
    ) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._call_daemon(call, done)

        self.app.push_screen(ConfirmScreen(question, detail, yes_label=yes_label), answered)

    def remove_provider(self, name: str) -> None:
        self.confirm_then(
            f"Remove provider {name}?",
            "Requests for its models go to other providers, if any.",
            lambda: self.client.remove_provider(name),
            f"removed provider {name}",
        )

    def revoke_key(self, key: KeyView) -> None:
        key_id, name = key["id"], key["name"]
        if key["revoked"]:  # nothing left to revoke: what can still be done is deleting it
            self.confirm_then(
                f"Key {name} ({key_id}) is already revoked. Delete it?",
                "It is refused already; deleting removes it from the list for good. This cannot be undone.",
                lambda: self.client.remove_key(key_id),
                f"deleted key {name}",
                yes_label="Delete",
            )
            return
        self.confirm_then(
            f"Revoke key {name} ({key_id})?",
            "Apps using it are refused from their next request.",
            lambda: self.client.revoke_key(key_id),
            f"revoked key {name}",
            yes_label="Revoke",
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
                f"stopped deployment {name}",
            )
        else:
            done = {"start": "started", "restart": "restarted"}.get(action, f"did {action} on")
            self._call_daemon(lambda: self.client.control_deployment(name, action), f"{done} deployment {name}")

    # -- models on demand -----------------------------------------------------------------------------

    def on_demand_action(self, name: str, action: str) -> None:
        """Load, unload, pin or unpin, switch the mode of, or show one of Corral's deployments."""
        if action == "detail":
            self.app.push_screen(DeploymentDetailScreen(name))
            return
        view = self.live.on_demand.get(name)
        if view is None:
            self.app.notify(
                f"{name} is not one of Corral's deployments (corral-core lists no load state for it)",
                severity="warning",
            )
        elif action == "load":
            self.load_deployment(view)
        elif action == "unload":
            self.unload_deployment(view)
        elif action == "pin":
            pin = not view["policy"]["pin"]
            self._call_daemon(
                lambda: self.client.set_load_policy(name, pin=pin),
                f"{'pinned' if pin else 'unpinned'} deployment {name}"
                + (": it is never evicted to make room" if pin else ": it may be evicted when idle"),
            )
        elif action == "mode":
            mode = "always" if view["policy"]["mode"] == "on-demand" else "on-demand"
            self._call_daemon(
                lambda: self.client.set_load_policy(name, mode=mode), f"switched deployment {name} to {mode}"
            )

    def load_deployment(self, view: OnDemandView) -> None:
        name = view["name"]
        if view["state"] == "warm":
            self.app.notify(f"deployment {name} is already warm", severity="warning")
            return
        self.app.notify(f"loading deployment {name}…", timeout=3)
        self._call_daemon(
            lambda: self.client.load_deployment(name), f"loaded deployment {name}: it is warm", title="load failed"
        )

    def unload_deployment(self, view: OnDemandView) -> None:
        name = view["name"]
        if view["state"] == "cold":
            self.app.notify(f"deployment {name} is already cold", severity="warning")
            return
        in_flight = max(view["in_flight"], self.live.in_flight(name))
        if in_flight:
            # Its requests run on; the daemon waits up to 30 s for them before it stops the server.
            self.confirm_then(
                f"Unload {name}? {in_flight} request{'s' if in_flight > 1 else ''} in flight",
                "corral-core waits up to 30 s for them to end, then stops its server; a later request loads it again.",
                lambda: self.client.unload_deployment(name),
                f"unloaded deployment {name}",
            )
        else:
            self._call_daemon(lambda: self.client.unload_deployment(name), f"unloaded deployment {name}")

    def router_model_action(self, provider: str, model: str | None, action: str) -> None:
        found = self.live.providers.get(provider)
        if found is None:
            return
        if found["router_models"] is None:
            self.app.notify(f"{provider} is not a router-mode llama-server: it has one model", severity="warning")
            return
        if model is None:
            self.app.notify(f"choose one of {provider}'s models: the rows under it", severity="warning")
            return
        if action == "load_model":
            self._call_daemon(
                lambda: self.client.load_provider_model(provider, model), f"loaded model {model} on provider {provider}"
            )
        else:
            self._call_daemon(
                lambda: self.client.unload_provider_model(provider, model),
                f"unloaded model {model} on provider {provider}",
            )

    def cancel_job(self, job: JobView) -> None:
        if job["state"] in FINAL_STATES:
            self.app.notify(f"job {job['id']} has already {job['state']}: nothing to cancel", severity="warning")
            return
        running = job["state"] == "running"
        self.confirm_then(
            f"Cancel job {job['id']} ({job['model']})?",
            "Its upstream request is cancelled and its slot freed." if running else "It leaves the queue unrun.",
            lambda: self.client.cancel_job(job["id"]),
            f"cancelled job {job['id']}",
        )

    def retry_job(self, job: JobView) -> None:
        if job["state"] not in ("failed", "cancelled"):
            self.app.notify(
                f"job {job['id']} is {job['state']}: only a failed or cancelled job can be retried", severity="warning"
            )
            return
        self.confirm_then(
            f"Retry job {job['id']} ({job['model']})?",
            "It is queued again and runs on free capacity; its callback, if any, is sent again when it ends.",
            lambda: self.client.retry_job(job["id"]),
            f"retried job {job['id']}: it is queued again",
        )

    def redeliver(self, delivery: DeliveryView) -> None:
        if self.refused("callback.redeliver"):
            return
        self.confirm_then(
            f"Redeliver {delivery['id']} ({delivery['type']}) to {delivery['url']}?",
            "The receiver gets it again (the same webhook-id), on a fresh retry schedule.",
            lambda: self.client.redeliver(delivery["id"]),
            f"redelivered callback {delivery['id']}: it is pending again",
        )

    def cancel_live_request(self, request_id: str) -> None:
        if self.refused("request.cancel"):
            return
        self._call_daemon(
            lambda: self.client.cancel_request(request_id), f"cancelled {self.describe_request(request_id)}"
        )

    def describe_request(self, request_id: str) -> str:
        """A live request as an operator knows it: its model and key, not its id alone."""
        request = self.live.requests.get(request_id)
        if request is None:
            return f"request {request_id}"
        return f"the request for {request['model']} from key {request['key_name'] or request['key_id']}"

    def export_compose(self) -> None:
        self.app.run_worker(self._export_compose(), group=DAEMON_CALLS)

    async def _export_compose(self) -> None:
        try:
            text = await self.client.export_compose()
        except CorralError as error:
            self.app.notify(error.message, title="export failed", severity="error")
            return
        self.app.copy_to_clipboard(text)
        self.app.notify(
            f"docker-compose.yml copied to the clipboard ({len(text.splitlines())} lines); "
            "`corral fleet export-compose -o FILE` writes it to a file"
        )

    def _call_daemon(
        self, call: Callable[[], Awaitable[object]], done: str, *, title: str = "corral-core refused"
    ) -> None:
        self.app.run_worker(self._notify_outcome(call, done, title), group=DAEMON_CALLS)

    async def _notify_outcome(self, call: Callable[[], Awaitable[object]], done: str, title: str) -> None:
        try:
            await call()
        except CorralError as error:
            self.app.notify(error.message, title=title, severity="error")
        else:
            self.app.notify(done)


# Action ids (also Binding ids and palette entries) -> what runs, and its help text.
ACTIONS: dict[str, tuple[Callable[[ConsoleActions], None], str]] = {
    "provider.add": (ConsoleActions.add_provider, "Add a provider endpoint"),
    "key.create": (ConsoleActions.create_key, "Create an API key"),
    "fleet.deploy": (ConsoleActions.deploy_model, "Deploy a GGUF model"),
    "fleet.export": (ConsoleActions.export_compose, "Export the fleet as docker-compose.yml"),
}
