"""Which deployments make room for another, by measured free memory: the rules, without a GPU."""

from __future__ import annotations

from gateway_core.fleet.eviction import Holder, plan_room
from gateway_core.fleet.units import GiB, MiB

MARGIN = 512 * MiB


def on_demand(name: str, memory: int, **fields: object) -> Holder:
    return Holder(name, (0,), memory, on_demand=True, **fields)  # type: ignore[arg-type]


def test_a_model_that_fits_in_the_free_memory_beyond_the_margin_stops_nothing():
    plan = plan_room(3 * GiB, (0,), {0: 3 * GiB + MARGIN}, MARGIN, [on_demand("a", 4 * GiB)])

    assert plan.fits
    assert plan.stop == []


def test_the_margin_is_kept_on_each_gpu():
    plan = plan_room(3 * GiB, (0,), {0: 3 * GiB + MARGIN - 1}, MARGIN, [on_demand("a", 4 * GiB)])

    assert plan.fits
    assert [h.name for h in plan.stop] == ["a"]


def test_idle_deployments_are_stopped_lowest_priority_first_then_least_recently_used():
    holders = [
        on_demand("recent-low", 2 * GiB, priority=0, last_used=20.0),
        on_demand("old-low", 2 * GiB, priority=0, last_used=10.0),
        on_demand("old-high", 2 * GiB, priority=5, last_used=1.0),
    ]

    plan = plan_room(4 * GiB, (0,), {0: MARGIN}, MARGIN, holders)

    assert plan.fits
    assert [h.name for h in plan.stop] == ["old-low", "recent-low"]


def test_only_as_many_are_stopped_as_the_model_needs():
    holders = [on_demand("a", 2 * GiB, last_used=1.0), on_demand("b", 2 * GiB, last_used=2.0)]

    plan = plan_room(2 * GiB, (0,), {0: MARGIN}, MARGIN, holders)

    assert [h.name for h in plan.stop] == ["a"]


def test_a_pinned_deployment_an_always_one_and_a_foreign_process_are_never_stopped():
    holders = [
        on_demand("pinned", 8 * GiB, pinned=True),
        Holder("always", (0,), 8 * GiB, on_demand=False),
        Holder("pid 4242 (python)", (0,), 8 * GiB),
    ]

    plan = plan_room(4 * GiB, (0,), {0: 1 * GiB}, MARGIN, holders)

    assert not plan.fits
    assert plan.stop == []
    assert plan.wait_for == []
    assert plan.short_bytes == 4 * GiB - (1 * GiB - MARGIN)


def test_a_busy_deployment_is_waited_for_rather_than_stopped():
    holders = [on_demand("idle", 1 * GiB), on_demand("busy", 4 * GiB, busy=True)]

    plan = plan_room(4 * GiB, (0,), {0: MARGIN}, MARGIN, holders)

    assert not plan.fits
    assert [h.name for h in plan.stop] == ["idle"]
    assert [h.name for h in plan.wait_for] == ["busy"]


def test_a_model_that_can_never_fit_says_how_much_is_missing():
    plan = plan_room(80 * GiB, (0,), {0: 10 * GiB}, MARGIN, [on_demand("a", 20 * GiB)])

    assert not plan.fits
    assert plan.wait_for == []
    assert plan.short_bytes == 80 * GiB - (10 * GiB - MARGIN + 20 * GiB)


def test_a_deployment_on_two_gpus_frees_only_its_share_on_the_gpus_in_question():
    split = Holder("split", (0, 1), 8 * GiB, on_demand=True)

    plan = plan_room(5 * GiB, (0,), {0: MARGIN, 1: 40 * GiB}, MARGIN, [split])

    assert split.share_on((0,)) == 4 * GiB
    assert not plan.fits
    assert plan.short_bytes == 1 * GiB


def test_a_model_on_two_gpus_counts_the_free_memory_of_both_less_both_margins():
    plan = plan_room(10 * GiB, (0, 1), {0: 5 * GiB + MARGIN, 1: 5 * GiB + MARGIN}, MARGIN, [])

    assert plan.fits
