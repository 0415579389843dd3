"""What every answer to a fuzzed request must satisfy, whichever way it was sent (in-process or raw TCP)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, settings

ERROR_FIELDS = frozenset({"message", "type", "param", "code"})
REQUEST_ID = "x-request-id"


@dataclass(frozen=True)
class Answer:
    """One HTTP response: its status, its headers (names lower-cased, in order) and its whole body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for header, value in self.headers if header == name), None)

    def describe(self) -> str:
        return f"HTTP {self.status} {dict(self.headers)} {self.body[:300]!r}"


def openai_error(answer: Answer) -> dict[str, Any]:
    """The `error` object of an answer that must be an error in OpenAI's shape, exactly:
    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}."""
    content_type = answer.header("content-type") or ""
    assert content_type.startswith("application/json"), f"an error that is not JSON: {answer.describe()}"
    try:
        document = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        raise AssertionError(f"an error whose body is not JSON: {answer.describe()}") from None
    assert isinstance(document, dict), f"an error that is not a JSON object: {answer.describe()}"
    assert set(document) == {"error"}, f"an error with fields besides 'error': {answer.describe()}"
    error = document["error"]
    assert isinstance(error, dict), f"'error' is not an object: {answer.describe()}"
    assert set(error) == ERROR_FIELDS, f"'error' has {sorted(error)}, not {sorted(ERROR_FIELDS)}: {answer.describe()}"
    assert isinstance(error["message"], str), f"error.message is not a string: {answer.describe()}"
    assert error["message"], f"error.message is empty: {answer.describe()}"
    assert isinstance(error["type"], str), f"error.type is not a string: {answer.describe()}"
    assert error["param"] is None or isinstance(error["param"], str), f"error.param: {answer.describe()}"
    assert error["code"] is None or isinstance(error["code"], str), f"error.code: {answer.describe()}"
    return error


def check_answer(answer: Answer, *, method: str, upstream_failed: bool) -> None:
    """The properties of any answer: an x-request-id; no 5xx unless the upstream itself answered one; every
    non-2xx in OpenAI's error shape (a HEAD answer has no body to check)."""
    assert answer.header(REQUEST_ID), f"no {REQUEST_ID} header: {answer.describe()}"
    if answer.status >= 500:
        assert upstream_failed, f"a {answer.status} although the upstream answered no 5xx: {answer.describe()}"
    if answer.status >= 300 and method != "HEAD":
        openai_error(answer)


def examples(default: int, variable: str = "CORRAL_FUZZ_EXAMPLES") -> int:
    """The example count of a fuzz test: `default` in CI, or the count in the environment variable."""
    configured = os.environ.get(variable)
    return int(configured) if configured else default


def fuzz_settings(default_examples: int, variable: str = "CORRAL_FUZZ_EXAMPLES") -> settings:
    # No deadline: an example's time is mostly the gateway's and the upstream's, which a busy CI box stretches.
    # too_slow and large_base_example: the bounded long strings and deep nesting are wanted, and generating them
    # takes a moment.
    return settings(
        max_examples=examples(default_examples, variable),
        deadline=None,
        suppress_health_check=(HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large),
    )
