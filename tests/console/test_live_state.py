"""LiveState rebuilds the daemon's view from one snapshot and then deltas, and says what changed."""

from __future__ import annotations

from console.live_state import APPLIED_KINDS, ENDED_KEPT, IGNORED_KINDS, SECTIONS, LiveState
from gateway_core.contracts.events import EVENT_KINDS
from tests.console.dashboard_data import deployment, fleet, gpus, key, provider, request, snapshot

SNAPSHOT = snapshot(
    providers=[provider("gpu0")],
    keys=[key("k1", "app")],
    requests=[request("req-1", provider="gpu0")],
    gpu_data=gpus(),
    fleet_data=fleet(),
)
SNAPSHOT["models"] = {"tiny": ["gpu0"]}


def ended(request_id: str) -> dict[str, object]:
    return {**request(request_id), "status": 200, "ok": True, "prompt_tokens": 3}


def test_a_snapshot_replaces_everything_and_marks_every_section_changed():
    live = LiveState()

    changed = live.apply("snapshot", SNAPSHOT)

    assert changed == set(SECTIONS)
    assert live.status is not None
    assert live.status["models"] == {"tiny": ["gpu0"]}
    assert list(live.providers) == ["gpu0"]
    assert list(live.keys) == ["k1"]
    assert live.in_flight("gpu0") == 1


def test_deltas_change_only_their_section():
    live = LiveState()
    live.apply("snapshot", SNAPSHOT)

    assert live.apply("provider", provider("gpu0", state="loading")) == {"providers"}
    assert live.providers["gpu0"]["state"] == "loading"
    assert live.apply("request.end", ended("req-1")) == {"requests"}
    assert live.requests == {}
    assert live.finished == 1
    assert live.apply("key.removed", {"id": "k1"}) == {"keys"}
    assert live.apply("key.removed", {"id": "k1"}) == set(), "removing what is gone changes nothing"
    assert live.apply("fleet", fleet(deployment("x"))) == {"fleet"}


def test_a_container_event_changes_nothing_because_the_fleet_event_after_it_carries_the_state():
    live = LiveState()
    live.apply("snapshot", SNAPSHOT)
    container = {
        "action": "start",
        "name": "x",
        "managed": True,
        "time": 1.0,
        "container": "corral-x",
        "id": "3f2a9c1b7d10",
        "detail": None,
    }

    assert live.apply("container", container) == set()
    assert live.fleet["deployments"] == []
    assert live.unknown_kinds == set(), "'container' is ignored by decision, not unknown"


def test_a_kind_this_console_does_not_know_changes_nothing_and_is_noted():
    live = LiveState()

    assert live.apply("queue", {"depth": 3}) == set()  # a kind from a newer daemon

    assert live.unknown_kinds == {"queue"}


def test_every_kind_the_daemon_sends_is_either_applied_or_ignored_by_decision():
    assert set(EVENT_KINDS) == APPLIED_KINDS | IGNORED_KINDS
    assert not APPLIED_KINDS & IGNORED_KINDS


def test_ended_requests_are_kept_for_the_rates_until_taken_and_bounded_until_then():
    live = LiveState()
    for i in range(ENDED_KEPT + 10):
        live.apply("request.end", {**ended(f"req-{i}"), "completion_tokens": 3})

    taken = live.take_ended()

    assert len(taken) == ENDED_KEPT
    assert taken[-1]["id"] == f"req-{ENDED_KEPT + 9}"
    assert live.take_ended() == []
    assert live.finished == ENDED_KEPT + 10
