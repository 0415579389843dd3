"""The tree stays lint-clean, formatted and strictly typed, so CI catches what a contributor forgot to run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing_to_fix():
    result = _run("ruff", "check", "--no-cache", str(ROOT))

    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_would_change_nothing():
    result = _run("ruff", "format", "--check", "--no-cache", str(ROOT))

    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_no_type_errors():
    # Settings (strict, unused-ignore warnings, the files checked) live in pyproject.toml's [tool.mypy].
    result = _run("mypy", "--no-error-summary")

    assert result.returncode == 0, result.stdout + result.stderr
