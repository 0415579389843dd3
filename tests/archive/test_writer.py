"""The writer stores every request as one row of its month's file, off the loop, and never holds up the caller."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from gateway_core.archive import SCHEMA_VERSION, ArchiveFileError, HistoryQuery, SqliteArchive, StreamCapture
from gateway_core.archive.writer import BATCH_ROWS
from gateway_core.contracts.history_views import ArchiveStatusView
from tests.archive.records import a_record, archive_in, chat_body, stored
from tests.archive.test_capture import DONE, chat_frame
from tests.testbed.waiting import wait_for_async

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def only_month_file(directory: Path) -> Path:
    (path,) = directory.glob("*.sqlite")
    return path


def month_file(archive: SqliteArchive, month: str) -> Path:
    return archive.settings.directory / f"{month}.sqlite"


@pytest.mark.asyncio
async def test_a_recorded_request_is_stored_with_every_field(archive: SqliteArchive):
    record = a_record(
        started_at=NOV_1 + 100.25,
        first_token_at=NOV_1 + 100.5,
        ended_at=NOV_1 + 102.5,
        source="admin",
        route="completions",
        key_id="k7",
        key_name="billing",
        model="qwen",
        provider="gpu-box",
        upstream_model="qwen2.5-7b.gguf",
        status=502,
        error_code="upstream_failed",
        error_message="box-a refused; gpu-box broke off",
        providers_tried=("box-a", "gpu-box"),
        prompt_tokens=11,
        completion_tokens=40,
        latency_s=2.25,
        ttft_s=0.25,
        stream=True,
        client_address="10.1.2.3",
        bytes_in=321,
        bytes_out=654,
        gpu_seconds=1.5,
        energy_joules=310.0,
    )

    archive.record(record)
    await archive.flush()

    (row,) = stored(month_file(archive, "2026-11"))
    assert dict(row) == {
        "id": record.id,
        "source": "admin",
        "route": "completions",
        "started_at": NOV_1 + 100.25,
        "first_token_at": NOV_1 + 100.5,
        "ended_at": NOV_1 + 102.5,
        "key_id": "k7",
        "key_name": "billing",
        "model": "qwen",
        "provider": "gpu-box",
        "upstream_model": "qwen2.5-7b.gguf",
        "status": 502,
        "error_code": "upstream_failed",
        "error_message": "box-a refused; gpu-box broke off",
        "providers_tried": '["box-a","gpu-box"]',
        "prompt_tokens": 11,
        "completion_tokens": 40,
        "latency_s": 2.25,
        "ttft_s": 0.25,
        "tokens_per_s": 20.0,  # 40 tokens over the 2 s from the first token to the end
        "stream": 1,
        "client_address": "10.1.2.3",
        "bytes_in": 321,
        "bytes_out": 654,
        "capture": "full",
        "gpu_seconds": 1.5,
        "energy_joules": 310.0,
        "request_body": record.request_body.decode(),  # type: ignore[union-attr]
        "request_bytes": len(record.request_body),  # type: ignore[arg-type]
        "request_truncated": 0,
        "response_body": record.response_body.decode(),  # type: ignore[union-attr]
        "response_format": "json",
        "response_bytes": len(record.response_body),  # type: ignore[arg-type]
        "response_truncated": 0,
    }
    detail = await archive.get(record.id)
    assert detail is not None
    assert detail["providers_tried"] == ["box-a", "gpu-box"]
    assert detail["stream"] is True
    assert detail["tokens_per_s"] == 20.0
    assert archive.status()["written"] == 1


@pytest.mark.asyncio
async def test_tokens_per_second_is_none_without_a_first_token_or_completion_tokens(archive: SqliteArchive):
    no_first_token = a_record(first_token_at=None)
    no_tokens = a_record(completion_tokens=None)
    archive.record(no_first_token)
    archive.record(no_tokens)
    await archive.flush()

    for record in (no_first_token, no_tokens):
        detail = await archive.get(record.id)
        assert detail is not None
        assert detail["tokens_per_s"] is None


@pytest.mark.asyncio
async def test_a_full_batch_is_written_without_waiting_for_the_flush_interval(tmp_path: Path):
    archive = archive_in(tmp_path, flush_interval_s=3600)
    await archive.start()
    try:
        await wait_for_async(lambda: archive.status()["written"] == 0, "the writer's first (empty) cycle")
        started = time.time() - 60
        for number in range(BATCH_ROWS):
            archive.record(a_record(started_at=started + number * 0.001))

        await wait_for_async(lambda: archive.status()["written"] == BATCH_ROWS, "a full batch to be written")

        (count,) = stored(
            month_file(archive, datetime.fromtimestamp(started, UTC).strftime("%Y-%m")), "SELECT count(*) FROM requests"
        )
        assert count[0] == BATCH_ROWS
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_requests_go_to_the_month_file_of_their_start_in_utc(archive: SqliteArchive):
    before = a_record(started_at=NOV_1 - 0.5, ended_at=NOV_1 + 1.0)  # started on 31 October, ended in November
    after = a_record(started_at=NOV_1 + 0.5)
    archive.record(before)
    archive.record(after)
    await archive.flush()

    assert [row["id"] for row in stored(month_file(archive, "2026-10"))] == [before.id]
    assert [row["id"] for row in stored(month_file(archive, "2026-11"))] == [after.id]
    assert {"2026-10", "2026-11"} <= set(archive.status()["months"])
    hours = stored(month_file(archive, "2026-10"), "SELECT hour_start, requests FROM rollups")
    assert [tuple(row) for row in hours] == [(int(NOV_1) - 3600, 1)]  # the rollup is in the same file as the row


@pytest.mark.asyncio
async def test_bodies_over_the_cap_are_stored_cut_flagged_and_with_their_original_size(tmp_path: Path):
    archive = archive_in(tmp_path, body_cap=100)
    await archive.start()
    long_question = chat_body("why " * 200)
    record = a_record(request_body=long_question, response_body=b'{"choices": []}')
    archive.record(record)
    await archive.close()

    (row,) = stored(only_month_file(tmp_path))
    assert row["request_truncated"] == 1
    assert row["request_bytes"] == len(long_question)
    assert len(row["request_body"].encode()) <= 100
    assert long_question.decode().startswith(row["request_body"])
    assert row["response_truncated"] == 0  # the answer is under the cap


@pytest.mark.asyncio
async def test_configured_fields_are_redacted_in_the_stored_body_and_left_out_of_the_text_index(tmp_path: Path):
    archive = archive_in(tmp_path, redact=("messages.*.content", "user"))
    await archive.start()
    try:
        record = a_record(request_body=chat_body("my password is hunter2", user="alice@example.com"))
        archive.record(record)
        await archive.flush()

        detail = await archive.get(record.id)
        assert detail is not None
        assert orjson.loads(detail["request_body"] or "") == {
            "model": "tiny",
            "messages": [{"role": "user", "content": "[redacted]"}],
            "user": "[redacted]",
        }
        assert (await archive.search(HistoryQuery(text="hunter2")))["rows"] == []
        assert [row["id"] for row in (await archive.search(HistoryQuery(text="Paris")))["rows"]] == [record.id]
        assert b"hunter2" not in only_month_file(tmp_path).read_bytes()
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_metadata_capture_keeps_no_bodies_and_off_records_are_not_stored(archive: SqliteArchive):
    metadata = a_record(capture="metadata")
    off = a_record(capture="off")
    archive.record(metadata)
    archive.record(off)
    await archive.flush()

    detail = await archive.get(metadata.id)
    assert detail is not None
    assert (detail["request_body"], detail["response_body"], detail["response_format"]) == (None, None, None)
    assert await archive.get(off.id) is None
    assert archive.status()["written"] == 1


@pytest.mark.asyncio
async def test_a_streamed_answer_is_stored_as_its_assembled_text(archive: SqliteArchive):
    capture = StreamCapture(archive.settings.body_cap)
    for chunk in (chat_frame("The answer"), chat_frame(" is 42."), DONE):
        capture.add(chunk)
    record = a_record(stream=True, response_body=None, response_frames=capture)
    archive.record(record)
    await archive.flush()

    detail = await archive.get(record.id)
    assert detail is not None
    assert (detail["response_body"], detail["response_format"]) == ("The answer is 42.", "text")
    assert detail["response_bytes"] == len("The answer is 42.")
    assert [row["id"] for row in (await archive.search(HistoryQuery(text="42")))["rows"]] == [record.id]


@pytest.mark.asyncio
async def test_a_month_file_is_wal_passes_integrity_check_and_says_its_schema_version(archive: SqliteArchive):
    for _ in range(50):
        archive.record(a_record(started_at=NOV_1 + 10))
    await archive.flush()
    path = month_file(archive, "2026-11")

    assert stored(path, "PRAGMA integrity_check")[0][0] == "ok"
    assert stored(path, "PRAGMA journal_mode")[0][0] == "wal"
    assert stored(path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    meta = {row["name"]: row["value"] for row in stored(path, "SELECT name, value FROM meta")}
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert {"created_at", "corral_version", "month"} <= meta.keys()
    connection = sqlite3.connect(path)
    try:  # the text index agrees with itself too
        connection.execute("INSERT INTO requests_text (requests_text, rank) VALUES ('integrity-check', 0)")
    finally:
        connection.close()


@pytest.mark.asyncio
async def test_a_file_of_a_newer_schema_is_refused_for_reading_and_writing(archive: SqliteArchive):
    path = month_file(archive, "2026-11")
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()

    with pytest.raises(ArchiveFileError, match=f"schema version {SCHEMA_VERSION + 1}, newer") as refused:
        await archive.search(HistoryQuery())
    assert "upgrade corral" in refused.value.message

    archive.record(a_record(started_at=NOV_1 + 5))
    await wait_for_async(lambda: archive.status()["state"] == "failing", "the writer to report the refused file")
    assert "newer" in (archive.status()["last_error"] or "")
    assert stored(path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION + 1  # untouched


@pytest.mark.asyncio
async def test_close_writes_everything_still_queued(tmp_path: Path):
    archive = archive_in(tmp_path, flush_interval_s=3600)
    await archive.start()
    records = [a_record(started_at=NOV_1 + i) for i in range(300)]
    for record in records:
        archive.record(record)

    await archive.close()

    assert [row["id"] for row in stored(tmp_path / "2026-11.sqlite")] == [r.id for r in records]
    assert not (tmp_path / "2026-11.sqlite-wal").exists()  # checkpointed: the file stands on its own


@pytest.mark.asyncio
async def test_a_record_after_close_is_dropped_and_counted(tmp_path: Path):
    archive = archive_in(tmp_path)
    await archive.start()
    await archive.close()

    archive.record(a_record())

    assert archive.status()["dropped"] == 1


@pytest.mark.asyncio
async def test_a_request_recorded_twice_is_stored_once(archive: SqliteArchive):
    record = a_record(started_at=NOV_1 + 1)
    archive.record(record)
    await archive.flush()
    archive.record(record)
    archive.record(a_record(started_at=NOV_1 + 2))
    await archive.flush()

    path = month_file(archive, "2026-11")
    assert stored(path, "SELECT count(*) FROM requests")[0][0] == 2
    assert stored(path, "SELECT sum(requests) FROM rollups")[0][0] == 2  # the duplicate was not counted either


@pytest.mark.asyncio
async def test_record_costs_microseconds_on_the_event_loop(archive: SqliteArchive):
    records = [a_record(started_at=NOV_1 + i * 0.001) for i in range(10_000)]

    started = time.perf_counter()
    for record in records:
        archive.record(record)
    per_call_us = (time.perf_counter() - started) / len(records) * 1e6

    assert per_call_us < 20, f"record() took {per_call_us:.1f} µs a call"  # measured about 1 µs here
    await archive.flush()
    assert archive.status()["written"] == len(records)


@pytest.mark.asyncio
async def test_a_blocked_writer_drops_rows_past_the_queue_bound_while_record_never_waits(tmp_path: Path):
    statuses: list[ArchiveStatusView] = []
    archive = archive_in(tmp_path, queue_rows=100, flush_interval_s=0.05, on_status=statuses.append)
    await archive.start()
    try:
        archive.record(a_record(started_at=NOV_1))
        await archive.flush()
        blocker = sqlite3.connect(tmp_path / "2026-11.sqlite", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the file's write lock
        try:
            slowest = 0.0
            started = time.perf_counter()
            for number in range(1000):
                before = time.perf_counter()
                archive.record(a_record(started_at=NOV_1 + 1 + number * 0.001))
                slowest = max(slowest, time.perf_counter() - before)
                if number % 100 == 0:
                    await asyncio.sleep(0)  # let the loop run, as it does between requests
            elapsed = time.perf_counter() - started

            assert archive.status()["dropped"] == 900  # the queue holds 100; the rest are counted, not waited on
            assert slowest < 0.005, f"the slowest record() took {slowest * 1000:.1f} ms"
            assert elapsed < 0.5
            await wait_for_async(lambda: archive.status()["state"] == "failing", "the writer to report the lock")
            assert "locked" in (archive.status()["last_error"] or "")
            await wait_for_async(lambda: statuses and statuses[-1]["state"] == "failing", "on_status: failing")
        finally:
            blocker.rollback()
            blocker.close()

        await archive.flush()
        assert archive.status()["written"] == 101
        await wait_for_async(lambda: archive.status()["state"] == "ok", "the writer to recover")
        await wait_for_async(lambda: statuses[-1]["state"] == "ok", "on_status: ok again")
        assert {"dropping", "failing"} & {status["state"] for status in statuses}
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_thousands_of_requests_started_at_one_instant_are_all_kept_newest_first_by_arrival(
    archive: SqliteArchive,
):
    at = time.time() - 5.0  # a frozen clock's reading: more rows than one microsecond has tiebreaks for
    records = [a_record(started_at=at) for _ in range(2500)]
    for batch in (records[:1200], records[1200:]):
        for record in batch:
            archive.record(record)
        await archive.flush()

    page = await archive.search(HistoryQuery(limit=1000))
    assert archive.status()["written"] == 2500
    assert len({row["id"] for row in page["rows"]}) == 1000
    assert page["rows"][0]["id"] == records[-1].id, "the last written of one instant comes first"
