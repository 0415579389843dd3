"""`corral history …` and `corral usage`, run as a user runs them, against a real corral-core whose archive holds
requests this test made: a whole chat answer, a streamed one, and one refused for its key.

The spellings and exit codes are a contract scripts rely on (docs/architecture.md, "Contracts users script
against"): 0 success, 1 the daemon refused or failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console import history_commands
from tests.console.archive_harness import REPLY, FakeArchive, archived_fixture, archived_ids  # noqa: F401 (a fixture)
from tests.console.dashboard_data import NOW, history_row
from tests.console.test_cli import corral


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


# -- corral history -----------------------------------------------------------------------------------------


def test_history_lists_the_requests_newest_first_with_their_status(archived):
    result = corral(archived.daemon.socket_path, "history")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["TIME", "(UTC)", "ID", "KEY"]
    assert [row.split()[2] for row in rows] == [archived.refused, archived.streamed, archived.whole]
    assert rows[0].split()[6] == "401"
    assert "\u2013" in rows[-1], "a request on no GPU here shows no energy, not 0"


def test_history_json_is_the_rows_and_filters_by_key_and_status(archived):
    refused = corral(archived.daemon.socket_path, "history", "--status", "4xx", "--json")
    by_key = corral(archived.daemon.socket_path, "history", "--key", "webapp", "--status", "ok", "--json")

    assert refused.returncode == by_key.returncode == 0, refused.stderr + by_key.stderr
    assert [row["id"] for row in json.loads(refused.stdout)] == [archived.refused]
    assert [row["id"] for row in json.loads(by_key.stdout)] == [archived.streamed, archived.whole]


def test_history_text_searches_the_bodies(archived):
    result = corral(archived.daemon.socket_path, "history", "--text", "zebras", "--json")

    assert result.returncode == 0, result.stderr
    assert [row["id"] for row in json.loads(result.stdout)] == [archived.whole]


def test_a_time_that_cannot_be_read_is_a_usage_error_naming_what_is_accepted(tmp_path):
    nobody = tmp_path / "nobody.sock"  # nothing answers here: the command must fail before it connects

    result = corral(nobody, "history", "--since", "last tuesday")

    assert result.returncode == 2
    assert "'last tuesday' is not a time" in result.stderr
    assert "7d" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["history", "--status", "teapot"], "is not a status filter"),
        (["history", "--limit", "0"], "is not a positive whole number"),
        (["history", "export", "--month", "2025-13"], "is not a month"),
        (["history", "prune", "--before", "last-year"], "is not a month"),
        (["usage", "--since", "soon"], "is not a time"),
    ],
)
def test_bad_filters_and_months_are_usage_errors(tmp_path, args, says):
    result = corral(tmp_path / "nobody.sock", *args)

    assert result.returncode == 2
    assert says in result.stderr


def test_a_limit_larger_than_a_page_follows_the_cursor(monkeypatch, capsys):
    monkeypatch.setattr(history_commands, "PAGE_ROWS", 2)
    archive = FakeArchive([history_row(f"req_{i}", started_at=NOW - i) for i in range(7)])
    args = argparse.Namespace(
        key=None, model=None, provider=None, status=None, since=None, until=None, text=None, limit=5, json=True
    )

    assert asyncio.run(history_commands.history(archive, args)) == 0  # type: ignore[arg-type]

    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [f"req_{i}" for i in range(5)]
    assert [(s["cursor"], s["limit"]) for s in archive.searches] == [(None, 2), ("2", 2), ("4", 1)]


# -- corral history show ------------------------------------------------------------------------------------


def test_history_show_prints_the_metadata_the_request_body_and_the_answer(archived):
    result = corral(archived.daemon.socket_path, "history", "show", archived.whole)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"id       {archived.whole}" in out
    assert "key      webapp" in out
    assert "status   200" in out
    assert '"content": "tell me about zebras"' in out, "the request body, JSON indented"
    assert out.rstrip().endswith(REPLY), "the answer's text, not its JSON"


def test_history_show_of_a_streamed_answer_prints_its_assembled_text(archived):
    result = corral(archived.daemon.socket_path, "history", "show", archived.streamed, "--json")

    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)
    assert entry["stream"] is True
    assert entry["response_format"] == "text"
    assert entry["response_body"] == REPLY


def test_history_show_of_an_unknown_id_exits_1_with_the_daemons_message(archived):
    result = corral(archived.daemon.socket_path, "history", "show", "req_000000000000nothere")

    assert result.returncode == 1
    assert "no request 'req_000000000000nothere' in the archive" in result.stderr


# -- corral history export and prune ----------------------------------------------------------------------


def test_export_to_a_file_writes_every_row_of_the_month_as_json_lines(archived, tmp_path):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "month.jsonl"

    result = corral(archived.daemon.socket_path, "history", "export", "--month", this_month(), "--output", str(target))

    assert result.returncode == 0, result.stderr
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert {row["id"] for row in exported} == {archived.whole, archived.streamed, archived.refused}
    assert [p.name for p in target.parent.iterdir()] == ["month.jsonl"], "no temporary file left beside it"


def test_export_as_csv_streams_to_stdout_with_a_header(archived):
    result = corral(archived.daemon.socket_path, "history", "export", "--month", this_month(), "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["id"] for row in rows} == {archived.whole, archived.streamed, archived.refused}


def test_export_of_a_month_with_no_file_exits_1_and_leaves_no_file(archived, tmp_path):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "old.jsonl"

    result = corral(archived.daemon.socket_path, "history", "export", "--month", "2001-01", "-o", str(target))

    assert result.returncode == 1
    assert "no file for 2001-01" in result.stderr
    assert list(target.parent.iterdir()) == []


def test_prune_off_a_terminal_asks_for_yes_and_removes_nothing(archived):
    result = corral(archived.daemon.socket_path, "history", "prune", "--before", this_month())

    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert archived.whole in archived_ids(archived.daemon)


def test_prune_with_yes_says_what_it_removed(archived):
    result = corral(archived.daemon.socket_path, "history", "prune", "--before", this_month(), "--yes")

    assert result.returncode == 0, result.stderr
    assert f"no archived month before {this_month()}: nothing removed" in result.stdout
    assert archived.whole in archived_ids(archived.daemon), "the current month is never pruned"


# -- corral usage -------------------------------------------------------------------------------------------


def test_usage_json_is_the_usage_view_with_no_energy_for_a_provider_on_no_gpu(archived):
    result = corral(archived.daemon.socket_path, "usage", "--by", "model", "--since", "1d", "--json")

    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["by"] == "model"
    (tiny,) = [series for series in view["series"] if series["group"] == "tiny"]
    assert tiny["total"]["requests"] == 2
    assert tiny["total"]["energy_joules"] is None


def test_usage_prints_the_totals_then_each_groups_buckets(archived):
    result = corral(archived.daemon.socket_path, "usage", "--by", "key", "--since", "2d", "--bucket", "hour")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("usage by key, ")
    assert lines[2].split()[:4] == ["GROUP", "REQUESTS", "ERRORS", "TOKENS"]
    webapp = next(line for line in lines[3:] if line.startswith("webapp"))
    assert webapp.split()[1] == "3"
    assert "key webapp" in result.stdout
    assert "total" in result.stdout
    assert "\u2013" in webapp, "energy: none measured, never 0"


def test_a_daemon_without_the_archive_answers_exit_1_not_a_traceback(tmp_path):
    result = corral(Path(tmp_path / "nobody.sock"), "usage")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
