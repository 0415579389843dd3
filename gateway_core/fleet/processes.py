"""The processes on the GPUs, as nvitop shows them, and the host line as htop's header does.

NVML lists each GPU's compute processes (in the sampler's snapshot) and, where the driver supports it, their
SM utilisation; /proc and psutil add the user, CPU %, RSS, elapsed time and command line; /proc/PID/cgroup
says which container or systemd unit a process belongs to. The parsing functions are pure; reading is done
in a worker thread (psutil and NVML block).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import psutil
import pynvml

from gateway_core.contracts.fleet_views import ContainerView, GpuSnapshotView
from gateway_core.contracts.views import HostView, ProcessesView, ProcessOwnerKind, ProcessView
from gateway_core.fleet.gpu_sampler import GpuSampler

# docker-<id>.scope (systemd cgroup driver) or /docker/<id> (cgroupfs driver); 64 hex digits either way.
_CONTAINER = re.compile(r"(?:/docker-|/docker/)([0-9a-f]{64})(?:\.scope)?(?:/|$)")
_UNIT = re.compile(r"/([^/]+\.service)(?=/|$)")
COMMAND_CHARS = 400  # a command line longer than this is cut: a screen line shows far less
SM_UNSUPPORTED = "SM % n/a: this NVIDIA driver does not report per-process utilisation"


@dataclass(frozen=True, slots=True)
class Owner:
    kind: ProcessOwnerKind
    ref: str  # a container's full id, a unit's name, or ""


def cgroup_owner(cgroup: str) -> Owner:
    """Who a process belongs to, from the text of its /proc/PID/cgroup (v1 or v2): the container, else the
    innermost systemd service, else the host."""
    for line in cgroup.splitlines():
        path = line.split(":", 2)[-1]
        if found := _CONTAINER.search(path):
            return Owner("container", found.group(1))
    units = [found for line in cgroup.splitlines() for found in _UNIT.findall(line.split(":", 2)[-1])]
    units = [unit for unit in units if not unit.startswith("user@")]  # a user's manager holds their units
    return Owner("unit", units[-1]) if units else Owner("host", "")


def owner_name(owner: Owner, containers: Iterable[ContainerView]) -> str:
    """A container's name when the fleet knows it (llama-server containers), else its short id."""
    if owner.kind != "container":
        return owner.ref
    for container in containers:
        if container["id"] and owner.ref.startswith(container["id"]):
            return container["container"]
    return owner.ref[:12]


def read_cgroup(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as file:
            return file.read()
    except OSError:
        return ""  # gone, or not ours to read


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    user: str | None
    cpu_percent: float | None
    rss_bytes: int | None
    elapsed_s: float | None
    command: str
    cgroup: str


class ProcessInspector:
    """psutil's view of processes; it keeps each Process so CPU % is measured since the previous look."""

    def __init__(self) -> None:
        self._seen: dict[int, psutil.Process] = {}

    def inspect(self, pids: Iterable[int]) -> dict[int, ProcessFacts]:
        facts: dict[int, ProcessFacts] = {}
        wanted = set(pids)
        for pid in list(self._seen):
            if pid not in wanted:
                del self._seen[pid]
        for pid in wanted:
            facts[pid] = self._facts(pid)
        return facts

    def _facts(self, pid: int) -> ProcessFacts:
        try:
            process = self._seen.get(pid) or psutil.Process(pid)
            first_look = pid not in self._seen
            self._seen[pid] = process
            with process.oneshot():
                cpu = process.cpu_percent(interval=None)
                user = _username(process)
                rss = process.memory_info().rss
                elapsed = max(0.0, time.time() - process.create_time())
                command = " ".join(process.cmdline()) or process.name()
            return ProcessFacts(
                user, None if first_look else cpu, rss, elapsed, command[:COMMAND_CHARS], read_cgroup(pid)
            )
        except psutil.NoSuchProcess:
            self._seen.pop(pid, None)
            return ProcessFacts(None, None, None, None, "(exited)", "")
        except psutil.AccessDenied:
            return ProcessFacts(None, None, None, None, "(not readable by corral-core)", read_cgroup(pid))


def _username(process: psutil.Process) -> str | None:
    try:
        return str(process.username())
    except KeyError:
        return str(process.uids().real)  # a uid with no passwd entry here (a container's own user)


def host_view() -> HostView:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),  # since the previous call: the previous look
        "cpu_count": psutil.cpu_count() or 1,
        "memory_total_bytes": memory.total,
        "memory_used_bytes": memory.total - memory.available,
        "swap_total_bytes": swap.total,
        "swap_used_bytes": swap.used,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def read_sm_percent(
    device_indices: Iterable[int], seen_us: dict[int, int]
) -> tuple[dict[tuple[int, int], int], str | None]:
    """(gpu index, pid) -> SM % from NVML's per-process samples since the previous look (`seen_us`: each GPU's
    newest sample time, in microseconds, updated here), and why there are none, if so. Call it on the thread
    that owns the NVML session, once NVML is initialised (the GPU sampler's)."""
    found: dict[tuple[int, int], int] = {}
    for index in device_indices:
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            # Since the previous look, as nvitop asks: a process idle since then has no sample, so shows 0.
            samples = pynvml.nvmlDeviceGetProcessUtilization(handle, seen_us.get(index, 0))
        except (pynvml.NVMLError_FunctionNotFound, pynvml.NVMLError_NotSupported):
            return {}, SM_UNSUPPORTED
        except pynvml.NVMLError_NotFound:
            continue  # no samples since the last look: no process used the SMs (nvitop shows 0 too)
        except pynvml.NVMLError as error:
            return {}, f"SM % n/a: NVML failed: {error}"
        latest: dict[int, tuple[int, int]] = {}
        for sample in samples:
            if sample.pid not in latest or sample.timeStamp > latest[sample.pid][0]:
                latest[sample.pid] = (sample.timeStamp, sample.smUtil)
        for pid, (_, sm) in latest.items():
            found[(index, pid)] = int(sm)
        if latest:
            seen_us[index] = max(stamp for stamp, _ in latest.values())
    return found, None


