"""Generated and malformed requests over raw TCP sockets, through a real `corral-core` in front of a real llama-server.

Properties: every request gets an answer, and never a 500 from Corral itself; no client's mistake reaches
llama-server as a failure (no 502 or 503: the provider is never blamed, and its circuit never opens; llama-server's
own 501 for embeddings it was not started for is passed on); no answer is a plain-text error; every 4xx and 5xx is
in OpenAI's exact error shape and carries x-request-id; and the daemon serves a valid request at once at the end.
`CORRAL_FUZZ_TCP_EXAMPLES` sets the number of examples (CI's default keeps the test to seconds); each run prints
what it sent and the statuses it got.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import given

from tests.fuzz.checks import Answer, examples, fuzz_settings, openai_error
from tests.fuzz.http_strategies import RawCase, raw_requests, valid_chat
from tests.fuzz.raw_http import exchange
from tests.testbed import CorralDaemon, LlamaServerProcess

pytestmark = pytest.mark.llama_server

EXAMPLES_VARIABLE = "CORRAL_FUZZ_TCP_EXAMPLES"
CI_EXAMPLES = 800
DEADLINE_S = 1  # the listener's header and body deadlines: a stalled case costs this long
ANSWER_TIMEOUT_S = 15.0  # far past the deadlines and a bounded llama-server answer


# Short listener deadlines, so a request that stalls is answered (408) within a second.
DEADLINES = ("--header-timeout", str(DEADLINE_S), "--body-timeout", str(DEADLINE_S))


@dataclass
class Tally:
    """What one run sent and got, printed at its end."""

    sent: int = 0
    statuses: collections.Counter[int | str] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    upstream_failures: list[str] = field(default_factory=list)  # the first few requests answered 502 or 503

    def line(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items(), key=str))
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.kinds.items()))
        failures = "".join(f"\n  upstream failure: {failure}" for failure in self.upstream_failures)
        return f"TCP fuzz: {self.sent} requests sent; statuses {{{statuses}}}; kinds {{{kinds}}}{failures}"


@pytest.fixture(scope="module")
def fuzzed_daemon(
    shared_llama_server: LlamaServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CorralDaemon, str]]:
    daemon = CorralDaemon(tmp_path_factory.mktemp("tcp-fuzz") / "corral", extra_args=DEADLINES)
    daemon.start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        yield daemon, daemon.create_key("fuzz")
    finally:
        daemon.stop()


def check_tcp_answer(case: RawCase, answer: Answer | None, log_tail: str) -> None:
    assert answer is not None, f"the connection closed without an answer to {case}\n--- corral-core log ---\n{log_tail}"
    assert answer.status != 500, f"a 500 from Corral itself: {answer.describe()}\n--- corral-core log ---\n{log_tail}"
    assert answer.header("x-request-id"), f"no x-request-id: {answer.describe()}"
    if answer.status >= 300 and case.method != "HEAD":
        openai_error(answer)  # JSON in OpenAI's shape: never text, never the upstream's own error body
    if case.stalls:
        assert answer.status == 408, f"a stalled request was answered {answer.describe()}"


def test_generated_requests_over_tcp_get_no_500_and_every_error_in_openai_shape(
    fuzzed_daemon: tuple[CorralDaemon, str],
) -> None:
    daemon, key = fuzzed_daemon
    tally = Tally()

    @fuzz_settings(CI_EXAMPLES, EXAMPLES_VARIABLE)
    @given(case=raw_requests())
    def example(case: RawCase) -> None:
        case = case.with_key(key)
        answer = exchange(daemon.port, case.data, method=case.method, timeout_s=ANSWER_TIMEOUT_S)
        tally.sent += 1
        tally.kinds[case.kind] += 1
        tally.statuses[answer.status if answer else "no answer"] += 1
        if answer and answer.status in (502, 503) and len(tally.upstream_failures) < 10:
            tally.upstream_failures.append(f"{case.data[:600]!r} -> {answer.body[:300]!r}")
        check_tcp_answer(case, answer, daemon.log_tail() if answer is None or answer.status == 500 else "")

    try:
        example()
    finally:
        print(f"\n{tally.line()} (examples asked: {examples(CI_EXAMPLES, EXAMPLES_VARIABLE)})")
    # A client's mistake is refused before it reaches llama-server: none may count against the provider.
    assert not tally.upstream_failures, "requests the provider failed:\n" + "\n".join(tally.upstream_failures)
    answers = [exchange(daemon.port, valid_chat(key), method="POST", timeout_s=ANSWER_TIMEOUT_S)]
    last = answers[-1]
    assert last is not None
    assert last.status == 200, last.describe()
    assert orjson.loads(last.body)["choices"], last.describe()
    assert daemon.process is not None
    assert daemon.process.poll() is None, f"corral-core exited:\n{daemon.log_tail()}"
