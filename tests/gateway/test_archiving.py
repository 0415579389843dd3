"""The archive record the pipeline builds when a request ends: every field from where it was gathered.

`finished` passes the struct's fields by position (the fast way), so each one is checked here by name, with a
distinct value per field so that two fields swapped would show.
"""

from __future__ import annotations

from gateway_core.archive.capture import StreamCapture
from gateway_core.contracts.adapter import Usage
from gateway_core.gateway import archiving
from gateway_core.gateway.accounting import LiveRequest


def test_a_finished_request_record_carries_each_field_from_its_live_request():
    frames = StreamCapture(1024)
    live = LiveRequest(
        id="req_1",
        key_id="key-id",
        key_name="key-name",
        model="public-model",
        route="chat",
        stream=True,
        provider="the-provider",
        started_at=1000.0,
        started_mono=50.0,
        first_token_mono=50.25,
    )
    live.source = "admin"
    live.capture = "full"
    live.client_address = "127.0.0.9"
    live.bytes_in = 111
    live.bytes_out = 222
    live.providers_tried = ("first", "the-provider")
    live.upstream_model = "upstream-model"
    live.error_code = "some_code"
    live.error_message = "some message"
    live.request_body = b"request"
    live.response_body = b"response"
    live.frames = frames

    record = archiving.finished(live, status=502, usage=Usage(7, 9), duration_s=2.0, ttft_s=0.25, gpu=(1.5, 300.0))

    assert record.id == "req_1"
    assert record.source == "admin"
    assert record.route == "chat"
    assert record.started_at == 1000.0
    assert record.first_token_at == 1000.25
    assert record.ended_at == 1002.0
    assert record.key_id == "key-id"
    assert record.key_name == "key-name"
    assert record.model == "public-model"
    assert record.provider == "the-provider"
    assert record.upstream_model == "upstream-model"
    assert record.status == 502
    assert record.error_code == "some_code"
    assert record.error_message == "some message"
    assert record.providers_tried == ("first", "the-provider")
    assert record.prompt_tokens == 7
    assert record.completion_tokens == 9
    assert record.latency_s == 2.0
    assert record.ttft_s == 0.25
    assert record.stream is True
    assert record.client_address == "127.0.0.9"
    assert record.bytes_in == 111
    assert record.bytes_out == 222
    assert record.capture == "full"
    assert record.request_body == b"request"
    assert record.response_body == b"response"
    assert record.response_frames is frames
    assert record.gpu_seconds == 1.5
    assert record.energy_joules == 300.0


def test_a_failed_request_that_counted_no_tokens_records_none_rather_than_zero():
    live = LiveRequest(id="req_2", key_id="k", key_name="n", model="m", route="chat", stream=False)

    record = archiving.finished(live, status=503, usage=Usage(), duration_s=0.1, ttft_s=None, gpu=(None, None))

    assert (record.prompt_tokens, record.completion_tokens) == (None, None)
    assert record.first_token_at is None
    assert record.provider is None
