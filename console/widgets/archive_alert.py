"""The header's archive warning: rows the archive dropped, or its writer failing. Hidden while all is well.

A dropped row is an audit record lost, so it is never silent: the daemon counts it, logs it, and this shows it
on every screen that carries the alert, in the warning colour; a writer that cannot write at all, in the error
colour, with the daemon's reason.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.widgets import Static

from console.format import count
from gateway_core.contracts.history_views import ArchiveStatusView

AlertLevel = Literal["warning", "error"]


def archive_alert(status: ArchiveStatusView | None) -> tuple[str, AlertLevel] | None:
    """What the header says about the archive, and in which colour; None when there is nothing to say."""
    if status is None:
        return None
    if status["state"] == "failing":
        return f"archive failing: {status['last_error'] or 'no reason given (see corral-core.log)'}", "error"
    dropped = status["dropped"]
    if dropped > 0 or status["state"] == "dropping":
        return f"archive: {count(dropped)} {'row' if dropped == 1 else 'rows'} dropped", "warning"
    return None


class ArchiveAlert(Static):
    DEFAULT_CSS = """
    ArchiveAlert {
        display: none;
        width: auto;
        height: 1;
        padding: 0 1;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-warning { display: block; color: $warning; }
        &.-error { display: block; color: $error; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self._shown: tuple[str, AlertLevel] | None = None

    @property
    def text(self) -> str:
        return self._shown[0] if self._shown else ""

    def show(self, status: ArchiveStatusView | None) -> None:
        """Follow the archive's status; a status that says the same costs nothing."""
        alert = archive_alert(status)
        if alert == self._shown:
            return
        self._shown = alert
        self.set_class(alert is not None and alert[1] == "warning", "-warning")
        self.set_class(alert is not None and alert[1] == "error", "-error")
        self.update(Text(alert[0]) if alert else "")
