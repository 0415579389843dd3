"""A filtered, sorted table as it looks at 80x24 and 120x40: the filter line with its count above the rows, the
panel's title counting the matches, and the sorted column's arrow in the header.

After a deliberate visual change: `pytest tests/console/test_table_snapshots.py --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest

from tests.console.dashboard_data import DashboardHarness, busy_box

SIZES = [(80, 24), (120, 40)]
# On the focused providers panel: filter "gpu" (two of three rows), then sort by state, descending.
FILTER_THEN_SORT = ["slash", "g", "p", "u", "enter", "o", "o", "O"]


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_providers_filtered_and_sorted(snap_compare, size):
    assert snap_compare(DashboardHarness(busy_box()), terminal_size=size, press=FILTER_THEN_SORT)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_filter_line_while_typing(snap_compare, size):
    assert snap_compare(DashboardHarness(busy_box()), terminal_size=size, press=["slash", "o", "p", "e", "n"])
