"""The corpus: every failure the fuzz suite found (or the issue reported), as a named case, so none comes back.

Public-path cases ran through Corral into the provider, or came back as plain text or a 500; admin cases were 500s,
400s that named no field, or values accepted and then stored as something else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fuzz.checks import Answer, check_answer, openai_error
from tests.fuzz.conftest import FuzzTarget
from tests.fuzz.json_values import Raw, encode, nested
from tests.fuzz.strategies import FuzzRequest
from tests.fuzz.test_public_fuzz import post

JSON = (("content-type", "application/json"),)
HI = [{"role": "user", "content": "hi"}]


def admin(target: FuzzTarget, method: str, path: str, body: Any = None) -> Answer:
    answer = target.send_admin(FuzzRequest(method, path, JSON, b"" if body is None else encode(body)))
    check_answer(answer, method=method, upstream_failed=False)
    return answer


def refused(answer: Answer, param: str) -> str:
    """The message of a 400 that names `param`."""
    assert answer.status == 400, answer.describe()
    error = openai_error(answer)
    assert error["param"] == param, answer.describe()
    return str(error["message"])


# -- the public API -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [5, "yes", [True]], ids=["number", "string", "list"])
def test_stream_options_that_is_not_an_object_is_a_400_naming_it(fuzz_target: FuzzTarget, options: object) -> None:
    """From the issue: it was a plain-text 500 (the adapter spread it into a dict)."""
    answer = fuzz_target.send_public(
        post("chat", {"model": "tiny", "messages": HI, "stream": True, "stream_options": options})
    )

    check_answer(answer, method="POST", upstream_failed=False)
    refused(answer, "stream_options")


def test_tools_that_is_not_a_list_is_refused_before_it_reaches_the_provider(fuzz_target: FuzzTarget) -> None:
    """From the issue: `tools: 5` reached llama-server, which answered 500."""
    seen = len(fuzz_target.upstream.requests)

    answer = fuzz_target.send_public(post("chat", {"model": "tiny", "messages": HI, "tools": 5}))

    refused(answer, "tools")
    assert [r for r in fuzz_target.upstream.requests[seen:] if r.method == "POST"] == []


@pytest.mark.parametrize("value", [nested(300), Raw('{"a":' * 300 + "1" + "}" * 300)], ids=["arrays", "objects"])
def test_an_unknown_field_nested_deeper_than_corral_can_forward_is_a_400(fuzz_target: FuzzTarget, value: Raw) -> None:
    """Found by the fuzz suite: orjson reads 1024 levels but writes 254, so the upstream call failed to encode (500)."""
    answer = fuzz_target.send_public(post("chat", {"model": "tiny", "messages": HI, "extra": value}))

    check_answer(answer, method="POST", upstream_failed=False)
    assert answer.status == 400, answer.describe()
    assert openai_error(answer)["code"] == "too_deeply_nested"
    assert fuzz_target.leftovers() == []


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/health/"])
def test_a_trailing_slash_is_a_json_404_naming_the_route_not_an_empty_redirect(
    fuzz_target: FuzzTarget, path: str
) -> None:
    """Found by the fuzz suite: Starlette answered 307 with an empty body."""
    answer = fuzz_target.send_public(FuzzRequest("POST", path, JSON, b"{}"))

    check_answer(answer, method="POST", upstream_failed=False)
    assert answer.status == 404, answer.describe()
    assert path.rstrip("/") in openai_error(answer)["message"]


# -- the admin API: deployments --------------------------------------------------------------------------------


@pytest.fixture
def cpu_deployment(tiny_model: Path) -> dict[str, Any]:
    return {"model_path": str(tiny_model), "gpus": "none"}


@pytest.mark.parametrize("timeout", [[1], {}, "abc", 0, -1, "nan", "inf"])
def test_a_deploy_health_timeout_that_is_not_positive_seconds_is_a_400_naming_it(
    fuzz_target: FuzzTarget, cpu_deployment: dict[str, Any], timeout: object
) -> None:
    """A list or an object was a 500 (float() of it), a string a 400 naming nothing, 0 and inf were taken."""
    answer = admin(fuzz_target, "POST", "/fleet/deployments", {**cpu_deployment, "health_timeout_s": timeout})

    assert "health_timeout_s" in refused(answer, "health_timeout_s")


def test_a_deploy_named_with_a_list_is_a_400_naming_the_name(
    fuzz_target: FuzzTarget, cpu_deployment: dict[str, Any]
) -> None:
    """It was a 500: the provider registry looked the unhashable name up."""
    refused(admin(fuzz_target, "POST", "/fleet/deployments", {**cpu_deployment, "name": ["a"]}), "name")


@pytest.mark.parametrize(
    ("options", "param"),
    [
        (5, "systemd"),
        ("yes", "systemd"),
        ([{"dry_run": True}], "systemd"),
        (False, "systemd"),
        ({"dry_run": True, "colour": "blue"}, "systemd.colour"),
        ({"dry_run": "yes"}, "systemd.dry_run"),
        ({"dry_run": True, "user": 1}, "systemd.user"),
        ({"dry_run": True, "binary": 5}, "systemd.binary"),
        ({"dry_run": True, "log_dir": ["/var/log"]}, "systemd.log_dir"),
    ],
)
@pytest.mark.parametrize("route", ["/fleet/deployments", "/fleet/systemd/unit"])
def test_systemd_options_that_do_not_validate_are_a_400_naming_the_option(
    fuzz_target: FuzzTarget, cpu_deployment: dict[str, Any], route: str, options: object, param: str
) -> None:
    """Options that are not an object were a 500 (`.get` on them); the others were read loosely ("yes" a dry run,
    `binary: 5` rendered), and `false` meant "install for real"."""
    body = {**cpu_deployment, "kind": "systemd", "systemd": options}

    refused(admin(fuzz_target, "POST", route, body), param)


@pytest.mark.parametrize("route", ["/fleet/plan", "/fleet/deployments", "/fleet/systemd/unit"])
def test_a_model_path_under_an_unknown_users_home_is_a_400_naming_it(fuzz_target: FuzzTarget, route: str) -> None:
    """It was a 500: Path.expanduser raised RuntimeError."""
    body = {"model_path": "~nosuchuser-corral/model.gguf", "gpus": "none"}

    assert "absolute path" in refused(admin(fuzz_target, "POST", route, body), "model_path")


def test_an_unknown_deployment_field_is_refused_even_when_it_is_null(
    fuzz_target: FuzzTarget, cpu_deployment: dict[str, Any]
) -> None:
    """The plan dropped null fields, meaning "the default", so a misspelt one was silently ignored."""
    refused(admin(fuzz_target, "POST", "/fleet/plan", {**cpu_deployment, "ctx": None}), "ctx")


@pytest.mark.parametrize("tail", ["abc", "-1", "1.5", ""])
def test_a_logs_tail_that_is_not_a_whole_number_is_a_400_naming_it(fuzz_target: FuzzTarget, tail: str) -> None:
    """It was a 400 that named nothing ("invalid literal for int() with base 10")."""
    refused(admin(fuzz_target, "GET", f"/fleet/deployments/m/logs?tail={tail}"), "tail")


def test_a_compose_health_timeout_that_is_not_a_number_is_a_400_naming_it(fuzz_target: FuzzTarget) -> None:
    answer = fuzz_target.send_admin(FuzzRequest("POST", "/fleet/compose?health_timeout_s=abc", (), b"services: {}"))

    refused(answer, "health_timeout_s")


def test_a_systemd_action_on_a_name_no_unit_can_have_is_a_400_naming_it(fuzz_target: FuzzTarget) -> None:
    refused(admin(fuzz_target, "POST", "/fleet/systemd/bad%20name/status"), "name")


@pytest.mark.parametrize("directory", ["", "relative/models"])
def test_a_catalog_directory_that_is_not_absolute_is_a_400_naming_it(fuzz_target: FuzzTarget, directory: str) -> None:
    """An empty one scanned the daemon's working directory (under systemd, /) and a relative one a path under it."""
    assert "absolute" in refused(admin(fuzz_target, "GET", f"/catalog?dir={directory}"), "dir")


