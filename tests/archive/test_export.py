"""A month exports as JSON lines or CSV, streamed in pieces, and JSON lines import back into the same rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from gateway_core.archive import HistoryQuery, SqliteArchive, StreamCapture, UsageQuery, import_jsonl
from gateway_core.archive.export import EXPORT_BLOCK_ROWS
from gateway_core.archive.schema import REQUEST_COLUMNS
from gateway_core.contracts.errors import GatewayError
from tests.archive.records import a_record, archive_in, chat_body, stored
from tests.archive.test_capture import DONE, chat_frame

NOV_10 = datetime(2026, 11, 10, tzinfo=UTC).timestamp()


async def exported(archive: SqliteArchive, month: str, fmt: str) -> list[bytes]:
    return [piece async for piece in archive.export(month, fmt)]  # type: ignore[arg-type]


async def a_varied_month(archive: SqliteArchive, count: int) -> None:
    for number in range(count):
        capture = None
        if number % 3 == 0:
            capture = StreamCapture(archive.settings.body_cap)
            for chunk in (chat_frame(f"streamed answer {number}"), DONE):
                capture.add(chunk)
        archive.record(
            a_record(
                started_at=NOV_10 + number,
                status=(200, 429, 502)[number % 3],
                stream=capture is not None,
                request_body=chat_body(f"question number {number} about élan"),
                response_body=None if capture else b'{"choices": [{"message": {"content": "plain"}}]}',
                response_frames=capture,
                gpu_seconds=0.5 if number % 2 else None,
                key_id=f"k{number % 4}",
                key_name=f"app-{number % 4}",
                first_token_at=None if number % 5 == 0 else NOV_10 + number + 0.1,
            )
        )
    await archive.flush()


@pytest.mark.asyncio
async def test_export_then_import_into_a_fresh_file_gives_back_the_same_rows_column_by_column(
    archive: SqliteArchive, tmp_path: Path
):
    await a_varied_month(archive, 1234)
    pieces = await exported(archive, "2026-11", "jsonl")

    lines = b"".join(pieces).splitlines()
    copy = tmp_path / "copy" / "2026-11.sqlite"
    assert import_jsonl(lines, copy) == 1234

    original = stored(archive.settings.directory / "2026-11.sqlite")
    imported = stored(copy)
    assert len(imported) == len(original) == 1234
    for before, after in zip(original, imported, strict=True):
        for column in REQUEST_COLUMNS:
            assert after[column] == before[column], (before["id"], column)
    assert stored(copy, "PRAGMA integrity_check")[0][0] == "ok"
    # The copy is a working archive: its text index and rollups were rebuilt as the writer builds them.
    rollups = "SELECT * FROM rollups ORDER BY hour_start, key_id, model, provider"
    assert [tuple(r) for r in stored(copy, rollups)] == [tuple(r) for r in stored(original_path(archive), rollups)]
    reopened = archive_in(copy.parent)
    await reopened.start()
    try:
        found = await reopened.search(HistoryQuery(text='"question number 77"'))
        assert [row["id"] for row in found["rows"]] == [original[77]["id"]]
        assert await reopened.usage(UsageQuery(since=NOV_10, until=NOV_10 + 86400)) == await archive.usage(
            UsageQuery(since=NOV_10, until=NOV_10 + 86400)
        )
    finally:
        await reopened.close()


def original_path(archive: SqliteArchive) -> Path:
    return archive.settings.directory / "2026-11.sqlite"


@pytest.mark.asyncio
async def test_export_streams_a_month_in_blocks_with_every_column_and_the_bodies(archive: SqliteArchive):
    await a_varied_month(archive, EXPORT_BLOCK_ROWS * 2 + 10)

    pieces = await exported(archive, "2026-11", "jsonl")

    assert len(pieces) == 3  # one per block of rows: never the whole month at once
    first = orjson.loads(pieces[0].splitlines()[0])
    assert list(first) == list(REQUEST_COLUMNS)
    assert first["request_body"].startswith('{"model":"tiny"')
    assert first["stream"] is True
    assert isinstance(first["providers_tried"], list)


@pytest.mark.asyncio
async def test_csv_export_has_a_header_row_then_one_row_per_request(archive: SqliteArchive):
    await a_varied_month(archive, 20)

    text = b"".join(await exported(archive, "2026-11", "csv")).decode()

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(REQUEST_COLUMNS)
    assert len(rows) == 21
    body = rows[1][REQUEST_COLUMNS.index("request_body")]
    assert orjson.loads(body)["messages"][0]["content"] == "question number 0 about élan"


@pytest.mark.asyncio
async def test_exporting_a_missing_or_malformed_month_or_format_is_the_clients_error(archive: SqliteArchive):
    with pytest.raises(GatewayError, match="no archive for 2020-01") as missing:
        await exported(archive, "2020-01", "jsonl")
    assert missing.value.status == 404
    with pytest.raises(GatewayError, match="YYYY-MM") as malformed:
        await exported(archive, "2020-1", "jsonl")
    assert (malformed.value.status, malformed.value.param) == (400, "month")
    archive.record(a_record(started_at=NOV_10))
    await archive.flush()
    with pytest.raises(GatewayError, match="jsonl or csv") as bad_format:
        await exported(archive, "2026-11", "xml")
    assert bad_format.value.param == "format"


def test_import_refuses_to_write_over_an_existing_file(tmp_path: Path):
    existing = tmp_path / "2026-11.sqlite"
    existing.write_bytes(b"")

    with pytest.raises(FileExistsError, match="fresh month file"):
        import_jsonl([], existing)


def test_import_names_the_line_that_is_not_an_exported_row(tmp_path: Path):
    path = tmp_path / "2026-11.sqlite"

    with pytest.raises(ValueError, match="line 2 is not an exported archive row"):
        import_jsonl([b"", b"[1, 2]"], path)

    assert not path.exists()  # no half-imported file is left behind
