"""The public API under generated requests, in-process, in front of the fault server ("ok" mode) and the fake
Anthropic server: no 5xx unless the upstream answered one, every error in OpenAI's shape, an x-request-id on every
answer, a valid request never refused, unknown fields passed on unchanged, and the gateway still serving after."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.checks import Answer, check_answer, fuzz_settings, openai_error
from tests.fuzz.conftest import ANTHROPIC_MODEL, FuzzTarget
from tests.fuzz.json_values import encode
from tests.fuzz.openai_bodies import (
    ROUTE_PATHS,
    ROUTES,
    Mistake,
    Route,
    mistakes,
    unknown_fields,
    valid_bodies,
    valid_chat_bodies,
)
from tests.fuzz.strategies import FuzzRequest, public_requests

JSON_HEADERS = (("authorization", "Bearer {KEY}"), ("content-type", "application/json"))


def post(route: Route, body: Any) -> FuzzRequest:
    return FuzzRequest("POST", ROUTE_PATHS[route], JSON_HEADERS, encode(body))


def send_and_check(target: FuzzTarget, request: FuzzRequest) -> Answer:
    mark = target.upstream_mark()
    answer = target.send_public(request)
    upstream_failed = answer.status >= 500 and target.upstream_failed_since(mark)
    check_answer(answer, method=request.method, upstream_failed=upstream_failed)
    # Read whole, the answer was accounted for: the pipeline ends a request before its last byte goes out.
    assert not (held := target.leftovers()), f"the request left {held} held after {answer.describe()}"
    return answer


def assert_still_serving(target: FuzzTarget, model: str = "tiny") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 4}
    answer = target.send_public(post("chat", body))
    assert answer.status == 200, f"after the generated requests, a valid one got {answer.describe()}"
    assert orjson.loads(answer.body)["choices"], answer.describe()


def names_field(param: object, expected: str) -> bool:
    """`param` is the field at fault, or a part of it (messages[0] for a bad messages[0].role is too vague)."""
    return isinstance(param, str) and (param == expected or param.startswith((f"{expected}.", f"{expected}[")))


def test_generated_requests_get_no_5xx_and_every_error_in_openai_shape(fuzz_target: FuzzTarget) -> None:
    @fuzz_settings(400)
    @given(request=public_requests())
    def example(request: FuzzRequest) -> None:
        send_and_check(fuzz_target, request)

    example()
    assert_still_serving(fuzz_target)


def test_a_valid_request_is_never_refused(fuzz_target: FuzzTarget) -> None:
    @fuzz_settings(60)
    @given(route_and_body=st.sampled_from(ROUTES).flatmap(lambda route: st.tuples(st.just(route), valid_bodies(route))))
    def example(route_and_body: tuple[Route, dict[str, Any]]) -> None:
        route, body = route_and_body
        answer = send_and_check(fuzz_target, post(route, body))
        assert answer.status == 200, f"a valid {route} body was refused: {answer.describe()}"

    example()


def test_a_field_of_the_wrong_kind_is_refused_with_400_naming_it(fuzz_target: FuzzTarget) -> None:
    @fuzz_settings(150)
    @given(mistake=st.sampled_from(ROUTES).flatmap(mistakes))
    def example(mistake: Mistake) -> None:
        answer = send_and_check(fuzz_target, post(mistake.route, mistake.body))
        assert answer.status == 400, f"{mistake.param} = {mistake.value!r} was not refused: {answer.describe()}"
        param = openai_error(answer)["param"]
        assert names_field(param, mistake.param), f"{mistake.param} was at fault, the 400 names {param!r}"

    example()


def test_unknown_fields_reach_the_upstream_unchanged(fuzz_target: FuzzTarget) -> None:
    @fuzz_settings(40)
    @given(route=st.sampled_from(ROUTES), data=st.data())
    def example(route: Route, data: st.DataObject) -> None:
        body, extra = data.draw(valid_bodies(route)), data.draw(unknown_fields())
        mark = len(fuzz_target.upstream.requests)

        answer = send_and_check(fuzz_target, post(route, {**body, **extra}))

        assert answer.status == 200, answer.describe()
        (received,) = [seen.json for seen in fuzz_target.upstream.requests[mark:] if seen.method == "POST"]
        assert {name: received.get(name) for name in extra} == extra

    example()


def test_generated_requests_to_an_anthropic_provider_get_no_5xx_and_openai_errors(fuzz_target: FuzzTarget) -> None:
    @fuzz_settings(200)
    @given(request=public_requests(model=ANTHROPIC_MODEL))
    def example(request: FuzzRequest) -> None:
        send_and_check(fuzz_target, request)

    example()
    assert_still_serving(fuzz_target, ANTHROPIC_MODEL)


def test_a_valid_chat_request_to_an_anthropic_provider_is_answered_or_refused_naming_the_part(
    fuzz_target: FuzzTarget,
) -> None:
    @fuzz_settings(60)
    @given(body=valid_chat_bodies(model=ANTHROPIC_MODEL))
    def example(body: dict[str, Any]) -> None:
        answer = send_and_check(fuzz_target, post("chat", body))
        if answer.status != 200:
            assert answer.status == 400, f"a valid chat body for an Anthropic model got {answer.describe()}"
            param = openai_error(answer)["param"]
            assert param, f"the 400 names no part that cannot be translated: {answer.describe()}"

    example()
