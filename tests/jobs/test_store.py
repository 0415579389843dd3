"""The job store over jobs.sqlite: durable when a call returns, concurrent writes sharing one COMMIT, one job per
(key, ref_id), newest-first pages, and what a reopen after a crash gives back to run."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from gateway_core.contracts.errors import GatewayError
from gateway_core.jobs.model import Job, new_job_id
from gateway_core.jobs.sqlite_store import SCHEMA_VERSION, SqliteJobStore

NOW = 1_800_000_000.0
BODY = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":1}'


def a_job(key_id: str = "k1", *, ref_id: str | None = None, tag: str | None = None, at: float = NOW) -> Job:
    return Job(
        id=new_job_id(at),
        key_id=key_id,
        route="chat",
        model="tiny",
        body=BODY,
        seq=0,
        created_at=at,
        queued_at=at,
        ref_id=ref_id,
        tag=tag,
    )


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    await store.open()
    yield store
    await store.close()


def rows_on_disk(path: Path) -> dict[str, tuple[str, int, int]]:
    """id -> (state, attempts, callback_due), read by a connection of its own, as another process would."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT id, state, attempts, callback_due FROM jobs").fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


@pytest.mark.asyncio
async def test_an_added_job_is_on_disk_when_add_returns(store: SqliteJobStore):
    job, added = await store.add(a_job(ref_id="order-1"))

    assert added
    assert job.seq >= 1
    assert rows_on_disk(store.path) == {job.id: ("queued", 0, 0)}
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.asyncio
async def test_concurrent_adds_share_commits_and_all_are_stored(store: SqliteJobStore):
    before = store.transactions

    results = await asyncio.gather(*(store.add(a_job(ref_id=f"r{i}")) for i in range(300)))

    assert all(added for _, added in results)
    assert len({job.seq for job, _ in results}) == 300
    assert len(rows_on_disk(store.path)) == 300
    assert store.transactions - before < 300  # group commit: some COMMITs carried several adds


@pytest.mark.asyncio
async def test_a_second_add_with_the_same_key_and_ref_id_returns_the_first_job(store: SqliteJobStore):
    first, _ = await store.add(a_job("k1", ref_id="order-7"))

    again, added = await store.add(a_job("k1", ref_id="order-7"))
    other_key, other_added = await store.add(a_job("k2", ref_id="order-7"))

    assert not added
    assert again.id == first.id
    assert again.seq == first.seq
    assert other_added  # ref_ids are unique per key, not across keys
    assert other_key.id != first.id
    assert len(rows_on_disk(store.path)) == 2


@pytest.mark.asyncio
async def test_duplicate_ref_ids_in_one_group_commit_make_one_job(store: SqliteJobStore):
    results = await asyncio.gather(*(store.add(a_job("k1", ref_id="same")) for _ in range(20)))

    assert sum(added for _, added in results) == 1
    assert len({job.id for job, _ in results}) == 1
    assert len(rows_on_disk(store.path)) == 1


@pytest.mark.asyncio
async def test_jobs_without_a_ref_id_are_never_taken_for_each_other(store: SqliteJobStore):
    results = await asyncio.gather(*(store.add(a_job("k1")) for _ in range(5)))

    assert all(added for _, added in results)
    assert len(rows_on_disk(store.path)) == 5


@pytest.mark.asyncio
async def test_a_job_is_found_by_id_and_by_its_keys_ref_id(store: SqliteJobStore):
    job, _ = await store.add(a_job("k1", ref_id="order-9", tag="nightly"))

    by_id = await store.get(job.id)
    by_ref = await store.find_ref("k1", "order-9")

    assert by_id == job
    assert by_ref == job
    assert await store.find_ref("k2", "order-9") is None
    assert await store.get("job_00000000000000000000000000") is None


@pytest.mark.asyncio
async def test_seq_follows_submission_order_and_lists_are_newest_first(store: SqliteJobStore):
    added = [(await store.add(a_job(ref_id=f"r{i}")))[0] for i in range(5)]

    page, next_cursor = await store.list(None, None, None, 10, None)

    assert [job.seq for job in added] == sorted(job.seq for job in added)
    assert [job.id for job in page] == [job.id for job in reversed(added)]
    assert next_cursor is None


