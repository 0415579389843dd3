"""The load policy: durations as operators type them, and the policies changed after deployment in config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway_core.fleet.load_policy import POLICY_TABLE, LoadPolicy, PolicyStore, format_duration, parse_duration
from gateway_core.store.config_store import ConfigStore
from tests.testbed import CorralDaemon

ON_DEMAND = LoadPolicy(mode="on-demand", idle_ttl_s=300, pin=True, priority=3, load_timeout_s=45)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("600", 600),
        (600, 600),
        (0.5, 0.5),
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        (" 10M ", 600),
        ("0.25s", 0.25),
    ],
)
def test_a_duration_is_seconds_or_numbers_with_units(text: str | float, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "'soon' is not a duration; give seconds or a duration such as 90s, 10m or 1h30m"),
        ("10x", "is not a duration"),
        ("m10", "is not a duration"),
        ("10m 5s", "is not a duration"),
        ("", "is not a duration"),
        ("nan", "is not a duration"),
        ("inf", "is not a duration"),
        (float("inf"), "is not a duration"),
        (True, "is not a duration"),
        ("0", "a duration must be more than 0"),
        ("-5", "a duration must be more than 0"),
        (0, "a duration must be more than 0"),
    ],
)
def test_what_is_not_a_duration_is_refused_saying_what_is(text: str | float, message: str):
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(600, "10m"), (90, "90s"), (5400, "90m"), (7200, "2h"), (86400, "1d"), (0.25, "0.25s")]
)
def test_a_duration_is_written_in_its_shortest_spelling(seconds: float, text: str):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [600, 90, 5400, 129600, 0.25, 1.5, 90.123456789, 1e-7, 2592000, 61])
def test_every_written_duration_reads_back_as_the_same_seconds(seconds: float):
    assert parse_duration(format_duration(seconds)) == seconds


def test_the_default_policy_is_always_up_with_the_issue_s_defaults_for_on_demand():
    policy = LoadPolicy()

    assert (policy.mode, policy.on_demand) == ("always", False)
    assert (policy.idle_ttl_s, policy.pin, policy.priority, policy.load_timeout_s) == (600, False, 0, 120)


@pytest.mark.parametrize(
    "fields",
    [{"mode": "sometimes"}, {"idle_ttl_s": 0}, {"load_timeout_s": 7200}, {"priority": 5000}, {"pin": "yes"}],
)
def test_a_policy_out_of_its_bounds_is_refused(fields: dict[str, object]):
    with pytest.raises(ValidationError):
        LoadPolicy.model_validate(fields)


def test_a_changed_policy_is_kept_in_config_json_across_a_restart(tmp_path: Path):
    store = ConfigStore(tmp_path / "config.json")
    PolicyStore(store).put("qwen", ON_DEMAND)
    store.close()

    reopened = ConfigStore(tmp_path / "config.json")

    assert PolicyStore(reopened).get("qwen") == ON_DEMAND
    assert PolicyStore(reopened).get("other") is None


def test_a_policy_changed_twice_keeps_the_last_and_removing_it_forgets_it(tmp_path: Path):
    policies = PolicyStore(ConfigStore(tmp_path / "config.json"))
    policies.put("qwen", ON_DEMAND)
    policies.put("qwen", ON_DEMAND.model_copy(update={"pin": False}))

    assert policies.get("qwen") == ON_DEMAND.model_copy(update={"pin": False})
    policies.remove("qwen")
    assert policies.get("qwen") is None


def test_a_record_this_version_cannot_read_leaves_the_deployment_s_own_policy_and_stays_on_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    store = ConfigStore(tmp_path / "config.json")
    store.put(POLICY_TABLE, "name", {"name": "qwen", "mode": "on-demand", "idle_ttl_s": 300, "groups": ["a"]})

    assert PolicyStore(store).get("qwen") is None
    assert "the load policy of 'qwen' cannot be read (groups: Extra inputs are not permitted)" in caplog.text
    store.close()
    on_disk = json.loads((tmp_path / "config.json").read_text())[POLICY_TABLE]
    assert [record["groups"] for record in on_disk.values()] == [["a"]]


def test_a_policy_reads_durations_as_text_wherever_it_comes_from():
    policy = LoadPolicy.model_validate({"mode": "on-demand", "idle_ttl_s": "1h", "load_timeout_s": "90s"})

    assert (policy.idle_ttl_s, policy.load_timeout_s) == (3600, 90)
    with pytest.raises(ValidationError, match="'soon' is not a duration"):
        LoadPolicy.model_validate({"idle_ttl_s": "soon"})


def test_a_deploy_body_s_policy_takes_text_durations_and_names_a_bad_one(corral_daemon: CorralDaemon, tiny_model: Path):
    body = {"model_path": str(tiny_model), "gpus": "none", "load": {"mode": "on-demand", "idle_ttl_s": "1h"}}

    planned = corral_daemon.admin_call("POST", "/fleet/plan", json=body)
    refused = corral_daemon.admin_call("POST", "/fleet/plan", json={**body, "load": {"idle_ttl_s": "soon"}})

    assert planned.status_code == 200, planned.text
    assert planned.json()["spec"]["load"]["idle_ttl_s"] == 3600
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "load.idle_ttl_s"
    assert "'soon' is not a duration" in refused.json()["error"]["message"]
