"""The History, History detail and Usage screens, driven from the keyboard over fixed archive answers, the
header's archive warning, and the console's F4 and F5 against a real corral-core's archive.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Markdown, Static

from console.app import CorralApp
from console.screens.history import HistoryScreen
from console.screens.history_detail import HistoryDetailScreen
from console.screens.history_filter import FilterError, parse_filter
from console.screens.usage import UsageScreen
from console.widgets.archive_alert import ArchiveAlert
from console.widgets.history_table import HistoryTable
from console.widgets.usage_chart import MAX_POINTS, UsageChart, series_values, tick_labels
from tests.console.archive_harness import REPLY, ArchiveHarness, FakeArchive, archived_fixture  # noqa: F401 (a fixture)
from tests.console.dashboard_data import (
    NOW,
    DashboardHarness,
    archive_status,
    busy_box,
    history_detail,
    history_row,
    settle,
    usage_view,
)
from tests.console.test_app import APP_WAIT_S
from tests.testbed.waiting import wait_for_async


def rows(n: int) -> list:
    return [history_row(f"req_{i:04d}", started_at=NOW - i, key_name="batch" if i % 2 else "webapp") for i in range(n)]


def history_app(archive: FakeArchive) -> ArchiveHarness:
    return ArchiveHarness(archive, lambda: HistoryScreen(now=lambda: NOW))


# -- the filter line --------------------------------------------------------------------------------------


def test_filter_tokens_set_the_filters_and_plain_words_are_the_text_search():
    filters = parse_filter('key:"my app" model:qwen status:4XX since:1d hello world', NOW)

    assert filters.key == "my app"
    assert filters.model == "qwen"
    assert filters.status == "4xx"
    assert filters.since == NOW - 86400
    assert filters.text == "hello world"
    assert filters.until is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("since:yesterday", "is not a time"),
        ("status:teapot", "is not a status filter"),
        ('key:"open', "quote is not closed"),
        ("model:", "has no value"),
        ("since:1d until:2d", "since: is after until:"),
    ],
)
def test_a_filter_that_cannot_be_read_says_which_part_and_what_is_accepted(line, says):
    with pytest.raises(FilterError, match=says):
        parse_filter(line, NOW)


# -- History ----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_history_shows_the_newest_page_and_fetches_the_next_near_its_end():
    archive = FakeArchive(rows(250))
    app = history_app(archive)

    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(HistoryTable)
        await wait_for_async(lambda: table.row_count == 100, "the first page", pause=pilot.pause)
        assert table.row_keys[:2] == ["req_0000", "req_0001"]
        assert [search["cursor"] for search in archive.searches] == [None]

        await pilot.press("end")
        await wait_for_async(lambda: table.row_count == 200, "the second page", pause=pilot.pause)
        await pilot.press("end")
        await wait_for_async(lambda: table.row_count == 250, "the last page", pause=pilot.pause)

        assert table.row_keys[-1] == "req_0249"
        assert [search["cursor"] for search in archive.searches] == [None, "100", "200"]
        assert "250 requests" in str(app.screen.query_one("#history-title", Static).render())


@pytest.mark.asyncio
async def test_typing_a_filter_searches_once_when_typing_pauses():
    archive = FakeArchive(rows(30))
    app = history_app(archive)

    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(HistoryTable)
        await wait_for_async(lambda: table.row_count == 30, "the first page", pause=pilot.pause)
        await pilot.press("slash")
        await pilot.press(*"key:batch")
        await wait_for_async(lambda: table.row_count == 15, "the filtered list", pause=pilot.pause)

        assert len(archive.searches) == 2, "one search for the whole word, not one per key"
        assert archive.searches[-1]["key"] == "batch"
        assert archive.searches[-1]["cursor"] is None
        assert all(key.startswith("req_") and int(key[4:]) % 2 for key in table.row_keys)


@pytest.mark.asyncio
async def test_a_filter_that_cannot_be_read_is_shown_inline_and_the_list_stays():
    archive = FakeArchive(rows(10))
    app = history_app(archive)

    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        table = screen.query_one(HistoryTable)
        await wait_for_async(lambda: table.row_count == 10, "the first page", pause=pilot.pause)
        screen.query_one("#history-filter", Input).value = "since:yesterday"
        problem = screen.query_one("#history-problem", Static)
        await wait_for_async(lambda: problem.display, "the problem line", pause=pilot.pause)

        assert "'yesterday' is not a time" in str(problem.render())
        assert table.row_count == 10
        assert len(archive.searches) == 1


@pytest.mark.asyncio
async def test_a_daemon_error_is_shown_not_raised():
    archive = FakeArchive([])
    archive.failure = "the archive is off: corral-core runs with --capture off"
    app = history_app(archive)

    async with app.run_test(size=(120, 40)) as pilot:
        problem = app.screen.query_one("#history-problem", Static)
        await wait_for_async(lambda: problem.display, "the problem line", pause=pilot.pause)

        assert "history unavailable: the archive is off" in str(problem.render())


@pytest.mark.asyncio
async def test_enter_opens_the_request_with_its_answer_rendered_as_markdown():
    archive = FakeArchive(rows(3))
    app = history_app(archive)

    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(HistoryTable)
        await wait_for_async(lambda: table.row_count == 3, "the first page", pause=pilot.pause)
        await pilot.press("down", "enter")
        await wait_for_async(lambda: isinstance(app.screen, HistoryDetailScreen), "the detail", pause=pilot.pause)
        detail = app.screen
        await wait_for_async(lambda: detail.entry is not None, "the request to load", pause=pilot.pause)
        await settle(pilot)

        assert detail.request_id == "req_0001"
        assert "Say hi in **bold**" in str(detail.query_one("#detail-request", Static).render())
        answer = detail.query_one("#detail-answer", Markdown)
        assert answer.display
        assert answer.source.startswith("Hello! **Hi** there.")

        await pilot.press("r")
        assert not answer.display
        assert "**Hi**" in str(detail.query_one("#detail-response", Static).render())

        await pilot.press("escape")
        assert isinstance(app.screen, HistoryScreen)


@pytest.mark.asyncio
async def test_the_detail_says_where_a_body_was_cut_and_when_none_was_captured():
    row = history_row("req_cut")
    cut = history_detail(row, request_body=None, response_body="x" * 1024, response_truncated=True)
    archive = FakeArchive([row], {"req_cut": {**cut, "capture": "metadata"}})
    app = ArchiveHarness(archive, lambda: HistoryDetailScreen("req_cut"))

    async with app.run_test(size=(120, 40)) as pilot:
        detail = app.screen
        await wait_for_async(lambda: detail.entry is not None, "the request to load", pause=pilot.pause)

        request = str(detail.query_one("#detail-request-heading", Static).render())
        response = str(detail.query_one("#detail-response-heading", Static).render())
        assert "request body: not captured (this request's capture was metadata only)" in request
        assert "cut at 1.00 KiB of 4.00 KiB" in response


@pytest.mark.asyncio
async def test_an_unknown_request_says_so():
    app = ArchiveHarness(FakeArchive([]), lambda: HistoryDetailScreen("req_gone"))

    async with app.run_test(size=(120, 40)) as pilot:
        facts = app.screen.query_one("#detail-facts", Static)
        await wait_for_async(lambda: "cannot show" in str(facts.render()), "the error", pause=pilot.pause)

        assert "no archived request with id 'req_gone'" in str(facts.render())


# -- Usage ------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_usage_keys_cycle_grouping_range_and_bucket_and_the_metric_needs_no_new_request():
    archive = FakeArchive([])
    app = ArchiveHarness(archive, UsageScreen)

    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for_async(lambda: screen.view is not None, "the first answer", pause=pilot.pause)
        assert archive.usages == [{"by": "key", "since": "7d", "bucket": "day"}]

        await pilot.press("g")
        await wait_for_async(lambda: len(archive.usages) == 2, "the second request", pause=pilot.pause)
        await pilot.press("t", "b")
        await wait_for_async(lambda: len(archive.usages) == 4, "two more requests", pause=pilot.pause)
        assert archive.usages[-1] == {"by": "model", "since": "30d", "bucket": "hour"}

        chart = screen.query_one(UsageChart)
        await wait_for_async(lambda: chart.lines, "the chart", pause=pilot.pause)
        requests = dict(chart.lines)
        await pilot.press("m")
        assert len(archive.usages) == 4
        assert screen.metric == "tokens"
        assert dict(chart.lines)["qwen2.5-7b"] == [200 * value for value in requests["qwen2.5-7b"]]


@pytest.mark.asyncio
async def test_usage_shows_energy_in_wh_and_a_dash_for_a_group_with_no_gpu_measurement():
    app = ArchiveHarness(FakeArchive([]), UsageScreen)

    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for_async(lambda: screen.view is not None, "the answer", pause=pilot.pause)
        table = screen.query_one("#usage-table")

        assert table.row_keys == ["qwen2.5-7b", "gpt-4o-mini"], "busiest first"
        assert str(table.get_cell("qwen2.5-7b", "energy")) == "116.0 Wh"  # 2320 requests x 180 J
        assert str(table.get_cell("gpt-4o-mini", "energy")) == "\u2013"
        assert str(table.get_cell("gpt-4o-mini", "gpu")) == "\u2013"


# -- the header's archive warning -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_header_warns_of_dropped_rows_and_of_a_failing_writer():
    app = DashboardHarness(busy_box())

    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        alert = app.dashboard.query_one(ArchiveAlert)
        assert not alert.display

        app.feed("archive", archive_status(state="dropping", dropped=120))
        assert alert.text == "archive: 120 rows dropped"
        assert alert.has_class("-warning")
        assert alert.display

        app.feed("archive", archive_status(state="failing", dropped=120, last_error="disk full writing 2025-10"))
        assert alert.text == "archive failing: disk full writing 2025-10"
        assert alert.has_class("-error")
        assert not alert.has_class("-warning")


# -- against a real corral-core -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_f4_lists_the_daemons_archived_requests_enter_opens_one_and_f5_shows_usage(
    archived, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # not the user's own console settings
    app = CorralApp(archived.daemon.socket_path, archived.daemon.data_dir, autostart=False)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("f4")
        await wait_for_async(lambda: isinstance(app.screen, HistoryScreen), "the History screen", pause=pilot.pause)
        table = app.screen.query_one(HistoryTable)
        expected = [archived.refused, archived.streamed, archived.whole]
        await wait_for_async(lambda: table.row_keys == expected, "the three requests", APP_WAIT_S, pause=pilot.pause)

        await pilot.press("down", "enter")
        await wait_for_async(lambda: isinstance(app.screen, HistoryDetailScreen), "the detail", pause=pilot.pause)
        detail = app.screen
        await wait_for_async(lambda: detail.entry is not None, "the request", APP_WAIT_S, pause=pilot.pause)
        assert detail.query_one("#detail-answer", Markdown).source == REPLY
        await pilot.press("escape")

        await pilot.press("f5")
        await wait_for_async(lambda: isinstance(app.screen, UsageScreen), "the Usage screen", pause=pilot.pause)
        usage = app.screen
        await wait_for_async(lambda: usage.view is not None, "the usage answer", APP_WAIT_S, pause=pilot.pause)
        assert [series["group"] for series in usage.view["series"]] == ["webapp"]


def test_a_90_day_hourly_chart_merges_neighbouring_hours_and_keeps_every_request():
    view = usage_view(bucket="hour")
    view["since"] = NOW - 90 * 86400  # 2,160 hours, of which the fixed data fills seven

    ((group, values), *_) = series_values(view, "requests")
    positions, labels = tick_labels(view)

    assert group == "qwen2.5-7b"
    assert len(values) <= MAX_POINTS
    assert sum(values) == sum(point["requests"] for point in view["series"][0]["points"])
    assert positions[-1] < len(values)
    assert labels[0] == "07-11 08:00"


@pytest.mark.asyncio
async def test_escape_in_the_filter_line_goes_back_to_the_list():
    app = history_app(FakeArchive(rows(3)))

    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(HistoryTable)
        await wait_for_async(lambda: table.row_count == 3, "the first page", pause=pilot.pause)
        await pilot.press("slash")
        assert isinstance(app.screen.focused, Input)

        await pilot.press("escape")

        assert app.screen.focused is table


@pytest.mark.asyncio
async def test_the_range_picks_a_bucket_that_suits_it_and_b_still_overrides_it():
    archive = FakeArchive([])
    app = ArchiveHarness(archive, UsageScreen)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: archive.usages, "the first answer", pause=pilot.pause)
        await pilot.press("t", "t", "t")  # 30d, 90d, 24h
        await wait_for_async(lambda: len(archive.usages) == 4, "three more requests", pause=pilot.pause)
        await pilot.press("b")
        await wait_for_async(lambda: len(archive.usages) == 5, "one more request", pause=pilot.pause)

    assert [(asked["since"], asked["bucket"]) for asked in archive.usages] == [
        ("7d", "day"),
        ("30d", "day"),
        ("90d", "day"),
        ("24h", "hour"),
        ("24h", "day"),
    ]
