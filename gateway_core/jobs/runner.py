"""One attempt of a queued job: report its start, run it through the pipeline, and say how the job goes on.

The scheduler (scheduler.py) decides what runs where; this module runs what it decided. An attempt is reported
started (durably, by the job service) while its upstream request is sent, is bounded by the job timeout, and
ends in one of: succeeded, failed (a client error, the timeout, or the last attempt failing), cancelled, or
queued again (a failure worth retrying elsewhere, or an attempt cut off as corral-core stops).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway_core.clock import Clock
from gateway_core.contracts.errors import ERROR_TYPES
from gateway_core.contracts.jobs import JobError, JobState, JobUsage
from gateway_core.gateway.pipeline import JobAnswer, JobTicket, Pipeline
from gateway_core.jobs.model import Job
from gateway_core.jobs.settings import JobSettings
from gateway_core.metrics import QueueMetrics
from gateway_core.providers.runtime import ProviderRuntime

log = logging.getLogger("corral.jobs")

OnStarted = Callable[[Job, int, str], Awaitable[object]]
OnFinished = Callable[[Job, JobState, JobUsage | None, bytes | None, JobError | None], Awaitable[object]]
OnRetry = Callable[[Job, JobError | None], Awaitable[object]]

RETRYABLE = frozenset({408, 429})  # with every 5xx: the provider's trouble, worth another provider
CANCELLED: JobError = {"message": "the job was cancelled", "type": "cancelled", "code": "cancelled"}
CUT_AT_STOP: JobError = {
    "message": "the attempt was cut off as corral-core stopped (drain timeout); the job runs again at the next start",
    "type": "cancelled",
    "code": "shutdown",
}


@dataclass(eq=False)
class Attempt:
    """One attempt being run: the job, its number (1 for the first), the pipeline's ticket, the planned providers."""

    job: Job
    number: int
    ticket: JobTicket
    order: list[ProviderRuntime]
    started_mono: float
    cancelled: bool = False  # the job's cancel
    stopped: bool = False  # cut off by the scheduler's stop
    timed_out: bool = False
    slot_taken: bool = False  # the pipeline holds a slot for it (or it ended): no longer reserved by the scheduler

    @property
    def request_id(self) -> str:
        return self.ticket.request_id

    def provider(self) -> str:
        """Where it runs now: the provider the pipeline is trying, else the one planned first."""
        live = self.ticket.live
        return live.provider if live is not None and live.provider else self.order[0].name

    def holds(self, provider: str) -> bool:
        """Whether its request holds one of the provider's slots now (a failover moves it; its end frees it)."""
        live = self.ticket.live
        return live is not None and live.provider == provider and not self.ticket.lease.released

    def cancel(self) -> None:
        self.cancelled = True
        self.ticket.cancel()

    def stop(self) -> None:
        self.stopped = True
        self.ticket.cancel()

    def time_out(self) -> None:
        self.timed_out = True
        self.ticket.cancel()


def attempt_id(job_id: str, number: int) -> str:
    """The request id of an attempt, in the live view and the archive: the job's id, then `<job id>.<n>`."""
    return job_id if number == 1 else f"{job_id}.{number}"


class Runner:
    """Runs attempts and reports them through the job service's callbacks."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        metrics: QueueMetrics,
        settings: JobSettings,
        clock: Clock,
        on_started: OnStarted,
        on_finished: OnFinished,
        on_retry: OnRetry,
        slot_taken: Callable[[Attempt], None],
    ) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self._settings = settings
        self._monotonic = clock.monotonic
        self._on_started = on_started
        self._on_finished = on_finished
        self._on_retry = on_retry
        self._slot_taken = slot_taken

    async def run(self, attempt: Attempt) -> JobState:
        """Run the attempt to its end; the job's state after it ("queued": it is to run again)."""
        job = attempt.job
        # The start is recorded (durably: a kill -9 then shows the attempt) while the request goes upstream, not
        # before: a commit per attempt in series would keep the slot idle for an fsync each time. The end is
        # reported only after the start is.
        started = asyncio.ensure_future(self._on_started(job, attempt.number, attempt.order[0].name))
        # run_job takes its first slot before it first suspends: from here the provider's load counts it.
        self._slot_taken(attempt)
        timer = asyncio.get_running_loop().call_later(self._settings.job_timeout_s, attempt.time_out)
        try:
            answer = await self._pipeline.run_job(attempt.ticket, attempt.order)
        except Exception:  # a failure inside Corral, logged with the request id; another attempt may do better
            log.exception("job %s: attempt %d failed inside corral-core", job.id, attempt.number)
            answer = None
        finally:
            timer.cancel()
            self._metrics.attempt_ended(job.model, self._monotonic() - attempt.started_mono)
            try:
                await started
            except Exception:  # the end is still reported (and stored) below
                log.exception("job %s: the start of attempt %d could not be recorded", job.id, attempt.number)
        return await self._conclude(attempt, answer)

    async def fail(self, job: Job, error: JobError) -> JobState:
        """A job that cannot run (any more): failed with the reason, without an attempt."""
        await self._on_finished(job, "failed", None, None, error)
        return "failed"

    async def _conclude(self, attempt: Attempt, answer: JobAnswer | None) -> JobState:
        job = attempt.job
        if answer is not None and 200 <= answer.status < 300:
            try:
                result = assemble(job.route, answer.body) if answer.streamed else answer.body
            except (orjson.JSONDecodeError, TypeError, ValueError):  # the relay checked the frames: a bug here
                log.exception("job %s: the answer of attempt %d could not be assembled", job.id, attempt.number)
                answer = None
            else:
                await self._on_finished(job, "succeeded", job_usage(answer), result, None)
                return "succeeded"
        if attempt.stopped:
            await self._on_retry(job, CUT_AT_STOP)
            return "queued"
        if attempt.cancelled or (answer is not None and answer.status == 499 and not attempt.timed_out):
            await self._on_finished(job, "cancelled", None, None, CANCELLED)  # 499 alone: an operator's cancel
            return "cancelled"
        usage = job_usage(answer) if answer is not None and answer.usage.prompt_tokens else None
        if attempt.timed_out:
            timeout = self._settings.job_timeout_s
            error: JobError = {
                "message": f"the job ran longer than its timeout of {timeout:g} s (corral-core --job-timeout) "
                "and was cancelled; submit it again with a smaller request (max_tokens), or raise the timeout",
                "type": "timeout_error",
                "code": "job_timeout",
            }
            await self._on_finished(job, "failed", usage, None, error)
            return "failed"
        error = answer_error(answer, attempt)
        used = attempt.number - job.base_attempts
        if answer is None or answer.status >= 500 or answer.status in RETRYABLE:
            if used < self._settings.job_attempts:
                await self._on_retry(job, error)
                return "queued"
            error = {
                **error,
                "message": f"failed after {used} attempt{'s' if used != 1 else ''} "
                f"(corral-core --job-attempts {self._settings.job_attempts}); the last: {error['message']}",
            }
        await self._on_finished(job, "failed", usage, None, error)
        return "failed"


