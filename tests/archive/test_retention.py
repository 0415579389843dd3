"""Whole month files are pruned (moved to old/ or deleted), never the current one, on request or by retention."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway_core.archive import HistoryQuery, SqliteArchive
from gateway_core.archive.months import month_add, month_start
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.instants import month_of
from tests.archive.records import a_record, archive_in
from tests.fakes.clock import FakeClock

HOUR = 3600.0


def open_files() -> set[str]:
    """What this process holds open: a pruned file must not be among them."""
    fds = Path("/proc/self/fd")
    names = set()
    for fd in os.listdir(fds):
        try:
            names.add(os.readlink(fds / fd))
        except OSError:
            continue
    return names


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def months_archived(directory: Path, months: list[str]) -> None:
    """One request in each of these months, through an archive of its own."""
    archive = archive_in(directory)
    await archive.start()
    for month in months:
        archive.record(a_record(started_at=month_start(month) + 3600))
    await archive.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def this_month(clock: FakeClock) -> str:
    return month_of(clock.time())


@pytest.mark.asyncio
async def test_prune_moves_whole_month_files_before_the_given_month_to_old(tmp_path: Path, clock: FakeClock):
    current = this_month(clock)
    months = [month_add(current, -3), month_add(current, -2), month_add(current, -1), current]
    await months_archived(tmp_path, months)
    archive = archive_in(tmp_path, clock=clock)
    await archive.start()
    try:
        await archive.search(HistoryQuery())  # readers now hold connections to every month
        answer = await archive.prune(months[2])

        assert answer == {
            "before": months[2],
            "months": months[:2],
            "action": "moved",
            "moved_to": str(tmp_path / "old"),
        }
        assert archive.status()["months"] == months[2:]
        assert names_in(tmp_path / "old") == [f"{m}.sqlite" for m in months[:2]]
        assert {row["started_at"] for row in (await archive.search(HistoryQuery()))["rows"]} == {
            month_start(m) + 3600 for m in months[2:]
        }
        held = open_files()
        assert not any("/old/" in name or any(m in name for m in months[:2]) for name in held), held
        archive.record(a_record(started_at=clock.time()))  # the current month is still written
        await archive.flush()
        assert archive.status()["written"] == 1
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_prune_deletes_when_configured_so(tmp_path: Path, clock: FakeClock):
    current = this_month(clock)
    old = month_add(current, -1)
    await months_archived(tmp_path, [old, current])
    archive = archive_in(tmp_path, clock=clock, pruned="delete")
    await archive.start()
    try:
        answer = await archive.prune(current)

        assert (answer["months"], answer["action"], answer["moved_to"]) == ([old], "deleted", None)
        assert names_in(tmp_path) == [f"{current}.sqlite"]
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_prune_never_removes_the_current_month_and_refuses_a_malformed_one(tmp_path: Path, clock: FakeClock):
    current = this_month(clock)
    await months_archived(tmp_path, [current])
    archive = archive_in(tmp_path, clock=clock)
    await archive.start()
    try:
        with pytest.raises(GatewayError, match="the month being written") as current_refused:
            await archive.prune(month_add(current, 1))
        assert (current_refused.value.status, current_refused.value.param) == (400, "before")
        with pytest.raises(GatewayError, match="YYYY-MM") as malformed:
            await archive.prune("last month")
        assert malformed.value.status == 400

        assert (await archive.prune(current))["months"] == []
        assert archive.status()["months"] == [current]
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_retention_keeps_the_most_recent_months_at_start_and_then_hourly_by_the_clock(
    tmp_path: Path, clock: FakeClock
):
    current = this_month(clock)
    months = [month_add(current, -3), month_add(current, -2), month_add(current, -1), current]
    await months_archived(tmp_path, months)
    archive = archive_in(tmp_path, clock=clock, retain_months=2)
    await archive.start()
    try:
        await archive.flush()  # one writer cycle: retention ran at start
        assert archive.status()["months"] == months[2:]
        assert archive.status()["retain_months"] == 2

        clock.advance(month_start(month_add(current, 1)) - clock.time() - HOUR / 2)  # half an hour before next month
        await archive.flush()  # a check: nothing to prune yet
        assert archive.status()["months"] == months[2:]
        clock.advance(HOUR * 2 / 3)  # next month, but not an hour since the last check
        await archive.flush()
        assert archive.status()["months"] == months[2:]

        clock.advance(HOUR / 3)
        await archive.flush()
        assert archive.status()["months"] == [current]
        assert names_in(tmp_path / "old") == [f"{m}.sqlite" for m in months[:3]]
    finally:
        await archive.close()


def test_retention_must_keep_at_least_the_current_month(tmp_path: Path):
    with pytest.raises(ValueError, match="at least 1 month"):
        archive_in(tmp_path, retain_months=0)


@pytest.mark.asyncio
async def test_a_month_pruned_twice_is_kept_under_a_second_name_in_old(tmp_path: Path, clock: FakeClock):
    current = this_month(clock)
    old = month_add(current, -1)
    archive = archive_in(tmp_path, clock=clock)
    await archive.start()
    try:
        for _ in range(2):
            archive.record(a_record(started_at=month_start(old) + 60))
            await archive.flush()
            await archive.prune(current)

        assert names_in(tmp_path / "old") == [f"{old}.1.sqlite", f"{old}.sqlite"]
    finally:
        await archive.close()


@pytest.mark.asyncio
async def test_status_lists_the_months_present(archive: SqliteArchive):
    archive.record(a_record(started_at=month_start("2026-03") + 1))
    archive.record(a_record(started_at=month_start("2026-05") + 1))
    await archive.flush()

    assert archive.status()["months"] == ["2026-03", "2026-05"]
