"""Queued jobs and callback deliveries as the console knows them: counts by state and the newest few, folded from
the snapshot's counts and the "job" and "delivery" events.

Pure data, like live_state.py. The daemon may hold 10,000 jobs; the console keeps their counts, the newest
RECENT_JOBS views and the last state of each job an event named, never every job. A job event moves one count from
the job's previous state to its new one. For a job the console has seen, the previous state is known; for one
from before the snapshot it is inferred where only one transition leads to the new state (queued -> running,
running -> succeeded), and otherwise the likeliest is folded and the counts are marked `uncertain`, so the app asks
GET /jobs/counts (console/app.py's recount_jobs) until it gets counts that no event raced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway_core.contracts.jobs import JOB_STATES, DeliveryView, JobCounts, JobState, JobView

RECENT_JOBS = 200  # views kept for the Jobs panel, newest first; it shows fewer
JOBS_PAGE = 100  # the newest jobs asked for after a snapshot: the most one GET /jobs answers
RECENT_DELIVERIES = 1000  # deliveries kept for the Callbacks screen between its page loads
KNOWN_STATES = 100_000  # job id -> last state seen; past this the oldest half is forgotten (and inferred again)

# The one state a job can have come from, where there is only one (see the module docstring).
ONLY_PREVIOUS: dict[JobState, JobState] = {"running": "queued", "succeeded": "running"}
# Where there are several, the likeliest, folded until the daemon's counts arrive.
LIKELY_PREVIOUS: dict[JobState, JobState] = {"cancelled": "queued", "failed": "running", "queued": "running"}


def no_jobs() -> JobCounts:
    return {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}


def _newest_first(views: list[JobView]) -> list[JobView]:
    return sorted(views, key=lambda view: (view["created_at"], view["id"]), reverse=True)


@dataclass
class JobsState:
    counts: JobCounts | None = None  # None: no snapshot with job counts yet (or a corral-core without a queue)
    uncertain: bool = False  # an event moved a count from a state that could only be guessed: ask for the counts
    recent: dict[str, JobView] = field(default_factory=dict)  # at most 2 x RECENT_JOBS, trimmed in batches
    states: dict[str, JobState] = field(default_factory=dict)  # jobs named by an event since the snapshot
    snapshot_at: float = 0.0  # the snapshot's moment: a queued job created after it is new
    applied: int = 0  # job events applied so far
    snapshots: int = 0  # snapshots taken so far

    def reset(self, counts: JobCounts | None, snapshot_at: float) -> None:
        """A new snapshot: its counts are the truth, and what was folded before it is forgotten."""
        self.counts = counts.copy() if counts is not None else None  # a copy: events fold into it
        self.uncertain = False
        self.recent.clear()
        self.states.clear()
        self.snapshot_at = snapshot_at
        self.snapshots += 1

    def apply(self, view: JobView) -> None:
        self.applied += 1
        job_id, state = view["id"], view["state"]
        before = self.states.get(job_id)
        if before is None:
            before = self._previous(view)
        if self.counts is not None and before != state:
            if before is not None:
                self.counts[before] = max(0, self.counts[before] - 1)
            self.counts[state] += 1
        self.states[job_id] = state
        if len(self.states) > KNOWN_STATES:
            for stale in list(self.states)[: KNOWN_STATES // 2]:
                del self.states[stale]
        self.recent[job_id] = view
        if len(self.recent) > 2 * RECENT_JOBS:
            self._trim()

    def _previous(self, view: JobView) -> JobState | None:
        """The state of a job no event has named yet: None for a new job, else inferred or guessed."""
        state = view["state"]
        if state == "queued" and view["attempts"] == 0 and view["created_at"] >= self.snapshot_at:
            return None  # submitted after the snapshot
        only = ONLY_PREVIOUS.get(state)
        if only is not None:
            return only
        self.uncertain = True  # cancelled (queued or running?), failed, queued again: GET /jobs/counts settles it
        return LIKELY_PREVIOUS.get(state)

    def set_counts(self, counts: JobCounts) -> None:
        """The daemon's own counts (after an uncertain fold)."""
        self.counts = counts.copy()
        self.uncertain = False

    def seed(self, page: list[JobView]) -> None:
        """The newest jobs fetched after a snapshot. A job an event already brought keeps the event's view (it is
        at least as new); page views never move the counts, which the snapshot already had."""
        for view in page:
            self.recent.setdefault(view["id"], view)
        if len(self.recent) > 2 * RECENT_JOBS:
            self._trim()

    def _trim(self) -> None:
        self.recent = {view["id"]: view for view in _newest_first(list(self.recent.values()))[:RECENT_JOBS]}

    def newest(self, limit: int) -> list[JobView]:
        return _newest_first(list(self.recent.values()))[:limit]

    def total(self) -> int:
        counts = self.counts
        return sum(counts[state] for state in JOB_STATES) if counts is not None else 0


def counts_line(counts: JobCounts | None) -> str:
    """The Jobs panel's title and `corral jobs list`'s header: "3 queued · 1 running · 120 succeeded · 2 failed"."""
    if counts is None:
        return "no queue on this corral-core"
    shown = [f"{counts[state]:,} {state}" for state in JOB_STATES if counts[state] or state in ("queued", "running")]
    return " · ".join(shown)


@dataclass
class DeliveriesState:
    """Callback deliveries from the "delivery" events: the Callbacks screen merges the ones that came after it
    asked for a page into that page."""

    seq: int = 0  # events applied so far
    recent: dict[str, tuple[int, DeliveryView]] = field(default_factory=dict)  # by id, in the order of last change

    def apply(self, view: DeliveryView) -> None:
        self.seq += 1
        self.recent.pop(view["id"], None)
        self.recent[view["id"]] = (self.seq, view)
        if len(self.recent) > RECENT_DELIVERIES:
            for stale in list(self.recent)[: len(self.recent) - RECENT_DELIVERIES]:
                del self.recent[stale]

    def since(self, seq: int) -> list[DeliveryView]:
        """The deliveries changed by events after the `seq`th, oldest change first."""
        changed: list[DeliveryView] = []
        for applied, view in reversed(self.recent.values()):
            if applied <= seq:
                break
            changed.append(view)
        changed.reverse()
        return changed

    def clear(self) -> None:
        self.recent.clear()