def job_usage(answer: JobAnswer) -> JobUsage:
    prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def answer_error(answer: JobAnswer | None, attempt: Attempt) -> JobError:
    """Why an attempt failed, in OpenAI's error fields, naming where it ran."""
    if answer is None:
        return {
            "message": f"attempt {attempt.number} failed inside corral-core (request id {attempt.request_id}; "
            "the daemon's log has the traceback)",
            "type": "server_error",
            "code": "internal_error",
        }
    status = answer.status
    message = answer.error_message or f"HTTP {status}"
    where = f" (attempt {attempt.number} on {answer.provider})" if answer.provider else ""
    return {
        "message": message + where,
        "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "code": answer.error_code,
    }


def assemble(route: str, frames: bytes) -> bytes:
    """The answer a non-streamed request would have had, from the frames of a stream (OpenAI chunks, as the
    pipeline relays them): each choice's text, reasoning and tool calls joined, its finish reason and logprobs,
    and the usage of the stream's last chunk."""
    head: dict[str, Any] = {}
    usage: object = None
    extra: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    for line in frames.split(b"\n"):
        data = line[5:].strip() if line.startswith(b"data:") else b""
        if not data or data == b"[DONE]":
            continue
        chunk = orjson.loads(data)
        head = head or chunk
        usage = chunk.get("usage") or usage
        if "timings" in chunk:  # llama-server's own speed figures, as its non-streamed answer has them
            extra["timings"] = chunk["timings"]
        for part in chunk.get("choices") or ():
            choice = choices.setdefault(int(part.get("index", 0)), {"text": {}, "tools": {}, "logprobs": None})
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
            _join_logprobs(choice, part.get("logprobs"))
            if route == "chat":
                _join_delta(choice, part.get("delta") or {})
            elif isinstance(part.get("text"), str):
                choice["text"]["text"] = choice["text"].get("text", "") + part["text"]
    answer: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion" if route == "chat" else "text_completion",
        "created": head.get("created"),
        "model": head.get("model"),
    }
    if head.get("system_fingerprint") is not None:
        answer["system_fingerprint"] = head["system_fingerprint"]
    answer["choices"] = [_choice(route, index, choices[index]) for index in sorted(choices)]
    answer["usage"] = usage
    return orjson.dumps({**answer, **extra})


def _join_delta(choice: dict[str, Any], delta: dict[str, Any]) -> None:
    text: dict[str, str] = choice["text"]
    if isinstance(delta.get("role"), str):
        choice["role"] = delta["role"]
    for name in ("content", "reasoning_content", "refusal"):
        if isinstance(delta.get(name), str):
            text[name] = text.get(name, "") + delta[name]
    for call in delta.get("tool_calls") or ():
        held = choice["tools"].setdefault(int(call.get("index", 0)), {"function": {"name": "", "arguments": ""}})
        for name in ("id", "type"):
            if call.get(name):
                held[name] = call[name]
        function = call.get("function") or {}
        if function.get("name"):
            held["function"]["name"] = function["name"]
        held["function"]["arguments"] += function.get("arguments") or ""


def _join_logprobs(choice: dict[str, Any], logprobs: object) -> None:
    if not isinstance(logprobs, dict):
        return
    held = choice["logprobs"] = choice["logprobs"] or {}
    for name, value in logprobs.items():
        if isinstance(value, list):
            held.setdefault(name, []).extend(value)
        else:
            held[name] = value


def _choice(route: str, index: int, choice: dict[str, Any]) -> dict[str, Any]:
    text: dict[str, str] = choice["text"]
    done: dict[str, Any] = {"index": index}
    if route == "chat":
        tools = [{"type": "function", **choice["tools"][i]} for i in sorted(choice["tools"])]
        message: dict[str, Any] = {
            "role": choice.get("role", "assistant"),
            "content": text.get("content", None if tools else ""),
        }
        for name in ("reasoning_content", "refusal"):
            if name in text:
                message[name] = text[name]
        if tools:
            message["tool_calls"] = tools
        done["message"] = message
    else:
        done["text"] = text.get("text", "")
    done["logprobs"] = choice["logprobs"]
    done["finish_reason"] = choice.get("finish_reason")
    return done
