"""The chat pane: try any model corral-core serves, streamed, with stop, multi-turn, copy and per-answer stats.

Requests go through the daemon's admin client (`ChatStream`), so they are routed, balanced and accounted
like any app's. Stopping cancels the worker, which closes the stream; corral-core then closes the upstream
request and llama-server frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.validation import Integer, Number
from textual.widgets import Input, Select, Static
from textual.worker import Worker, WorkerState

from console.answer_stats import AnswerMeter, AnswerStats
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.widgets.chat_log import AnswerStream, ChatLog
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.chat import ChatCompletionChunk

STOPPED_MARK = "[stopped]"
NO_MODEL_NOTE = "No provider serves a model yet: add a provider or deploy a GGUF on the dashboard (F2)."
CLEAR_WAIT_S = 5.0
TEMPERATURE = Number(minimum=0, maximum=2, failure_description="temperature must be between 0 and 2")
MAX_TOKENS = Integer(minimum=1, failure_description="max tokens must be a positive integer")
SAMPLING_INPUTS: tuple[tuple[str, str, Callable[[str], float]], ...] = (
    ("#chat-temperature", "temperature", float),
    ("#chat-max-tokens", "max_tokens", int),
)


def served_models(live: LiveState) -> dict[str, list[str]]:
    """Public model name -> providers serving it. Provider events keep `live.providers` fresher than the status."""
    if not live.providers:
        return dict(live.status["models"]) if live.status else {}
    served: dict[str, list[str]] = {}
    for name, provider in sorted(live.providers.items()):
        if provider["enabled"]:
            for model in provider["models"]:
                served.setdefault(model, []).append(name)
    return served


def chunk_text(chunk: ChatCompletionChunk) -> str:
    """The text one streamed chunk adds. Read with .get: upstreams relay OpenAI's shape loosely."""
    choices = chunk.get("choices")
    if not choices:
        return ""
    delta = choices[0].get("delta")
    return (delta.get("content") if delta else None) or ""


