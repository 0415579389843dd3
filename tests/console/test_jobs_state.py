"""What the console knows about the queue, folded from the snapshot's counts and the job and delivery events
(console/job_state.py), and how the CLI and the console write jobs (console/job_format.py). In-process: pure data."""

from __future__ import annotations

from console.job_format import delivery_outcome, delivery_when, job_facts
from console.job_state import RECENT_JOBS, counts_line
from console.live_state import LiveState
from tests.console.dashboard_data import NOW, snapshot
from tests.console.jobs_data import delivery, job, job_counts

SNAPSHOT_AT = NOW  # snapshot(): started_at + uptime_s


def live_with(counts: dict[str, int]) -> LiveState:
    live = LiveState()
    live.apply("snapshot", {**snapshot(), "jobs": job_counts(**counts)})
    return live


def test_the_snapshot_counts_are_taken_as_they_are():
    live = live_with({"queued": 3, "succeeded": 120, "failed": 2})

    assert live.jobs.counts == job_counts(queued=3, succeeded=120, failed=2)
    assert live.jobs.total() == 125
    assert not live.jobs.uncertain


def test_a_job_submitted_after_the_snapshot_moves_through_the_counts_as_it_runs():
    live = live_with({"queued": 3})
    new = "job_new"

    assert live.apply("job", job(new, created_at=SNAPSHOT_AT + 1)) == {"jobs"}
    assert live.jobs.counts == job_counts(queued=4)
    live.apply("job", job(new, state="running", created_at=SNAPSHOT_AT + 1))
    assert live.jobs.counts == job_counts(queued=3, running=1)
    live.apply("job", job(new, state="succeeded", created_at=SNAPSHOT_AT + 1))
    assert live.jobs.counts == job_counts(queued=3, succeeded=1)
    assert not live.jobs.uncertain


def test_a_failed_attempt_queued_again_and_an_operators_retry_move_one_count_each():
    live = live_with({})
    live.apply("job", job("job_a", created_at=SNAPSHOT_AT + 1))
    live.apply("job", job("job_a", state="running", created_at=SNAPSHOT_AT + 1))
    live.apply("job", job("job_a", state="queued", attempts=1, created_at=SNAPSHOT_AT + 1))  # the attempt failed
    assert live.jobs.counts == job_counts(queued=1)
    live.apply("job", job("job_a", state="running", attempts=2, created_at=SNAPSHOT_AT + 1))
    live.apply("job", job("job_a", state="failed", attempts=2, created_at=SNAPSHOT_AT + 1))
    live.apply("job", job("job_a", state="queued", attempts=2, created_at=SNAPSHOT_AT + 1))  # retried
    assert live.jobs.counts == job_counts(queued=1)
    assert not live.jobs.uncertain


def test_a_job_from_before_the_snapshot_that_starts_moves_one_from_queued_to_running():
    live = live_with({"queued": 10_000})

    live.apply("job", job("job_old", state="running", created_at=NOW - 3600))
    live.apply("job", job("job_old", state="succeeded", created_at=NOW - 3600))

    assert live.jobs.counts == job_counts(queued=9_999, succeeded=1)
    assert not live.jobs.uncertain, "running comes only from queued, succeeded only from running"


def test_cancelling_a_job_from_before_the_snapshot_asks_for_the_counts_and_takes_them():
    live = live_with({"queued": 2, "running": 1})

    live.apply("job", job("job_old", state="cancelled", created_at=NOW - 3600))

    assert live.jobs.uncertain, "a cancelled job may have been queued or running"
    assert live.jobs.total() == 3, "the guess still moves one count, never adds a job"
    live.jobs.set_counts(job_counts(queued=2, cancelled=1))
    assert live.jobs.counts == job_counts(queued=2, cancelled=1)
    assert not live.jobs.uncertain


def test_counts_never_go_below_zero_and_a_queue_less_corral_core_has_none():
    live = live_with({})
    live.apply("job", job("job_old", state="running", created_at=NOW - 3600))
    assert live.jobs.counts == job_counts(running=1)

    older = LiveState()
    before_the_queue = {name: value for name, value in snapshot().items() if name != "jobs"}
    older.apply("snapshot", before_the_queue)  # a corral-core from before the queue: no "jobs" in its snapshot
    older.apply("job", job("job_x", created_at=NOW))
    assert older.jobs.counts is None
    assert counts_line(None) == "no queue on this corral-core"


