"""The Corral console: a Textual app over corral-core's admin socket. It holds no business logic.

The app owns the connection (auto-starting the daemon), the live state rebuilt from the event
stream, themes and key maps; screens show and ask, and the daemon decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import App, SystemCommand, UnknownModeError
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.theme import Theme

from console.actions import ConsoleActions
from console.collector import QUIET_S, QuietCollector
from console.contexts import DEFAULT, Context, all_contexts, default_context, remember_current
from console.daemon_link import ConnectionChange, ContextLink, EventFeed, LinkFailed
from console.job_state import JOBS_PAGE
from console.live_state import SECTIONS, LiveState
from console.palette import CorralCommands
from console.read_only import SUB_TITLE as READ_ONLY_SUB_TITLE
from console.screens.base import LiveScreen
from console.screens.callbacks import CallbacksScreen
from console.screens.chat import ChatScreen
from console.screens.dashboard import DashboardScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.screens.usage import UsageScreen
from console.settings import ConsoleSettings
from console.themes import load_themes
from gateway_core.client import CorralClient, CorralError

# Events are applied as they come; screens redraw at most this often: twice the 1 Hz the state moves at, which
# halves the bytes sent to an SSH terminal against 4 Hz.
FLUSH_INTERVAL_S = 0.5
RECOUNT_EVERY_S = 1.0
STREAM_LAG_S = 0.2  # the event stream batches for 50 ms; the rest is margin for a busy box
WARM_CHAT_AFTER_S = 2.0
RELINK_AFTER_S = 2.0  # a box's tunnel that ended is opened again after this
RETIRE_CLIENT_AFTER_S = 10.0


class CorralApp(App[None]):
    TITLE = "Corral"
    SUB_TITLE = "connecting…"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {CorralCommands}
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "chat": ChatScreen,
        "history": HistoryScreen,
        "usage": UsageScreen,
        "callbacks": CallbacksScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help", id="app.help", tooltip="List the keys for this screen"),
        Binding("f2", "switch_mode('dashboard')", "Dashboard", id="app.dashboard", tooltip="GPUs, fleet, traffic"),
        Binding("f3", "switch_mode('chat')", "Chat", id="app.chat", tooltip="Try any model the gateway serves"),
        # F4 to F6 stay out of the footer (help and the palette list them): at 80 columns it has room for the
        # screen's own keys, then F1 to F3 and the palette, which are always shown (console/widgets/key_hints.py).
        Binding(
            "f4",
            "switch_mode('history')",
            "History",
            id="app.history",
            tooltip="Past requests, searchable",
            show=False,
        ),
        Binding(
            "f5",
            "switch_mode('usage')",
            "Usage",
            id="app.usage",
            tooltip="Requests, tokens, errors over time",
            show=False,
        ),
        Binding(
            "f6",
            "switch_mode('callbacks')",
            "Callbacks",
            id="app.callbacks",
            tooltip="Job callbacks: pending, delivered, dead-lettered",
            show=False,
        ),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            tooltip="Leave the console (corral-core keeps running unless ./scripts/console.sh started it; "
            "`corral daemon stop` stops it)",
        ),
    ]

    def __init__(
        self,
        socket_path: Path,
        data_dir: Path,
        *,
        demo: bool = False,
        autostart: bool = True,
        settings: ConsoleSettings | None = None,
        settings_path: Path | None = None,
        read_only: bool = False,
        context: Context | None = None,
    ) -> None:
        self.settings = settings or ConsoleSettings.load(settings_path)
        # No key or palette command that changes anything (console/read_only.py); not saved: a flag is for one run.
        self.read_only = read_only or self.settings.read_only
        self._settings_path = settings_path
        super().__init__()
        self.socket_path = socket_path
        self.data_dir = data_dir
        self.demo = demo
        self.autostart = autostart
        # Which corral-core: the socket given, or a context (console/contexts.py) the palette can switch.
        self.context = context or default_context(socket_path, data_dir)
        self._link: ContextLink | None = None
        self.client = CorralClient(self.context.socket or socket_path)
        self.live = LiveState()
        self.actions = ConsoleActions(self, self.client, self.live)
        self.connected = False
        self._pending: set[str] = set()
        self._recounting = False
        self.collector = QuietCollector()
        self.set_keymap(self.settings.keymap)

    # -- start-up -------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.read_only:
            self.sub_title = f"{READ_ONLY_SUB_TITLE} · {self.sub_title}"
        self._register_themes()
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.switch_mode("dashboard")
        self.set_interval(FLUSH_INTERVAL_S, self._flush_live)
        self.follow_daemon()
        self.call_after_refresh(self.collector.start)  # after the first frame, which should not wait for it
        self.set_interval(1.0, self.collector.tick)
        self.set_timer(WARM_CHAT_AFTER_S, self._warm_chat)

    def _warm_chat(self) -> None:
        """Build the chat screen while the operator reads the dashboard. A mode's first show composes its screen
        and re-applies the whole stylesheet (150-230 ms in the console benchmark), which the first F3 waited for."""
        if self.current_mode == "chat":
            return  # the operator went there first, which built it
        busy = self.collector.clock() - self.collector.last_input < QUIET_S
        if busy or self.current_mode != "dashboard" or len(self.screen_stack) > 1:
            self.set_timer(WARM_CHAT_AFTER_S, self._warm_chat)  # typing, or a dialog open: later
            return
        try:
            self.switch_mode("chat")  # both switches land before the next frame: nothing flashes
            self.switch_mode("dashboard")
        except UnknownModeError:  # the app is closing: Textual has dropped its modes before its timers
            return

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.collector.input_seen()
        await super().on_event(event)

    def _register_themes(self) -> None:
        loaded = load_themes()
        for theme in loaded.themes:
            self.register_theme(theme)
        for problem in [*self.settings.problems, *loaded.problems]:
            self.notify(problem, severity="warning", timeout=10)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(f"theme '{self.settings.theme}' is not available; using corral-dark", severity="warning")
            self.theme = "corral-dark"

    def _remember_theme(self, theme: Theme) -> None:
        if theme.name != self.settings.theme:
            self.settings.theme = theme.name
            self.settings.save(self._settings_path)

    async def on_unmount(self) -> None:
        self.collector.stop()
        await self.client.aclose()
        if self._link is not None:
            await self._link.close()  # a box's ssh tunnel ends with the console

    # -- the daemon -----------------------------------------------------------------------------------

    @work(exclusive=True, group="daemon")
    async def follow_daemon(self) -> None:
        """Reach the context's corral-core (starting a local one if nobody answers, opening the tunnel to a box),
        then apply its event stream to LiveState for good."""
        link = await self._relink()
        try:
            outcome = await link.open()
        except LinkFailed as error:
            self._connection({"state": "lost", "reason": error.message})
            self.notify(error.message, title=error.title, severity="error", timeout=30)
            return
        assert link.socket_path is not None
        if link.socket_path != self.client.socket_path:
            self._retire(self.client)
            self.client = self.actions.client = CorralClient(link.socket_path)
        if outcome is not None and outcome.started:
            self.notify(f"started corral-core (log: {outcome.log_path})")
        if self.demo and not self.context.remote:
            self._start_demo()
        async with EventFeed(link.socket_path) as feed:
            async for event in feed:
                if event[0] == "connection":
                    self._connection(event[1])
                    if link.lost:  # the tunnel itself ended: only a new one can reach the box again
                        self.set_timer(RELINK_AFTER_S, self.follow_daemon)
                        return
                else:
                    self._pending |= self.live.apply(*event)
                    if event[0] == "snapshot":  # the first picture, or the one after a reconnect, shows at once
                        self._flush_live()
                        self.load_jobs()
                    elif event[0] == "job" and self.live.jobs.uncertain and not self._recounting:
                        self._recounting = True
                        self.recount_jobs()

    @work(exclusive=True, group="jobs")
    async def load_jobs(self) -> None:
        """The newest jobs, once per snapshot (which carries only their counts); events keep them current."""
        try:
            page = await self.client.list_jobs(limit=JOBS_PAGE)
        except CorralError:
            return  # a corral-core without a queue: the panel says so from the snapshot
        self.live.jobs.seed(page["data"])
        self._pending.add("jobs")

    @work(group="job-counts", exit_on_error=False)
    async def recount_jobs(self) -> None:
        """The daemon's counts, after an event about a job from before the snapshot whose previous state could only
        be guessed; one request at a time, at most one a second.

        Counts answered while job events were arriving may already include changes whose events are still on the
        stream (applying those after would count them twice), so only counts that no event raced are taken; until
        then the fold stands and the next second asks again.
        """
        jobs = self.live.jobs
        try:
            while jobs.uncertain:
                await asyncio.sleep(RECOUNT_EVERY_S)  # events of one burst share one count
                applied, snapshots = jobs.applied, jobs.snapshots
                counts = await self.client.job_counts()
                await asyncio.sleep(STREAM_LAG_S)  # what the daemon sent before its answer reaches us
                if jobs.snapshots != snapshots:
                    return  # a new snapshot brought counts of its own
                if jobs.applied == applied:
                    jobs.set_counts(counts)
                    self._pending.add("jobs")
        except CorralError:
            pass  # the stream's reconnect brings a fresh snapshot
        finally:
            self._recounting = False

    @work(exclusive=True, group="demo")
    async def _start_demo(self) -> None:
        from console.demo import DemoUnavailable, start_demo  # gguf and numpy load only for the demo

        try:
            said = await start_demo(self.client, self.data_dir, progress=lambda line: self.notify(line, title="demo"))
            self.notify(said, title="demo", timeout=10)
        except DemoUnavailable as error:
            self.notify(str(error), title="demo unavailable", severity="warning", timeout=15)

    @work(group="retired-clients")
    async def _retire(self, client: CorralClient) -> None:
        """Close a client the app no longer uses once the calls still in flight on it (a worker that started
        before a context switch) have had their time; closed at once when the console quits."""
        try:
            await asyncio.sleep(RETIRE_CLIENT_AFTER_S)
        finally:
            await client.aclose()

    async def _relink(self) -> ContextLink:
        """A fresh link to the current context; the previous one (its tunnel) is closed first."""
        old, self._link = self._link, ContextLink(self.context, autostart=self.autostart)
        if old is not None:
            await old.close()
        return self._link

    def contexts(self) -> dict[str, Context]:
        """Every context the palette can switch to, the built-in default first."""
        return all_contexts(self.settings, default_context(self.socket_path, self.data_dir))

    def switch_context(self, name: str) -> None:
        """Follow another corral-core: the old stream, client and tunnel close, the live state starts over, and
        console.json remembers the choice."""
        context = self.contexts().get(name)
        if context is None:
            self.notify(f"no context named {name!r}; `corral context list` shows them", severity="error")
            return
        self.context = context
        remember_current(self.settings, name, self._settings_path)
        self.live = self.actions.live = LiveState()
        self._pending |= set(SECTIONS)
        self._flush_live()
        self._connection({"state": "lost", "reason": f"connecting to {context.where()}"})
        self.follow_daemon()

    def _where(self) -> str:
        """The header's words for the current corral-core: its socket, led by the context's name when it has one."""
        if self.context.name == DEFAULT:
            return str(self.context.socket)
        return f"{self.context.name} · {self.context.where()}"

    def _connection(self, change: ConnectionChange) -> None:
        self.connected = change["state"] == "connected"
        if self.connected:
            self.sub_title = self._where()
        else:
            self.sub_title = f"DISCONNECTED: {change.get('reason', '')} — reconnecting…"
        for screen in self._live_screens():
            screen.set_connection_banner(None if self.connected else self.sub_title)
        if self.read_only:
            self.sub_title = f"{READ_ONLY_SUB_TITLE} · {self.sub_title}"

    def _flush_live(self) -> None:
        if not self._pending:
            return
        changed, self._pending = self._pending, set()
        for screen in self._live_screens():
            screen.live_changed(self.live, changed)

    def _live_screens(self) -> list[LiveScreen]:
        return [screen for screen in self.screen_stack if isinstance(screen, LiveScreen)]

    # -- help -----------------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # The palette's own Theme entry (console/palette.py) is among those it lists before typing; Textual's
        # would be a second one.
        for command in super().get_system_commands(screen):
            if command.title != "Theme":
                yield command

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = []
        for key, active in self.active_bindings.items():
            binding = active.binding
            if binding.id and binding.action != "help":
                rows.append((self.get_key_display(binding) or key, binding.description or binding.action, binding.id))
        self.push_screen(HelpScreen(sorted(set(rows), key=lambda row: row[2]), self._settings_path))

    @on(DashboardScreen.CancelRequest)
    def _cancel_request(self, message: DashboardScreen.CancelRequest) -> None:
        self.actions.cancel_live_request(message.request_id)

    @on(DashboardScreen.ActionRequested)
    def _dashboard_action(self, message: DashboardScreen.ActionRequested) -> None:
        self.actions.run(message.action_id)

    @on(CallbacksScreen.RedeliverRequested)
    def _redeliver(self, message: CallbacksScreen.RedeliverRequested) -> None:
        self.actions.redeliver(message.delivery)

    @on(DashboardScreen.ItemAction)
    def _item_action(self, message: DashboardScreen.ItemAction) -> None:
        self.actions.act_on(message.section, message.key, message.action)
