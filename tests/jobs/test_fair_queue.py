"""The fair queue on its own: round-robin across keys, priority then order within a key, targets that wait."""

from __future__ import annotations

import time

from gateway_core.jobs.fair_queue import FairQueue


def always(key: str, target: object) -> bool:
    return True


def drain(queue: FairQueue[str], ready=always) -> list[str]:
    taken = []
    while (picked := queue.pop_next(ready)) is not None:
        taken.append(picked[2])
    return taken


def test_keys_with_queued_work_take_turns_whatever_their_backlog():
    queue: FairQueue[str] = FairQueue()
    for seq in range(500):
        queue.push("big", "tiny", 0, seq, f"big-{seq}", f"big-{seq}")
    for seq in range(500, 505):
        queue.push("small", "tiny", 0, seq, f"small-{seq}", f"small-{seq}")

    first_ten = [queue.pop_next(always)[2] for _ in range(10)]

    assert first_ten == [
        "big-0", "small-500", "big-1", "small-501", "big-2", "small-502", "big-3", "small-503", "big-4", "small-504"
    ]  # fmt: skip
    assert len(queue) == 495


def test_within_a_key_higher_priority_runs_first_then_submission_order():
    queue: FairQueue[str] = FairQueue()
    queue.push("app", "tiny", 0, 1, "a", "a")
    queue.push("app", "tiny", 5, 2, "b", "b")
    queue.push("app", "tiny", 0, 3, "c", "c")
    queue.push("app", "tiny", 5, 4, "d", "d")
    queue.push("app", "tiny", -3, 5, "e", "e")

    assert drain(queue) == ["b", "d", "a", "c", "e"]


def test_a_key_whose_target_is_not_ready_is_skipped_and_keeps_its_jobs():
    queue: FairQueue[str] = FairQueue()
    queue.push("blocked", "busy-model", 0, 1, "x", "x")
    queue.push("other", "tiny", 0, 2, "y", "y")

    assert queue.pop_next(lambda key, target: target != "busy-model") == ("other", "tiny", "y")
    assert queue.pop_next(lambda key, target: target != "busy-model") is None
    assert queue.depth("blocked") == 1
    assert queue.pop_next(always) == ("blocked", "busy-model", "x")


def test_a_key_waiting_on_one_model_still_runs_its_jobs_for_another():
    queue: FairQueue[str] = FairQueue()
    queue.push("app", "busy-model", 9, 1, "urgent", "urgent")
    queue.push("app", "tiny", 0, 2, "later", "later")

    assert queue.pop_next(lambda key, target: target == "tiny") == ("app", "tiny", "later")


def test_a_skipped_key_keeps_its_turn_for_when_it_is_ready_again():
    queue: FairQueue[str] = FairQueue()
    for seq in range(3):
        queue.push("a", "tiny", 0, seq, f"a{seq}", f"a{seq}")
        queue.push("b", "tiny", 0, 10 + seq, f"b{seq}", f"b{seq}")
    parked = {"a"}

    assert queue.pop_next(lambda key, target: key not in parked)[2] == "b0"
    parked.clear()

    assert drain(queue) == ["a0", "b1", "a1", "b2", "a2"]


def test_a_removed_job_is_never_picked_and_its_key_leaves_the_rotation_when_empty():
    queue: FairQueue[str] = FairQueue()
    queue.push("a", "tiny", 0, 1, "a1", "a1")
    queue.push("a", "tiny", 0, 2, "a2", "a2")
    queue.push("b", "tiny", 0, 3, "b1", "b1")

    assert queue.remove("a1") == "a1"
    assert queue.remove("a1") is None
    assert queue.remove("b1") == "b1"

    assert "a1" not in queue
    assert queue.depth("b") == 0
    assert drain(queue) == ["a2"]
    assert len(queue) == 0


def test_pushing_a_queued_id_again_replaces_it():
    queue: FairQueue[str] = FairQueue()
    queue.push("a", "tiny", 0, 1, "job", "first")
    queue.push("a", "other", 0, 1, "job", "second")

    assert len(queue) == 1
    assert drain(queue) == ["second"]


def test_readiness_is_asked_once_per_key_and_target_and_only_for_a_better_head():
    queue: FairQueue[str] = FairQueue()
    for seq in range(1000):
        queue.push("a", "m1", 0, seq, f"a{seq}", "a")
    queue.push("a", "m2", 0, 5000, "late", "late")
    asked: list[tuple[str, object]] = []

    def ready(key: str, target: object) -> bool:
        asked.append((key, target))
        return False

    assert queue.pop_next(ready) is None
    assert sorted(asked, key=str) == [("a", "m1"), ("a", "m2")]


def test_ten_thousand_queued_jobs_cost_next_to_nothing_per_pick():
    queue: FairQueue[int] = FairQueue()
    for seq in range(10_000):
        queue.push(f"key{seq % 7}", f"model{seq % 3}", seq % 5, seq, str(seq), seq)
    started = time.perf_counter()

    taken = drain(queue)

    per_pick = (time.perf_counter() - started) / len(taken)
    assert len(taken) == 10_000
    assert per_pick < 100e-6, f"{per_pick * 1e6:.1f} µs per pick"