# -- the admin API: keys and providers --------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["inf", "Infinity", "nan", 1e308, 36_501])
def test_a_key_expiry_that_is_not_finite_or_beyond_a_century_is_a_400_naming_it(
    fuzz_target: FuzzTarget, days: object
) -> None:
    """ "inf" and 1e308 were taken, and the key stored with expires_at null: a key that never expires."""
    refused(admin(fuzz_target, "POST", "/keys", {"name": "expiring", "expires_in_days": days}), "expires_in_days")
    created = admin(fuzz_target, "POST", "/keys", {"name": "to-update"})
    key_id = orjson.loads(created.body)["id"]
    try:
        refused(admin(fuzz_target, "PATCH", f"/keys/{key_id}", {"expires_in_days": days}), "expires_in_days")
    finally:
        admin(fuzz_target, "DELETE", f"/keys/{key_id}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:-1",
        "http://127.0.0.1:0",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:9/a path",
        "http://127.0.0.1:9\t",
    ],
)
def test_a_provider_url_without_a_valid_port_or_with_spaces_is_a_400_naming_it(
    fuzz_target: FuzzTarget, url: str
) -> None:
    """They were saved, and the provider stayed down for good with aiohttp's InvalidUrlClientError."""
    body = {"name": "bad-url", "type": "llama-server", "base_url": url}

    refused(admin(fuzz_target, "POST", "/providers", body), "base_url")


@pytest.mark.parametrize("models", [{"": "tiny"}, {"tiny": ""}])
def test_a_provider_model_with_an_empty_name_is_a_400_naming_models(fuzz_target: FuzzTarget, models: object) -> None:
    """An empty public name can never be asked for (the public API refuses an empty model)."""
    body = {"name": "empty-model", "type": "llama-server", "base_url": "http://127.0.0.1:9", "models": models}

    refused(admin(fuzz_target, "POST", "/providers", body), "models")
