"""The benchmark runner still runs end to end: a tiny plan, direct and through Corral, with zero errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench_run import run_bench

pytestmark = pytest.mark.llama_server

SIDE_KEYS = {"requests", "errors", "error_rate", "rps", "latency_ms", "corral_cpu_ms_per_request", "generator_cpu_pct"}


def test_smoke_plan_writes_json_and_markdown_with_zero_errors(tmp_path: Path, llama_server_binary: Path) -> None:
    result = run_bench(["--plan", "smoke", "--no-profile"], tmp_path, llama_server_binary, 60)

    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text().startswith("# Corral benchmark")
    assert {"timestamp", "machine", "plan", "generator", "results", "targets"} <= report.keys()
    assert {"nproc", "cpu_model", "python", "llama_server", "corral"} <= report["machine"].keys()
    results = report["results"]
    levels = [*results["chat"], *results["stream"], *results["null"]["levels"]]
    assert [level["concurrency"] for level in results["chat"]] == [1, 4]
    for level in levels:
        for side in ("direct", "gateway"):
            assert level[side].keys() >= SIDE_KEYS
            assert level[side]["errors"] == 0, level[side]["error_samples"]
            assert level[side]["requests"] > 0
        assert "p99" in level["overhead"]["latency_ms"]
    for level in results["stream"]:
        assert level["gateway"]["ttft_ms"]["p50"] is not None
        assert level["direct"]["ttft_ms"]["p50"] is not None
    soak = results["soak"]
    assert soak["gateway"]["errors"] == 0
    assert soak["gateway"]["requests"] == report["plan"]["soak_requests"]
    assert soak["rss_kib_start"] > 0
    assert soak["rss_kib_end"] > 0
    assert report["targets"]
    assert all({"target", "measured", "met"} <= row.keys() for row in report["targets"])
    validation = results["validation"]
    assert [row["body"] for row in validation] == [
        "the load's chat body (1 message)",
        "31-message chat with 4 tools",
        "100 KB completions prompt",
        "64-input embeddings batch",
    ]
    assert all(row["with_us"] > 0 and row["without_us"] > 0 for row in validation)
    assert "What validating the OpenAI fields costs" in (tmp_path / "latest.md").read_text()
    jobs = results["jobs"]
    assert jobs["admission"]["jobs"] == jobs["plan"]["jobs"]
    assert jobs["admission"]["errors"] == 0, jobs["admission"]["error_samples"]
    assert jobs["admission"]["queued_after"] == jobs["admission"]["jobs"]  # drained: every admitted job waited
    assert jobs["drain"]["succeeded"] == jobs["drain"]["jobs"]
    assert jobs["drain"]["left"] == 0
    assert jobs["latency"]["job_p50_ms"] > 0
    assert "The job queue" in (tmp_path / "latest.md").read_text()


def test_archive_smoke_plan_builds_a_month_through_the_writer_and_times_the_history_queries(
    tmp_path: Path, llama_server_binary: Path
):
    result = run_bench(["--plan", "archive-smoke"], tmp_path, llama_server_binary, 180)

    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads((tmp_path / "latest-archive.json").read_text())
    assert (tmp_path / "latest-archive.md").read_text().startswith("# Corral benchmark (archive-smoke plan")
    archive = report["results"]["archive_scale"]
    assert archive["build"]["rows"] == archive["build"]["written"] == 20_000
    assert archive["build"]["dropped"] == 0
    assert archive["build"]["blocks"][0]["rows_per_s"] > 0
    assert archive["build"]["file_bytes"] > 0
    queries = archive["queries"]
    assert {"newest_page", "key_day", "text", "usage_30d", "get"} <= queries.keys()
    assert queries["newest_page"]["rows"] == 100
    assert queries["key_day"]["rows"] > 0
    assert queries["text"]["rows"] > 0
    assert queries["usage_30d"]["series"] > 0
    assert all(row["median_ms"] > 0 for row in queries.values())
    assert archive["console_history"]["rows_on_first_page"] > 0
    targets = [row["target"] for row in report["targets"]]
    assert any("search by key over one day" in target for target in targets)
    assert any("text search" in target for target in targets)
    assert any("30-day usage" in target for target in targets)


@pytest.mark.docker
def test_on_demand_smoke_plan_measures_a_cold_start_against_a_direct_one_and_warm_requests(
    tmp_path: Path, llama_server_binary: Path, llama_server_image: str
):
    result = run_bench(["--plan", "on-demand-smoke"], tmp_path, llama_server_binary, 180)

    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads((tmp_path / "latest-on-demand.json").read_text())
    on_demand = report["results"]["on_demand"]
    assert on_demand["cold_start"]["rounds"] == 2
    assert on_demand["cold_start"]["corral_ttft_ms"]["p50"] > 0
    assert on_demand["warm"]["on_demand"]["errors"] == 0
    assert on_demand["warm"]["always"]["errors"] == 0
    assert on_demand["warm"]["on_demand_state_after"] == "warm"
    targets = [row["target"] for row in report["targets"]]
    assert any("cold start" in target for target in targets)
