"""LiveState rebuilds the daemon's view from one snapshot and then deltas, and says what changed."""

from __future__ import annotations

from console.live_state import ENDED_KEPT, SECTIONS, LiveState

SNAPSHOT = {
    "version": "0.1.0",
    "models": {"tiny": ["gpu0"]},
    "providers": [{"name": "gpu0", "state": "ready"}],
    "keys": [{"id": "k1", "name": "app"}],
    "requests": [{"id": "req-1", "provider": "gpu0"}],
    "gpus": {"state": "ok", "devices": []},
    "fleet": {"engine": {"state": "ok", "reason": ""}, "deployments": []},
}


def test_a_snapshot_replaces_everything_and_marks_every_section_changed():
    live = LiveState()

    changed = live.apply("snapshot", SNAPSHOT)

    assert changed == set(SECTIONS)
    assert live.status["models"] == {"tiny": ["gpu0"]}
    assert list(live.providers) == ["gpu0"]
    assert list(live.keys) == ["k1"]
    assert live.in_flight("gpu0") == 1


def test_deltas_change_only_their_section():
    live = LiveState()
    live.apply("snapshot", SNAPSHOT)

    assert live.apply("provider", {"name": "gpu0", "state": "loading"}) == {"providers"}
    assert live.providers["gpu0"]["state"] == "loading"
    assert live.apply("request.end", {"id": "req-1"}) == {"requests"}
    assert live.requests == {}
    assert live.finished == 1
    assert live.apply("key.removed", {"id": "k1"}) == {"keys"}
    assert live.apply("key.removed", {"id": "k1"}) == set(), "removing what is gone changes nothing"
    assert live.apply("container", {"action": "start"}) == set(), "fleet changes arrive as 'fleet' events"
    assert live.apply("fleet", {"engine": {"state": "ok"}, "deployments": [{"name": "x"}]}) == {"fleet"}


def test_ended_requests_are_kept_for_the_rates_until_taken_and_bounded_until_then():
    live = LiveState()
    for i in range(ENDED_KEPT + 10):
        live.apply("request.end", {"id": f"req-{i}", "provider": "gpu0", "completion_tokens": 3})

    ended = live.take_ended()

    assert len(ended) == ENDED_KEPT
    assert ended[-1]["id"] == f"req-{ENDED_KEPT + 9}"
    assert live.take_ended() == []
    assert live.finished == ENDED_KEPT + 10
