"""The console probe for the GPU-history scenario (bench/console_gpu_history.py): the standard probe, also saying
which window the history screen shows and how many answers each of its screens drew.

A module of its own so that the console it runs imports what the console imports and no more: the scenario's
module brings the daemon's wiring and the testbed (half a second of imports), which its first frame then counted.
"""

from __future__ import annotations

import sys
from typing import Any

import bench.console_probe
from bench.console_probe import ProbedConsole
from console.screens.gpu_history import HistoryScreen
from console.screens.processes import ProcessesScreen


class HistoryProbe(ProbedConsole):
    def frame_record(self) -> dict[str, Any]:
        record = super().frame_record()
        screen = self.screen
        if isinstance(screen, HistoryScreen):
            record["history"] = {"minutes": screen.minutes, "loads": screen.loads}
        if isinstance(screen, ProcessesScreen):
            record["processes"] = {"loads": screen.loads, "rows": screen.table.row_count}
        return record


if __name__ == "__main__":
    bench.console_probe.ProbedConsole = HistoryProbe  # type: ignore[misc]  # the probe's main builds this class
    raise SystemExit(bench.console_probe.main(sys.argv[1:]))
