"""Fixtures the console's tests share."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import CorralDaemon


@pytest.fixture
def fleet_daemon(tmp_path: Path, tiny_model: Path) -> Iterator[CorralDaemon]:
    """A corral-core whose GGUF catalog holds the tiny model (as tiny-llama.gguf), for the deploy form."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(tiny_model, models_dir / "tiny-llama.gguf")
    daemon = CorralDaemon(tmp_path / "c", extra_env={"CORRAL_MODELS_DIRS": str(models_dir)}).start()
    yield daemon
    daemon.stop()