class ChatScreen(LiveScreen):
    """Pick a model, set the sampling, and talk to it. `params` are extra request fields sent with every turn."""

    CSS_PATH = "../styles/chat.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", id="chat.send", tooltip="Send the prompt (Enter in the prompt does too)"),
        Binding("escape", "stop", "Stop", id="chat.stop", tooltip="Stop the answer being generated"),
        Binding("ctrl+l", "clear", "Clear", id="chat.clear", tooltip="Start a new conversation"),
        Binding("ctrl+y", "copy_last", "Copy answer", id="chat.copy", tooltip="Copy the last answer"),
    ]

    generating: reactive[bool] = reactive(False, bindings=True)

    @dataclass
    class AnswerFinished(Message):
        """An answer ended: outcome is "done", "stopped" or "error"; stats is None after an error."""

        outcome: str
        stats: AnswerStats | None

    def __init__(
        self,
        *,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.params = dict(params or {})
        self.turns: list[dict[str, str]] = []  # the conversation sent with the next prompt
        self.last_sent: list[dict[str, str]] = []
        self.last_answer = ""
        self.last_stats: AnswerStats | None = None
        self._model_options: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-settings"):
            yield Select([], prompt="Model", id="chat-model")
            yield Input(
                "0.7",
                placeholder="0-2",
                id="chat-temperature",
                type="number",
                valid_empty=True,
                validators=[TEMPERATURE],
            )
            yield Input(
                "512",
                placeholder="tokens",
                id="chat-max-tokens",
                type="integer",
                valid_empty=True,
                validators=[MAX_TOKENS],
            )
        yield Input(placeholder="System prompt (optional)", id="chat-system")
        yield Static(NO_MODEL_NOTE, id="chat-no-model", markup=False)
        yield Static("", id="chat-hint", markup=False)
        yield ChatLog(id="chat-log")
        yield Input(placeholder='Ask something, e.g. "What is a GPU?" (Enter sends)', id="chat-prompt")
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#chat-temperature", Input).border_title = "temperature"
        self.query_one("#chat-max-tokens", Input).border_title = "max tokens"
        self._refresh_models(self.host.live)
        self.query_one("#chat-prompt", Input).focus()

    def on_screen_resume(self) -> None:
        # Live updates reach only the current mode's screens: what changed while another mode showed is read here.
        self._refresh_models(self.host.live)

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if changed & {"status", "providers"}:
            self._refresh_models(live)

    def _refresh_models(self, live: LiveState) -> None:
        picker: Select[str] = self.query_one("#chat-model", Select)
        models = served_models(live)
        options = [
            (f"{model}  ({', '.join(providers)})" if providers else model, model)
            for model, providers in sorted(models.items())
        ]
        self.query_one("#chat-no-model", Static).set_class(not options, "-shown")
        if options == self._model_options:
            return  # set_options resets the selection, so only when something changed
        self._model_options = options
        current = picker.value
        picker.set_options(options)
        if current in models:
            picker.value = current
        elif options:
            picker.value = options[0][1]

    @on(Input.Changed, "#chat-temperature, #chat-max-tokens")
    def _show_validation(self) -> None:
        problems = self._sampling_problems()
        hint = self.query_one("#chat-hint", Static)
        hint.update("; ".join(problems))
        hint.set_class(bool(problems), "-shown")

    def watch_generating(self, generating: bool) -> None:
        # On the prompt, not the screen: a class on the screen restyles every block of every answer.
        self.query_one("#chat-prompt", Input).set_class(generating, "-generating")

    @on(Input.Submitted, "#chat-prompt")
    def _prompt_submitted(self) -> None:
        self.action_send()

    def _sampling_problems(self) -> list[str]:
        problems: list[str] = []
        for selector, _, _ in SAMPLING_INPUTS:
            widget = self.query_one(selector, Input)
            result = widget.validate(widget.value)
            problems += result.failure_descriptions if result else []
        return problems

    def request_params(self) -> dict[str, Any]:
        """Temperature and max tokens from the inputs (left out when empty); ValueError when invalid."""
        problems = self._sampling_problems()
        if problems:
            raise ValueError("; ".join(problems))
        params = dict(self.params)
        for selector, field, convert in SAMPLING_INPUTS:
            value = self.query_one(selector, Input).value.strip()
            if value:
                params[field] = convert(value)
        return params

    def request_messages(self) -> list[dict[str, str]]:
        system = self.query_one("#chat-system", Input).value.strip()
        return ([{"role": "system", "content": system}] if system else []) + list(self.turns)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return True if self.generating else None
        if action == "send":
            return None if self.generating else True
        if action == "copy_last":
            return True if self.last_answer else None
        return True

    def action_send(self) -> None:
        if self.generating:
            self.notify("An answer is still streaming; press Esc to stop it first.", severity="warning")
            return
        prompt = self.query_one("#chat-prompt", Input)
        text = prompt.value.strip()
        model = self.query_one("#chat-model", Select).value
        if not text:
            return
        if model is Select.NULL:
            self.notify(NO_MODEL_NOTE, title="Pick a model first", severity="warning")
            return
        try:
            params = self.request_params()
        except ValueError as error:
            self.notify(str(error), title="Cannot send", severity="error")
            return
        prompt.value = ""
        self.turns.append({"role": "user", "content": text})
        self.last_sent = self.request_messages()
        self.generating = True
        self.generate(str(model), text, self.last_sent, params)

    def action_stop(self) -> None:
        self.workers.cancel_group(self, "chat")

    async def action_clear(self) -> None:
        for worker in self.workers.cancel_group(self, "chat"):
            with contextlib.suppress(Exception):  # it ended one way or another; the conversation goes anyway
                await asyncio.wait_for(worker.wait(), CLEAR_WAIT_S)
        self.turns.clear()
        self.last_sent, self.last_answer, self.last_stats = [], "", None
        await self.query_one(ChatLog).clear_conversation()
        self.refresh_bindings()

    def action_copy_last(self) -> None:
        if not self.last_answer:
            self.notify("There is no answer to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(self.last_answer)
        self.notify(f"Copied the last answer ({len(self.last_answer)} characters).")

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def generate(self, model: str, text: str, messages: list[dict[str, str]], params: dict[str, Any]) -> None:
        log = self.query_one(ChatLog)
        await log.add_message("user", text)
        log.scroll_end(animate=False)  # the reader just sent this, so follow it
        answer = await log.begin_answer(title=model)
        meter = AnswerMeter()
        stream = self.host.client.chat_stream(model, messages, stream_options={"include_usage": True}, **params)
        outcome, error = "failed", None  # "failed" stays if something unexpected escapes (see _worker_failed)
        try:
            async with stream:
                async for chunk in stream:
                    fragment = chunk_text(chunk)
                    if fragment:
                        meter.token()
                        answer.add(fragment)
            outcome = "done"
        except asyncio.CancelledError:
            outcome = "stopped"
            raise
        except CorralError as caught:
            outcome, error = "error", caught
        finally:
            stats = meter.stats(stream) if outcome in ("done", "stopped") else None
            await self._settle(answer, outcome, stats, error)

    async def _settle(
        self, answer: AnswerStream, outcome: str, stats: AnswerStats | None, error: CorralError | None
    ) -> None:
        """Render the answer once in full, update the conversation, and say how it went."""
        if stats is None:
            await answer.finish()
        elif outcome == "stopped":
            await answer.finish(f"\n\n{STOPPED_MARK}", f"{STOPPED_MARK} · {stats.line()}")
        else:
            await answer.finish("", stats.line())
        if error is not None:
            reason = error.message.rstrip(".") + (f" (HTTP {error.status})" if error.status else "")
            await self.query_one(ChatLog).add_note(
                f"Error: {reason}. This turn is left out of the conversation.", error=True
            )
            self.notify(reason, title="Chat failed", severity="error")
        text = answer.text
        if stats is None or not text:
            self.turns.pop()  # unanswered: the next prompt goes without it
        else:
            self.turns.append({"role": "assistant", "content": text})
            self.last_answer, self.last_stats = text, stats
        self.generating = False
        self.post_message(self.AnswerFinished("error" if stats is None else outcome, stats))

    @on(Worker.StateChanged)
    async def _worker_failed(self, event: Worker.StateChanged) -> None:
        # Errors the worker did not expect (not CorralError): one place, shown in the conversation, never a traceback.
        if event.worker.group != "chat" or event.state != WorkerState.ERROR:
            return
        self.generating = False
        if self.turns and self.turns[-1]["role"] == "user":
            self.turns.pop()
        error = event.worker.error
        await self.query_one(ChatLog).add_note(
            f"Error: {type(error).__name__}: {error}. This turn is left out of the conversation.", error=True
        )
        self.notify(str(error) or type(error).__name__, title="Chat failed", severity="error")
