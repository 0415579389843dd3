"""The archive fed by the real pipeline, in process, with the fake clock: months, a blocked writer, export.

The upstream is a real llama-server; the gateway's objects run in the test's event loop, so the clock that
stamps each record is the test's.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway_core.archive.export import import_jsonl
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.contracts.instants import month_of
from tests.testbed.waiting import wait_for_async

pytestmark = [pytest.mark.llama_server, pytest.mark.asyncio]

BODY = {"messages": [{"role": "user", "content": "Tell me of wombats."}], "max_tokens": 2}


def seconds_to_next_month(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return following.timestamp() - now


async def written(gateway: Any, request_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def present() -> bool:
        response = await gateway.admin.get(f"/history/{request_id}")
        if response.status_code == 200:
            found.update(response.json())
        return bool(found)

    await wait_for_async(present, f"request {request_id} in the archive")
    return found


async def test_requests_either_side_of_midnight_at_a_month_end_go_to_their_own_months_files(
    start_gateway, shared_llama_server
):
    async with start_gateway() as gateway:
        await gateway.add_provider("local", shared_llama_server.base_url)
        key = await gateway.create_key("app")
        gateway.clock.advance(seconds_to_next_month(gateway.clock.time()) - 0.5)
        before = await gateway.chat(key, **BODY)
        gateway.clock.advance(1.0)  # past midnight UTC, into the next month
        after = await gateway.chat(key, **BODY)

        first = await written(gateway, before.headers["x-request-id"])
        second = await written(gateway, after.headers["x-request-id"])
        archive = gateway.data_dir / "archive"

        assert month_of(first["started_at"]) != month_of(second["started_at"])
        for row in (first, second):
            with sqlite3.connect(archive / f"{month_of(row['started_at'])}.sqlite") as db:
                ids = [found for (found,) in db.execute("SELECT id FROM requests")]
            assert ids == [row["id"]]
        page = (await gateway.admin.get("/history")).json()
        assert [row["id"] for row in page["rows"]] == [second["id"], first["id"]]  # across both months, newest first


async def test_a_blocked_writer_drops_rows_counts_them_and_no_request_waits_for_it(
    start_gateway, shared_llama_server, tmp_path
):
    data_dir = tmp_path / "blocked"
    settings = ArchiveSettings(directory=data_dir / "archive", queue_rows=20)
    async with start_gateway(data_dir, archive=settings) as gateway:
        await gateway.add_provider("local", shared_llama_server.base_url)
        key = await gateway.create_key("app")
        first = await gateway.chat(key, **BODY)
        await written(gateway, first.headers["x-request-id"])
        path = data_dir / "archive" / f"{month_of(gateway.clock.time())}.sqlite"
        blocker = sqlite3.connect(path, timeout=0.1)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer can neither write nor checkpoint
        try:
            started = time.perf_counter()
            for _ in range(60):
                assert (await gateway.chat(key, **BODY)).status_code == 200
            took = time.perf_counter() - started
            status = (await gateway.admin.get("/archive")).json()
            assert status["dropped"] >= 60 - 20 - 2, status  # the queue holds 20; past it rows are dropped
            assert status["state"] in ("dropping", "failing")
            metrics = (await gateway.public.get("/metrics", headers={"authorization": f"Bearer {key}"})).text
            assert "corral_archive_rows_dropped_total" in metrics
        finally:
            blocker.rollback()
            blocker.close()
        print(f"60 requests with the writer blocked took {took:.2f}s")

        async def caught_up() -> bool:
            return (await gateway.admin.get("/archive")).json()["queued"] == 0

        await wait_for_async(caught_up, "the writer to write what it held once the lock went")
        later = await gateway.chat(key, **BODY)
        await written(gateway, later.headers["x-request-id"])  # the writer resumes once the lock goes


async def test_a_month_exported_as_json_lines_and_imported_into_a_fresh_file_gives_back_the_same_rows(
    gateway, shared_llama_server, tmp_path
):
    await gateway.add_provider("local", shared_llama_server.base_url)
    key = await gateway.create_key("app")
    ids = [(await gateway.chat(key, **BODY)).headers["x-request-id"] for _ in range(5)]
    ids.append((await gateway.chat(key, stream=True, **BODY)).headers["x-request-id"])
    ids.append((await gateway.chat("sk-corral-nobody-x", **BODY)).headers["x-request-id"])
    for request_id in ids:
        await written(gateway, request_id)
    month = month_of(gateway.clock.time())

    exported = await gateway.admin.get("/history/export", params={"month": month, "format": "jsonl"})
    assert exported.status_code == 200
    copy = tmp_path / "copy" / f"{month}.sqlite"
    copy.parent.mkdir()
    import_jsonl(exported.content.splitlines(), copy)

    def rows(path: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT * FROM requests ORDER BY id").fetchall()

    original = gateway.data_dir / "archive" / f"{month}.sqlite"
    assert len(rows(original)) == len(ids)
    assert rows(copy) == rows(original)
