"""The event stream: what one batch sends (each request's last word, every other event as it came), and the
kinds and payloads both ends share (gateway_core/contracts/events.py), which mypy holds publishers to."""

from __future__ import annotations

import os
import textwrap
import typing
from pathlib import Path

import mypy.api

from gateway_core.contracts.events import EVENT_KINDS, DaemonEvent, Publish
from gateway_core.events import Event, EventBus, squash_requests

ROOT = Path(__file__).resolve().parent.parent


def event(seq: int, kind: str, **data) -> Event:
    return Event(seq, kind, data, 0.0)


def test_a_batch_keeps_each_requests_last_event_and_every_other_event_in_order():
    batch = [
        event(1, "request.start", id="r1"),
        event(2, "request.start", id="r2"),
        event(3, "provider", name="gpu0"),
        event(4, "request.progress", id="r1", completion_tokens=5),
        event(5, "request.progress", id="r2", completion_tokens=9),
        event(6, "request.end", id="r1", completion_tokens=8),
        event(7, "key", id="k1"),
    ]

    assert [e.seq for e in squash_requests(batch)] == [3, 5, 6, 7]


def test_a_request_that_starts_and_ends_in_one_batch_arrives_as_its_end_alone():
    batch = [event(1, "request.start", id="r1"), event(2, "request.end", id="r1", completion_tokens=3)]

    assert squash_requests(batch) == [batch[1]]


def test_events_of_other_kinds_that_carry_an_id_are_never_squashed():
    batch = [event(1, "key", id="k1"), event(2, "key", id="k1"), event(3, "key.removed", id="k1")]

    assert squash_requests(batch) == batch


def test_every_subscriber_gets_each_published_event_in_order_with_rising_sequence_numbers():
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()

    bus.publish("key.removed", {"id": "k1"})
    bus.publish("provider.removed", {"name": "gpu0"})

    for queue in (first, second):
        got = [queue.get_nowait(), queue.get_nowait()]
        assert [(e.kind, e.data) for e in got] == [
            ("key.removed", {"id": "k1"}),
            ("provider.removed", {"name": "gpu0"}),
        ]
        assert got[0].seq < got[1].seq


def _kinds(annotation: object) -> set[str]:
    return set(typing.get_args(annotation))


def test_each_kind_has_one_publish_signature_and_one_client_pair_and_only_the_stream_sends_snapshots():
    published: list[str] = []
    for signature in typing.get_overloads(Publish.__call__):
        published += _kinds(typing.get_type_hints(signature)["kind"])
    yielded = [kind for pair in typing.get_args(DaemonEvent) for kind in _kinds(typing.get_args(pair)[0])]

    assert sorted(published) == sorted(set(EVENT_KINDS) - {"snapshot"})  # each exactly once
    assert sorted(yielded) == sorted(EVENT_KINDS)
    assert {"gpus", "container"} <= set(EVENT_KINDS)


def test_publishing_an_unknown_kind_or_another_kinds_payload_is_a_type_error(tmp_path: Path):
    program = tmp_path / "publisher.py"
    program.write_text(
        textwrap.dedent(
            """
            from gateway_core.events import EventBus

            bus = EventBus()
            bus.publish("key.removed", {"id": "k1"})
            bus.publish("gpu", {"state": "ok"})
            bus.publish("key.removed", {"name": "gpu0"})
            """
        )
    )

    options = ["--no-incremental", "--cache-dir", os.devnull, "--config-file", str(ROOT / "pyproject.toml")]
    report, _, status = mypy.api.run([*options, str(program)])

    errors = [line for line in report.splitlines() if ": error:" in line]
    assert status == 1
    assert [line.split(":")[1] for line in errors] == ["6", "7"], report
