"""Which on-demand deployments to stop so that another one fits in its GPUs' measured free memory.

Pure arithmetic over what NVML measured, so the rules are tested without a GPU:
- the model needs `need_bytes` across its GPUs, and each of them keeps `margin_bytes` free;
- only on-demand deployments that are warm, idle (nothing in flight, nothing waiting) and not pinned are
  stopped, lowest priority first, then least recently used;
- one with requests in flight is never stopped: when only busy ones stand in the way, the start waits for them;
- when even stopping every on-demand deployment would not make room, the start is refused, naming what holds
  the memory.

A deployment on several GPUs is taken to hold its memory evenly across them (llama.cpp splits layers by free
memory, which this does not try to predict); only its share on the GPUs in question is counted as freed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Holder:
    """Something holding GPU memory: one of the fleet's deployments, or another process NVML lists."""

    name: str
    gpus: tuple[int, ...]
    memory_bytes: int  # all its GPUs together: measured when it ran last, else the estimate
    on_demand: bool = False  # a deployment Corral may stop; False for `always` ones and foreign processes
    pinned: bool = False
    priority: int = 0
    last_used: float = 0.0  # monotonic; the least recently used goes first among equals
    busy: bool = False  # requests in flight or waiting for it

    def share_on(self, gpus: tuple[int, ...]) -> int:
        """The part of its memory on these GPUs."""
        if not self.gpus:
            return 0
        return self.memory_bytes * len(set(self.gpus) & set(gpus)) // len(self.gpus)


@dataclass(frozen=True)
class RoomPlan:
    fits: bool  # after stopping `stop`, it fits (as far as the measurement goes)
    stop: list[Holder] = field(default_factory=list)  # to stop, in this order
    wait_for: list[Holder] = field(default_factory=list)  # busy deployments whose end would make room
    free_bytes: int = 0  # what the GPUs have free now, less the margins
    short_bytes: int = 0  # what is missing after every stop this plan may make


def plan_room(
    need_bytes: int, gpus: tuple[int, ...], free: dict[int, int], margin_bytes: int, holders: list[Holder]
) -> RoomPlan:
    """What to stop (in order) so that `need_bytes` fits on `gpus`, given each GPU's measured free bytes."""
    available = sum(free.get(gpu, 0) for gpu in gpus) - margin_bytes * len(gpus)
    if available >= need_bytes:
        return RoomPlan(fits=True, free_bytes=available)
    on_these = [h for h in holders if h.share_on(gpus) > 0]
    idle = sorted(
        (h for h in on_these if h.on_demand and not h.pinned and not h.busy), key=lambda h: (h.priority, h.last_used)
    )
    stop: list[Holder] = []
    room = available
    for holder in idle:
        if room >= need_bytes:
            break
        stop.append(holder)
        room += holder.share_on(gpus)
    if room >= need_bytes:
        return RoomPlan(fits=True, stop=stop, free_bytes=available)
    busy = sorted(
        (h for h in on_these if h.on_demand and not h.pinned and h.busy), key=lambda h: (h.priority, h.last_used)
    )
    wait_for: list[Holder] = []
    for holder in busy:
        if room >= need_bytes:
            break
        wait_for.append(holder)
        room += holder.share_on(gpus)
    if room >= need_bytes:
        return RoomPlan(fits=False, stop=stop, wait_for=wait_for, free_bytes=available)
    return RoomPlan(fits=False, stop=stop, free_bytes=available, short_bytes=need_bytes - room)
