"""The filter benchmark's in-table half keeps working: it fills the live requests table with 500 rows and times a
filter typed and taken back, a keystroke at a time (`python -m bench.console_filter` runs it, and the real console)."""

from __future__ import annotations

import pytest

from bench.console_filter import ROWS, TYPED, keystroke_cost


@pytest.mark.asyncio
async def test_the_filter_benchmark_times_every_keystroke_over_500_rows():
    result = await keystroke_cost(rounds=1)

    assert result["rows"] == ROWS == 500
    assert result["keystrokes"] == 2 * len(TYPED)  # typed, then taken back to nothing
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
