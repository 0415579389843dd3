"""An archive over a temporary directory, started and closed around each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from gateway_core.archive import SqliteArchive
from tests.archive.records import archive_in


@pytest_asyncio.fixture
async def archive(tmp_path: Path) -> AsyncIterator[SqliteArchive]:
    store = archive_in(tmp_path / "archive")
    await store.start()
    yield store
    await store.close()
