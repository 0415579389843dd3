"""What the event stream sends in one batch: each request's last word, and every other event as it came."""

from __future__ import annotations

from gateway_core.events import Event, squash_requests


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
