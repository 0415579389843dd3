"""History search: newest first across the month files a range touches, filtered, a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway_core.archive import HistoryQuery, SqliteArchive
from gateway_core.archive.search import MAX_LIMIT
from gateway_core.contracts.errors import GatewayError
from tests.archive.records import a_record, chat_answer, chat_body

OCT_20 = datetime(2026, 10, 20, tzinfo=UTC).timestamp()
NOV_10 = datetime(2026, 11, 10, tzinfo=UTC).timestamp()


async def ids(archive: SqliteArchive, **filters: object) -> list[str]:
    page = await archive.search(HistoryQuery(**filters))  # type: ignore[arg-type]
    return [row["id"] for row in page["rows"]]


@pytest.mark.asyncio
async def test_pages_come_newest_first_across_two_months_and_the_cursor_walks_them_without_gaps(
    archive: SqliteArchive,
):
    october = [a_record(started_at=OCT_20 + i * 60) for i in range(12)]
    november = [a_record(started_at=NOV_10 + i * 60) for i in range(13)]
    for record in [*november[::2], *october, *november[1::2]]:  # written out of order, as requests end
        archive.record(record)
    await archive.flush()
    expected = [r.id for r in sorted([*october, *november], key=lambda r: r.started_at, reverse=True)]

    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        page = await archive.search(HistoryQuery(limit=10, cursor=cursor))
        pages.append(page)
        seen += [row["id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == expected
    assert [len(page["rows"]) for page in pages] == [10, 10, 5]
    assert pages[0]["months"] == ["2026-11"]
    assert pages[1]["months"] == ["2026-10", "2026-11"]  # its rows span both files
    assert pages[2]["months"] == ["2026-10"]


@pytest.mark.asyncio
async def test_rows_started_in_the_same_microsecond_are_paged_without_loss_or_repeat(archive: SqliteArchive):
    records = [a_record(started_at=NOV_10) for _ in range(7)]
    for record in records:
        archive.record(record)
    await archive.flush()

    first = await archive.search(HistoryQuery(limit=4))
    second = await archive.search(HistoryQuery(limit=4, cursor=first["next_cursor"]))

    paged = [r["id"] for r in first["rows"] + second["rows"]]
    assert paged == [r.id for r in reversed(records)]  # ties: the last written first
    assert second["next_cursor"] is None


@pytest.mark.asyncio
async def test_filters_by_key_id_or_name_model_provider_and_time(archive: SqliteArchive):
    alpha = a_record(started_at=NOV_10 + 1, key_id="ka", key_name="alpha", model="qwen", provider="box-a")
    beta = a_record(started_at=NOV_10 + 2, key_id="kb", key_name="beta", model="llama", provider="box-b")
    early = a_record(started_at=OCT_20, key_id="ka", key_name="alpha", model="llama", provider="box-b")
    for record in (alpha, beta, early):
        archive.record(record)
    await archive.flush()

    assert await ids(archive, key="ka") == [alpha.id, early.id]
    assert await ids(archive, key="alpha") == [alpha.id, early.id]
    assert await ids(archive, key="beta") == [beta.id]
    assert await ids(archive, model="llama") == [beta.id, early.id]
    assert await ids(archive, provider="box-a") == [alpha.id]
    assert await ids(archive, key="alpha", model="llama") == [early.id]
    assert await ids(archive, since=NOV_10) == [beta.id, alpha.id]
    assert await ids(archive, until=NOV_10 + 2) == [alpha.id, early.id]  # until is exclusive
    assert await ids(archive, since=NOV_10 + 1, until=NOV_10 + 1.5) == [alpha.id]
    page = await archive.search(HistoryQuery(since=NOV_10))
    assert page["months"] == ["2026-11"]  # October's file is not read for a November range


@pytest.mark.asyncio
async def test_status_filters_take_a_code_a_class_ok_or_error(archive: SqliteArchive):
    by_status = {status: a_record(started_at=NOV_10 + status, status=status) for status in (200, 201, 401, 429, 502)}
    for record in by_status.values():
        archive.record(record)
    await archive.flush()

    def named(*statuses: int) -> list[str]:
        return [by_status[s].id for s in sorted(statuses, reverse=True)]

    assert await ids(archive, status="200") == named(200)
    assert await ids(archive, status="4xx") == named(401, 429)
    assert await ids(archive, status="5xx") == named(502)
    assert await ids(archive, status="ok") == named(200, 201)
    assert await ids(archive, status="error") == named(401, 429, 502)
    with pytest.raises(GatewayError, match="not a filter") as refused:
        await archive.search(HistoryQuery(status="bad"))
    assert (refused.value.status, refused.value.param) == (400, "status")


@pytest.mark.asyncio
async def test_text_search_finds_the_words_people_wrote_and_read_not_the_json_keys(archive: SqliteArchive):
    question = a_record(started_at=NOV_10 + 1, request_body=chat_body("How do I bake sourdough bread?"))
    answer = a_record(started_at=NOV_10 + 2, response_body=chat_answer("Use a ripe starter and a hot oven."))
    completion = a_record(
        started_at=NOV_10 + 3, route="completions", request_body=b'{"model": "tiny", "prompt": "Once upon a time"}'
    )
    for record in (question, answer, completion):
        archive.record(record)
    await archive.flush()

    assert await ids(archive, text="sourdough") == [question.id]
    assert await ids(archive, text="starter oven") == [answer.id]
    assert await ids(archive, text='"upon a time"') == [completion.id]
    assert await ids(archive, text="sourd*") == [question.id]
    assert await ids(archive, text="messages") == []  # a JSON key, not a word anyone wrote
    assert await ids(archive, text="role") == []
    assert await ids(archive, text="sourdough", model="other") == []


@pytest.mark.asyncio
async def test_text_that_is_not_fts5_syntax_is_searched_as_plain_words(archive: SqliteArchive):
    record = a_record(started_at=NOV_10, request_body=chat_body("what does key:value mean? don't know"))
    archive.record(record)
    await archive.flush()

    assert await ids(archive, text="key:value") == [record.id]
    assert await ids(archive, text="don't") == [record.id]


@pytest.mark.asyncio
async def test_the_page_size_is_capped(archive: SqliteArchive):
    for i in range(MAX_LIMIT + 5):
        archive.record(a_record(started_at=NOV_10 + i))
    await archive.flush()

    page = await archive.search(HistoryQuery(limit=5000))

    assert len(page["rows"]) == MAX_LIMIT
    assert page["next_cursor"] is not None


@pytest.mark.asyncio
async def test_a_cursor_this_archive_did_not_give_is_the_clients_error(archive: SqliteArchive):
    with pytest.raises(GatewayError, match="next_cursor") as refused:
        await archive.search(HistoryQuery(cursor="garbage"))

    assert (refused.value.status, refused.value.param) == (400, "cursor")


@pytest.mark.asyncio
async def test_get_finds_a_request_by_id_in_its_month_or_by_looking_through_every_month(archive: SqliteArchive):
    october = a_record(started_at=OCT_20)
    november = a_record(started_at=NOV_10)
    odd_id = a_record(started_at=OCT_20 + 5, id="imported-0001")  # an id that names no month
    for record in (october, november, odd_id):
        archive.record(record)
    await archive.flush()

    for record in (october, november, odd_id):
        found = await archive.get(record.id)
        assert found is not None
        assert found["id"] == record.id
        assert found["started_at"] == record.started_at
    assert await archive.get("req_ffffffffffff0000000000000000") is None
    assert await archive.get("nothing") is None


@pytest.mark.asyncio
async def test_an_empty_archive_answers_an_empty_page(archive: SqliteArchive):
    assert await archive.search(HistoryQuery()) == {"rows": [], "next_cursor": None, "months": []}
