"""The console opens, themes itself from the shipped theme files, and says when no daemon answers."""

from __future__ import annotations

import pytest

from console.app import CorralApp
from console.theme_files import theme_files


async def wait_for(condition, pilot, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.asyncio
async def test_console_reports_a_missing_daemon_with_what_to_do(tmp_path):
    app = CorralApp(socket_path=tmp_path / "corral.sock")

    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one("#connection")
        await wait_for(lambda: "not answering" in str(panel.status), pilot)

        assert str(tmp_path / "corral.sock") in panel.status
        assert "corral-core" in panel.status
        assert app.theme == "corral-dark"


@pytest.mark.asyncio
async def test_every_shipped_theme_registers_with_textual(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # hide the user's own themes
    app = CorralApp(socket_path=tmp_path / "corral.sock")

    async with app.run_test(size=(80, 24)):
        shipped = {path.stem for path in theme_files()}
        assert shipped <= set(app.available_themes)
        assert {"corral-dark", "corral-light", "high-contrast"} <= shipped
