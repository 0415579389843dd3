"""The writer in a process of its own (corral-core's default): what the thread does, across a pipe, and what
happens when either end dies."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway_core.archive import ArchiveSettings, SqliteArchive
from gateway_core.archive.capture import StreamCapture
from gateway_core.contracts.instants import month_of
from tests.archive.records import a_record
from tests.testbed.child_processes import process_ended
from tests.testbed.waiting import wait_for, wait_for_async


def stored_ids(directory: Path, at: float) -> set[str]:
    path = directory / f"{month_of(at)}.sqlite"
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT id FROM requests")}


@pytest.mark.asyncio
async def test_records_sent_to_the_writer_process_are_written_with_their_streamed_text(tmp_path):
    archive = SqliteArchive(ArchiveSettings(directory=tmp_path, writer="process"))
    await archive.start()
    try:
        frames = StreamCapture(1024)
        frames.add(b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n')
        frames.add(b'data: {"choices":[{"index":0,"delta":{"content":" there"}}]}\n\ndata: [DONE]\n\n')
        records = [a_record() for _ in range(50)]
        streamed = a_record(stream=True, response_body=None, response_frames=frames)
        for record in [*records, streamed]:
            archive.record(record)
        await archive.flush()

        assert archive.status()["written"] == 51
        assert archive.status()["queued"] == 0
        detail = await archive.get(streamed.id)
        assert detail is not None
        assert detail["response_body"] == "Hello there"
        assert detail["response_format"] == "text"
    finally:
        await archive.close()
    assert {record.id for record in records} <= stored_ids(tmp_path, records[0].started_at)


@pytest.mark.asyncio
async def test_close_writes_everything_still_queued_and_the_writer_process_exits(tmp_path):
    archive = SqliteArchive(ArchiveSettings(directory=tmp_path, writer="process"))
    await archive.start()
    child = archive._writer._child  # type: ignore[union-attr]  # the process under test
    records = [a_record() for _ in range(300)]
    for record in records:
        archive.record(record)

    await archive.close()

    assert {record.id for record in records} <= stored_ids(tmp_path, records[0].started_at)
    assert child is not None
    assert child.returncode is not None, "the writer process is gone once the archive is closed"


@pytest.mark.asyncio
async def test_a_writer_process_that_dies_is_replaced_and_what_it_held_is_counted_as_dropped(tmp_path):
    archive = SqliteArchive(ArchiveSettings(directory=tmp_path, writer="process"))
    await archive.start()
    try:
        first = archive._writer._child  # type: ignore[union-attr]
        assert first is not None
        archive.record(a_record())
        await archive.flush()
        first.kill()

        await wait_for_async(
            lambda: archive._writer._child not in (None, first),  # type: ignore[union-attr]
            "a new writer process",
        )
        assert archive.status()["state"] in ("failing", "dropping", "ok")
        later = a_record()
        archive.record(later)
        await archive.flush()

        assert later.id in stored_ids(tmp_path, later.started_at)
        assert archive.status()["queued"] == 0
    finally:
        await archive.close()


def test_kill_9_of_the_daemon_still_writes_what_its_writer_process_was_sent(tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from gateway_core.archive import ArchiveSettings, SqliteArchive
        from tests.archive.records import a_record

        async def main():
            archive = SqliteArchive(ArchiveSettings(directory=Path({str(tmp_path)!r}), writer="process"))
            await archive.start()
            for _ in range(200):
                archive.record(a_record())
            archive._writer.wake()
            writer = archive._writer
            # Shipped, and out of this process's buffer into the pipe (asyncio's drain() leaves up to 64 KiB here).
            while writer._shipped_rows < 200 or writer._child.stdin.transport.get_write_buffer_size():
                await asyncio.sleep(0)
            print(archive._writer._child.pid, flush=True)
            await asyncio.Event().wait()  # until the test kills this process

        asyncio.run(main())
        """
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    assert daemon.stdout is not None
    child_pid = int(daemon.stdout.readline())
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)
    daemon.stdout.close()

    wait_for(lambda: process_ended(child_pid), "the orphaned writer process to write what it had and exit")
    months = list(tmp_path.glob("*.sqlite"))
    assert len(months) == 1
    with sqlite3.connect(months[0]) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM requests").fetchone() == (200,)