@pytest.mark.asyncio
async def test_cursor_pages_cover_every_job_once(store: SqliteJobStore):
    ids = {(await store.add(a_job()))[0].id for _ in range(23)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0

    while True:
        page, cursor = await store.list(None, None, None, 5, cursor)
        seen.extend(job.id for job in page)
        pages += 1
        if cursor is None:
            break

    assert pages == 5
    assert len(seen) == 23
    assert set(seen) == ids


@pytest.mark.asyncio
async def test_lists_filter_by_key_tag_and_state(store: SqliteJobStore):
    a1, _ = await store.add(a_job("a", tag="batch"))
    a2, _ = await store.add(a_job("a"))
    b1, _ = await store.add(a_job("b", tag="batch"))
    await store.started(a2.id, 1, "local", NOW + 1)

    by_key = [job.id for job in (await store.list("a", None, None, 10, None))[0]]
    by_tag = [job.id for job in (await store.list(None, "batch", None, 10, None))[0]]
    running = [job.id for job in (await store.list(None, None, "running", 10, None))[0]]
    a_batch_queued = [job.id for job in (await store.list("a", "batch", "queued", 10, None))[0]]

    assert by_key == [a2.id, a1.id]
    assert by_tag == [b1.id, a1.id]
    assert running == [a2.id]
    assert a_batch_queued == [a1.id]


@pytest.mark.asyncio
async def test_a_cursor_this_store_never_gave_is_refused(store: SqliteJobStore):
    with pytest.raises(GatewayError) as refused:
        await store.list(None, None, None, 5, "not-a-cursor")

    assert refused.value.status == 400
    assert refused.value.param == "cursor"


@pytest.mark.asyncio
async def test_a_final_state_and_its_callback_due_are_written_together(store: SqliteJobStore):
    job, _ = await store.add(a_job())
    await store.started(job.id, 1, "local", NOW + 1)

    final = await store.finished(
        job.id,
        "succeeded",
        NOW + 2,
        {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        b'{"id":"chatcmpl-1"}',
        None,
        True,
    )

    assert final is not None
    assert (final.state, final.finals, final.callback_due) == ("succeeded", 1, True)
    assert rows_on_disk(store.path)[job.id] == ("succeeded", 1, 1)
    assert [due.id for due in await store.callbacks_due()] == [job.id]
    await store.callback_enqueued(job.id)
    assert await store.callbacks_due() == []
    assert rows_on_disk(store.path)[job.id] == ("succeeded", 1, 0)


@pytest.mark.asyncio
async def test_counts_are_by_state(store: SqliteJobStore):
    first, _ = await store.add(a_job())
    second, _ = await store.add(a_job())
    await store.add(a_job())
    await store.started(first.id, 1, "local", NOW)
    await store.finished(second.id, "cancelled", NOW, None, None, None, False)

    assert await store.counts() == {"queued": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 1}


@pytest.mark.asyncio
async def test_reopening_gives_back_the_queued_jobs_and_those_running_at_a_crash(tmp_path: Path):
    path = tmp_path / "jobs.sqlite"
    store = SqliteJobStore(path)
    await store.open()
    queued, _ = await store.add(a_job(ref_id="q"))
    running, _ = await store.add(a_job(ref_id="r"))
    done, _ = await store.add(a_job(ref_id="d"))
    await store.started(running.id, 2, "local", NOW + 1)
    await store.finished(done.id, "failed", NOW + 2, None, None, {"message": "x", "type": "t", "code": None}, True)
    await store.close()

    reopened = SqliteJobStore(path)
    to_run = await reopened.open()
    try:
        assert [job.id for job in to_run] == [queued.id, running.id]  # oldest first
        again = {job.id: job for job in to_run}[running.id]
        assert (again.state, again.attempts, again.provider) == ("queued", 2, "local")
        kept = await reopened.get(done.id)
        assert kept is not None
        assert kept.state == "failed"
        assert kept.error == {"message": "x", "type": "t", "code": None}
        assert [job.id for job in await reopened.callbacks_due()] == [done.id]
        assert (await reopened.find_ref("k1", "d")) == kept
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_an_operator_retry_queues_a_failed_job_with_a_fresh_budget(store: SqliteJobStore):
    job, _ = await store.add(a_job())
    await store.started(job.id, 3, "local", NOW + 1)
    await store.finished(job.id, "failed", NOW + 2, None, None, {"message": "x", "type": "t", "code": None}, False)

    retried = await store.retry(job.id, NOW + 10)

    assert retried is not None
    assert (retried.state, retried.attempts, retried.base_attempts) == ("queued", 3, 3)
    assert (retried.queued_at, retried.finished_at, retried.error) == (NOW + 10, None, None)


@pytest.mark.asyncio
async def test_a_store_of_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteJobStore(path)

    with pytest.raises(GatewayError, match="newer than this corral-core"):
        await store.open()
    await store.close()


@pytest.mark.asyncio
async def test_writes_after_close_are_refused(tmp_path: Path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    await store.open()
    await store.close()

    with pytest.raises(RuntimeError, match="closed"):
        await store.add(a_job())


@pytest.mark.asyncio
async def test_a_write_that_fails_fails_only_its_own_caller_in_a_shared_commit(store: SqliteJobStore):
    first = a_job()
    clash = msgspec.structs.replace(a_job(), id=first.id)  # the same id: refused by the table's UNIQUE id

    results = await asyncio.gather(store.add(first), store.add(clash), store.add(a_job()), return_exceptions=True)

    assert isinstance(results[1], GatewayError)
    assert results[1].status == 503
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert len(rows_on_disk(store.path)) == 2


@pytest.mark.asyncio
async def test_the_store_file_is_readable_by_its_owner_only(store: SqliteJobStore):
    await store.add(a_job())

    for path in store.path.parent.glob("jobs.sqlite*"):
        assert path.stat().st_mode & 0o777 == 0o600, path
