"""GPU time and energy per request: each GPU's sampled power draw, shared among Corral's requests running on it.

At every moment a GPU's time, and its power draw, are split evenly among the requests then in flight on it
(begun and not ended, whatever provider on that GPU they went to). Between two samples the draw is taken
as the later sample's reading: NVML reports power averaged over about the last second on recent GPUs, so
that reading describes the interval that ends with it. A request that ends between samples is charged its
last stretch at the last known reading, since `end` answers at once. docs/architecture.md states the
error. Every call runs on the event loop; `begin` and `end` for a provider on no GPU here cost a dict
lookup or two, as they are on the request path.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway_core.fleet.gpus import GpuSnapshot

NOT_MEASURED: tuple[None, None] = (None, None)


class _Run:
    """One request's GPU time and energy so far, and the GPUs it occupies now."""

    __slots__ = ("gpu_seconds", "gpus", "joules", "joules_known")

    def __init__(self) -> None:
        self.gpu_seconds = 0.0
        self.joules = 0.0
        self.joules_known = True  # False once a share came from a GPU with no power reading
        self.gpus: tuple[_Gpu, ...] = ()

    def credit(self, seconds: float, watts: float | None) -> None:
        self.gpu_seconds += seconds
        if watts is None:
            self.joules_known = False
        else:
            self.joules += watts * seconds


class _Gpu:
    """One GPU's busy time since its last sample, as `share`: the integral of 1/n over time, n the
    requests in flight on it. A request's share of an interval is `share` now minus `share` when it joined."""

    __slots__ = ("running", "share", "since", "watts")

    def __init__(self, now: float) -> None:
        self.watts: float | None = None  # the last reading; None: unsupported, or not sampled yet
        self.share = 0.0
        self.since = now
        self.running: dict[_Run, float] = {}  # request -> `share` when it joined (or at the last sample)

    def advance(self, now: float) -> None:
        if self.running:
            self.share += (now - self.since) / len(self.running)
        self.since = now

    def join(self, run: _Run, now: float) -> None:
        self.advance(now)
        self.running[run] = self.share

    def leave(self, run: _Run, now: float) -> None:
        self.advance(now)
        run.credit(self.share - self.running.pop(run), self.watts)

    def sample(self, watts: float | None, now: float) -> None:
        """Charge the interval ending now to the requests in flight, at the new reading; start the next."""
        self.advance(now)
        for run, joined in self.running.items():
            run.credit(self.share - joined, watts)
            self.running[run] = 0.0
        self.share = 0.0
        self.watts = watts


class EnergyMeter:
    """GPU-seconds and joules per request, for requests served on this box's GPUs.

    `gpus_of(provider)` says which GPU indices a provider runs on (None: none here). Its answer is cached
    per provider; call `forget(provider)` when that can have changed (a provider added, changed or removed,
    the fleet's inventory refreshed), or `forget()` for all. Each begun request must be ended once: until
    then it counts as busy on its GPUs.
    """

    def __init__(self, gpus_of: Callable[[str], tuple[int, ...] | None], monotonic: Callable[[], float]) -> None:
        self._gpus_of = gpus_of
        self._monotonic = monotonic
        self._placements: dict[str, tuple[_Gpu, ...] | None] = {}
        self._gpus: dict[int, _Gpu] = {}
        self._runs: dict[str, _Run] = {}  # only requests that ran on a GPU here at some point

    def begin(self, request_id: str, provider: str) -> None:
        """The request is now running on `provider`; a second call (failover) keeps its time on the first."""
        try:
            gpus = self._placements[provider]
        except KeyError:
            gpus = self._placement(provider)
        run = self._runs.get(request_id)
        if gpus is None and run is None:
            return
        now = self._monotonic()
        if run is None:
            run = self._runs[request_id] = _Run()
        for gpu in run.gpus:
            gpu.leave(run, now)
        run.gpus = gpus or ()
        for gpu in run.gpus:
            gpu.join(run, now)

    def end(self, request_id: str) -> tuple[float | None, float | None]:
        """(GPU-seconds, joules) for the request; (None, None) when it never ran on a GPU here, and
        joules None when one of its GPUs has no power reading."""
        run = self._runs.pop(request_id, None)
        if run is None:
            return NOT_MEASURED
        now = self._monotonic()
        for gpu in run.gpus:
            gpu.leave(run, now)
        run.gpus = ()
        return run.gpu_seconds, run.joules if run.joules_known else None

    def on_sample(self, snapshot: GpuSnapshot) -> None:
        """Every GPU sample. A failed one is skipped: the next reading then covers the longer interval."""
        if snapshot.state != "ok":
            return
        now = self._monotonic()
        for device in snapshot.devices:
            gpu = self._gpus.get(device.index)
            if gpu is None:
                gpu = self._gpus[device.index] = _Gpu(now)
            gpu.sample(device.power_draw_watts, now)

    def forget(self, provider: str | None = None) -> None:
        """Ask `gpus_of` again for `provider` (every provider when None) at its next request."""
        if provider is None:
            self._placements.clear()
        else:
            self._placements.pop(provider, None)

    @property
    def running(self) -> int:
        """Requests being measured now (begun on a GPU here, not yet ended)."""
        return len(self._runs)

    def _placement(self, provider: str) -> tuple[_Gpu, ...] | None:
        indices = self._gpus_of(provider)
        placement = tuple(self._gpu(index) for index in dict.fromkeys(indices)) if indices else None
        self._placements[provider] = placement
        return placement

    def _gpu(self, index: int) -> _Gpu:
        gpu = self._gpus.get(index)
        if gpu is None:
            gpu = self._gpus[index] = _Gpu(self._monotonic())
        return gpu