def test_the_page_fetched_after_the_snapshot_lists_jobs_but_an_events_view_wins_and_no_count_moves():
    live = live_with({"queued": 2, "running": 1})
    live.apply("job", job("job_b", state="running", created_at=NOW - 50))

    live.jobs.seed([job("job_b", created_at=NOW - 50), job("job_a", created_at=NOW - 60)])

    assert [view["id"] for view in live.jobs.newest(10)] == ["job_b", "job_a"]
    assert live.jobs.recent["job_b"]["state"] == "running", "the event's view, not the page's older one"
    assert live.jobs.counts == job_counts(queued=1, running=2)


def test_ten_thousand_jobs_keep_their_counts_exact_and_only_the_newest_views():
    live = live_with({})
    for i in range(10_000):
        live.apply("job", job(f"job_{i:05d}", created_at=SNAPSHOT_AT + i))
    for i in range(0, 10_000, 2):
        live.apply("job", job(f"job_{i:05d}", state="running", created_at=SNAPSHOT_AT + i))
    for i in range(0, 10_000, 4):
        live.apply("job", job(f"job_{i:05d}", state="succeeded", created_at=SNAPSHOT_AT + i))

    assert live.jobs.counts == job_counts(queued=5_000, running=2_500, succeeded=2_500)
    assert len(live.jobs.recent) <= 2 * RECENT_JOBS
    assert [view["id"] for view in live.jobs.newest(3)] == ["job_09999", "job_09998", "job_09997"]


def test_a_new_snapshot_replaces_what_was_folded():
    live = live_with({"queued": 1})
    live.apply("job", job("job_a", created_at=SNAPSHOT_AT + 1))

    live.apply("snapshot", {**snapshot(), "jobs": job_counts(succeeded=2)})

    assert live.jobs.counts == job_counts(succeeded=2)
    assert live.jobs.recent == {}


def test_the_counts_line_names_queued_and_running_always_and_the_rest_when_there_are_any():
    assert counts_line(job_counts()) == "0 queued · 0 running"
    assert counts_line(job_counts(queued=12_000, running=4, failed=2)) == "12,000 queued · 4 running · 2 failed"


def test_delivery_events_since_a_moment_come_oldest_change_first_one_per_delivery():
    live = live_with({})
    live.apply("delivery", delivery("msg_a"))
    mark = live.deliveries.seq
    live.apply("delivery", delivery("msg_b"))
    live.apply("delivery", delivery("msg_a", state="dead", attempts=9))

    changed = live.deliveries.since(mark)

    assert [(view["id"], view["state"]) for view in changed] == [("msg_b", "pending"), ("msg_a", "dead")]
    assert live.deliveries.since(live.deliveries.seq) == []


def test_a_delivery_says_what_the_receiver_answered_and_what_comes_next():
    assert delivery_outcome(delivery("msg_a", last_status=503)) == "503"
    assert delivery_outcome(delivery("msg_a", last_status=None, last_error="timed out after 15s")) == (
        "timed out after 15s"
    )
    assert delivery_when(delivery("msg_a"), NOW) == "next in 4m12s"
    assert delivery_when(delivery("msg_a", state="delivered"), NOW) == "delivered 3s ago"
    assert delivery_when(delivery("msg_a", state="dead"), NOW) == "dead"


def test_a_jobs_facts_name_its_key_state_attempts_tokens_and_error():
    facts = dict(job_facts(job("job_a", state="failed", attempts=3, tag="nightly"), "webapp", NOW))

    assert facts["key"] == "webapp (id a1b2c3d4e5f6)"
    assert facts["state"] == "failed"
    assert facts["attempts"] == "3"
    assert facts["tag"] == "nightly"
    assert facts["error"] == "upstream_error: gpu0 answered 503 three times"
    assert facts["finished"].endswith("(ran 3s)")
    assert dict(job_facts(job("job_b", state="succeeded"), None, NOW))["tokens"] == "12+40"