def processes_view(
    gpus: GpuSnapshotView,
    facts: Mapping[int, ProcessFacts],
    sm: Mapping[tuple[int, int], int],
    sm_note: str | None,
    containers: Iterable[ContainerView],
    host: HostView,
) -> ProcessesView:
    known = list(containers)
    rows: list[ProcessView] = []
    for device in gpus["devices"] if gpus["state"] == "ok" else []:
        for process in device["processes"]:
            pid = process["pid"]
            fact = facts.get(pid) or ProcessFacts(None, None, None, None, process["name"], "")
            owner = cgroup_owner(fact.cgroup)
            rows.append(
                {
                    "gpu_index": device["index"],
                    "pid": pid,
                    "user": fact.user,
                    "gpu_memory_bytes": process["used_memory_bytes"],
                    "sm_percent": sm.get((device["index"], pid), None if sm_note else 0),
                    "cpu_percent": fact.cpu_percent,
                    "rss_bytes": fact.rss_bytes,
                    "elapsed_s": None if fact.elapsed_s is None else round(fact.elapsed_s, 1),
                    "command": fact.command or process["name"],
                    "owner_kind": owner.kind,
                    "owner": owner_name(owner, known),
                }
            )
    return {"host": host, "processes": rows, "sm_note": sm_note}


class GpuProcesses:
    """GET /gpus/processes: the latest GPU sample's processes, looked at now."""

    def __init__(
        self, sampler: GpuSampler, containers: Callable[[], Iterable[ContainerView]], inspector: ProcessInspector
    ) -> None:
        self._sampler = sampler
        self._containers = containers
        self._inspector = inspector
        self._looking = asyncio.Lock()  # the inspector's CPU % is since its previous look: one look at a time
        self._sm_seen_us: dict[int, int] = {}

    async def view(self) -> ProcessesView:
        async with self._looking:
            gpus = self._sampler.latest.to_dict()
            devices = gpus["devices"] if gpus["state"] == "ok" else []
            pids = {process["pid"] for device in devices for process in device["processes"]}
            facts = await asyncio.to_thread(self._inspector.inspect, pids)
            host = await asyncio.to_thread(host_view)
            indices = [device["index"] for device in devices]
            read = (
                await self._sampler.read_nvml(lambda: read_sm_percent(indices, self._sm_seen_us)) if indices else None
            )
            sm, note = read if read is not None else ({}, None)
            return processes_view(gpus, facts, sm, note, self._containers(), host)
