"""The daemon's fleet: deploys llama-server as containers or systemd services and routes to them at once.

Docker and systemd calls block, so they run in worker threads; everything here is awaited on the
daemon's event loop. A deployment is registered as a `llama-server` provider named after it, and
removing the deployment removes the provider.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from gateway_core.contracts.events import Publish
from gateway_core.contracts.fleet_views import (
    ComposeImportAnswer,
    ContainerView,
    DeployAnswer,
    FleetView,
    PlanReport,
    SystemdDeploymentView,
)
from gateway_core.fleet.compose import export_compose, import_compose
from gateway_core.fleet.containers import ContainerEngine, DeploymentConflict, EngineUnavailable, FleetError
from gateway_core.fleet.deployment import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, DeploymentSpec
from gateway_core.fleet.gpus import GpuSnapshot
from gateway_core.fleet.inventory import ClosingStream, ContainerEvent
from gateway_core.fleet.load_policy import PolicyStore
from gateway_core.fleet.models import GgufError, read_model
from gateway_core.fleet.systemd import SystemdManager, follow_file_command, follow_journal_command, journal_line
from gateway_core.fleet.systemd_records import SystemdDeployment, SystemdRecords
from gateway_core.fleet.vram import GpuFree, estimate, place
from gateway_core.settings import llama_server_binary
from gateway_core.store.config_store import ConfigStore

log = logging.getLogger("corral.fleet")
FIRST_PORT = 8081
DEFAULT_HEALTH_TIMEOUT_S = 300.0
STATE_CHANGING_ACTIONS = frozenset({"start", "die", "stop", "kill", "restart", "health_status", "pause", "unpause"})
SystemdFactory = Callable[..., SystemdManager]  # (user=, dry_run=) -> the manager of one deployment's unit


class FleetInputError(ValueError):
    """The request names something that cannot be deployed; the message says what and why."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class FleetManager:
    def __init__(
        self,
        gpus: Callable[[], GpuSnapshot],
        register: Callable[[DeploymentSpec], Awaitable[None]],
        unregister: Callable[[str], Awaitable[None]],
        on_deployment_changed: Callable[[str], Awaitable[None]],
        publish: Publish,
        docker_url: str | None = None,
        store: ConfigStore | None = None,
        systemd: SystemdFactory = SystemdManager,
    ) -> None:
        self._gpus = gpus
        self._register = register
        self._unregister = unregister
        self._on_deployment_changed = on_deployment_changed
        self._background: set[asyncio.Future[None]] = set()
        self._refreshing = False
        self.latest: FleetView = _unavailable("not connected yet")
        self._publish = publish
        self._docker_url = docker_url
        self.engine: ContainerEngine | None = None
        self.engine_reason = "not connected yet"
        self._watcher: asyncio.Task[None] | None = None
        self._event_stream: ClosingStream[ContainerEvent] | None = None
        # systemd deployments, kept in config.json (containers carry their spec in a label); None: in memory
        self._systemd = SystemdRecords(store)
        self._systemd_manager = systemd
        self._policies = PolicyStore(store) if store is not None else None

    @property
    def _systemd_specs(self) -> dict[str, DeploymentSpec]:
        return self._systemd.specs()

    def _systemd_user_of(self, name: str) -> bool:
        """A user unit (systemctl --user) rather than a system one."""
        deployment = self._systemd.get(name)
        return deployment is not None and deployment.user

    # -- engine -----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        if systemd := sorted(self._systemd.specs()):
            log.info("systemd deployment(s) from config.json: %s", ", ".join(systemd))
        try:
            self.engine = await asyncio.to_thread(ContainerEngine.connect, self._docker_url)
        except EngineUnavailable as error:
            self.engine, self.engine_reason = None, str(error)
            self.latest = _unavailable(self.engine_reason)
            log.info("containers unavailable: %s", error)
            return
        self.engine_reason = ""
        self.latest = await self.inventory()
        log.info("Docker engine connected: %d llama-server container(s)", len(self.latest["deployments"]))
        self._watcher = asyncio.create_task(self._watch_events(), name="docker-events")

    def _engine(self) -> ContainerEngine:
        if self.engine is None:
            raise EngineUnavailable(self.engine_reason)
        return self.engine

    async def _watch_events(self) -> None:
        """Relay container events (start, die, health...) from a worker thread to the event bus."""
        loop = asyncio.get_running_loop()
        engine = self._engine()

        def pump() -> None:
            self._event_stream = events = engine.events()
            for event in events:
                loop.call_soon_threadsafe(self._on_container_event, event)

        try:
            await asyncio.to_thread(pump)
        except FleetError as error:
            log.warning("Docker events stopped: %s", error)

    def _on_container_event(self, event: ContainerEvent) -> None:
        self._publish("container", event.to_dict())
        if event.action in STATE_CHANGING_ACTIONS or event.action in ("create", "destroy"):
            self._in_background(self._refresh())
        if event.managed and event.action in STATE_CHANGING_ACTIONS:
            # Re-probe the deployment's provider now rather than at its next scheduled probe.
            self._in_background(self._on_deployment_changed(event.name))

    def _in_background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self) -> None:
        """Keep `latest` current for the event stream's snapshot; a burst of events costs one refresh."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            await asyncio.sleep(0.05)
            self.latest = await self.inventory()
            self._publish("fleet", self.latest)
        finally:
            self._refreshing = False

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._event_stream is not None:
            await asyncio.to_thread(self._event_stream.close)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self.engine is not None:
            await asyncio.to_thread(self.engine.close)

    # -- inventory --------------------------------------------------------------------------------------

    async def inventory(self) -> FleetView:
        if self.engine is None:
            return _unavailable(self.engine_reason)
        try:
            infos = await asyncio.to_thread(self.engine.inventory)
        except FleetError as error:
            return _unavailable(str(error))
        return {"engine": {"state": "ok", "reason": ""}, "deployments": [info.to_dict() for info in infos]}

    async def llama_server_images(self) -> list[str]:
        """The engine's local llama-server images, for a deploy form's default; EngineUnavailable without one."""
        return await asyncio.to_thread(self._engine().llama_server_images)

    def gpus_of(self, name: str) -> tuple[int, ...] | None:
        """The GPU indices deployment `name` runs on; None when it is no deployment of ours or runs on CPU.

        From the latest container inventory (the `corral.gpus` label), else the spec of a systemd
        deployment (config.json keeps them). "all" is every device in the latest GPU sample.
        """
        for deployment in self.latest["deployments"]:
            if deployment["managed"] and deployment["name"] == name:
                return self._gpu_indices(deployment["gpus"])
        spec = self._systemd_specs.get(name)
        return self._gpu_indices(spec.gpus) if spec is not None else None

    def _gpu_indices(self, gpus: str | tuple[int, ...] | None) -> tuple[int, ...] | None:
        if gpus is None or gpus in ("none", ""):
            return None
        if gpus == "all":
            snapshot = self._gpus()
            every = tuple(device.index for device in snapshot.devices) if snapshot.state == "ok" else ()
            return every or None
        if isinstance(gpus, str):
            try:
                return tuple(int(part) for part in gpus.split(",")) or None
            except ValueError:  # a label edited by hand; better unmeasured than charged to the wrong GPU
                return None
        return gpus or None

    # -- deploying --------------------------------------------------------------------------------------

    def plan(self, fields: dict[str, Any]) -> tuple[DeploymentSpec, PlanReport]:
        """Fill in defaults, check the model and GPUs, and explain the VRAM fit. Raises FleetInputError."""
        path = Path(str(fields.get("model_path") or "")).expanduser()
        if not str(path) or not path.is_absolute():
            raise FleetInputError(
                f"model_path must be an absolute path to a .gguf file, not {str(path)!r}", "model_path"
            )
        router = fields.get("router") is not None
        try:
            # A router has no one GGUF: its VRAM is estimated for its largest model (warned below).
            model = read_model(_largest_gguf(path) if router else path)
        except GgufError as error:
            raise FleetInputError(f"{path}: {error.message}", "model_path") from error
        snapshot = self._gpus()
        has_gpus = snapshot.state == "ok" and bool(snapshot.devices)
        gpus = fields.get("gpus", "all" if has_gpus else None)
        filled = {
            "name": fields.get("name") or _default_name(path.name if router else model.name),
            "model_path": str(path),
            "gpus": gpus,
            # A stopped deployment (a cold on-demand one) listens on nothing, yet its port is taken.
            "port": fields.get("port")
            or free_port(FIRST_PORT, taken={s.port for s in self.deployment_specs().values()}),
            **{k: v for k, v in fields.items() if k not in ("name", "model_path", "gpus", "port") and v is not None},
        }
        try:
            spec = DeploymentSpec.model_validate(filled)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            raise FleetInputError(f"{field}: {first['msg'].removeprefix('Value error, ')}", field) from error
        if "image" not in fields or not fields["image"]:
            spec = spec.model_copy(update={"image": DEFAULT_GPU_IMAGE if spec.gpus is not None else DEFAULT_CPU_IMAGE})
        self._check_gpus(spec, snapshot)
        need = estimate(model, spec.ctx_size, spec.parallel)
        free = [
            GpuFree(
                d.index, d.name, (d.memory_total_bytes or 0) - (d.memory_used_bytes or 0), d.memory_total_bytes or 0
            )
            for d in snapshot.devices
        ]
        chosen = free if spec.gpus in (None, "all") else [g for g in free if g.index in spec.gpus]
        placement = place(need, chosen if spec.gpus is not None else [])
        warnings = list(need.warnings)
        if spec.router is not None:
            at_once = spec.router.models_max
            loaded = "one at a time (--models-max 1)" if at_once == 1 else f"up to {at_once or 'all'} at once"
            warnings.append(f"router mode: the estimate is for its largest model ({model.path.name}), loaded {loaded}")
        return spec, {"estimate": need.to_dict(), "placement": placement.to_dict(), "warnings": warnings}

    @staticmethod
    def _check_gpus(spec: DeploymentSpec, snapshot: GpuSnapshot) -> None:
        if spec.gpus is None or spec.gpus == "all":
            if spec.gpus == "all" and snapshot.state != "ok":
                raise FleetInputError(
                    f"gpus=all, but no GPU is usable here ({snapshot.reason}); use --gpus none", "gpus"
                )
            return
        if snapshot.state != "ok":
            raise FleetInputError(f"GPUs {spec.gpus} were asked for, but {snapshot.reason}", "gpus")
        known = {device.index for device in snapshot.devices}
        missing = [index for index in spec.gpus if index not in known]
        if missing:
            raise FleetInputError(f"GPU id(s) {missing} do not exist here; this box has GPUs {sorted(known)}", "gpus")

    async def deploy(
        self,
        fields: dict[str, Any],
        health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
        systemd: dict[str, Any] | None = None,
        start: bool = True,
    ) -> DeployAnswer:
        """Deploy and route. With `start` false the container is created (the systemd unit installed and
        enabled) but not started, and its provider registered all the same: what an on-demand deployment
        is until a request needs it (fleet/on_demand.py starts it)."""
        spec, report = self.plan(fields)
        if spec.kind == "systemd":
            return await self._deploy_systemd(spec, report, systemd or {}, health_timeout_s, start)
        engine = self._engine()
        log.info("deploying %s (%s) on port %d%s", spec.name, spec.model_file, spec.port, "" if start else ", cold")
        await asyncio.to_thread(engine.deploy, spec, create_only=not start)
        if start:
            await asyncio.to_thread(engine.wait_healthy, spec.name, health_timeout_s)
        await self._register(spec)
        if start:
            report["warnings"] += await self.verify_offload(spec)
        info = await asyncio.to_thread(engine.info, spec.name)
        log.info(
            "deployment %s is %s and routed as model '%s'", spec.name, "healthy" if start else "created", spec.name
        )
        return {
            "deployment": info.to_dict(),
            "estimate": report["estimate"],
            "placement": report["placement"],
            "warnings": report["warnings"],
        }

    async def verify_offload(self, spec: DeploymentSpec) -> list[str]:
        """On a GPU host, the process must show up on its GPUs: llama-server can silently fall back to CPU."""
        snapshot = self._gpus()
        if spec.gpus is None or snapshot.state != "ok" or self.engine is None:
            return []
        pid = await asyncio.to_thread(self.engine.main_pid, spec.name)
        on_gpus = [d.index for d in snapshot.devices if any(p.pid == pid for p in d.processes)]
        if on_gpus:
            return []
        return [
            f"{spec.name} (pid {pid}) does not appear on any GPU in NVML: llama-server may have silently "
            "fallen back to the CPU; check the image is a CUDA build and the NVIDIA container runtime is set up"
        ]

    async def _deploy_systemd(
        self,
        spec: DeploymentSpec,
        report: PlanReport,
        options: dict[str, Any],
        health_timeout_s: float,
        start: bool = True,
    ) -> DeployAnswer:
        binary = llama_server_binary(options.get("binary"))  # the rule `fleet systemd-unit` follows too
        user, log_dir = bool(options.get("user")), options.get("log_dir")
        manager = self._systemd_manager(user=user, dry_run=bool(options.get("dry_run")))
        lines = await asyncio.to_thread(manager.install, spec, binary, log_dir, start=start)
        if options.get("dry_run"):
            return {
                "dry_run": lines,
                "estimate": report["estimate"],
                "placement": report["placement"],
                "warnings": report["warnings"],
            }
        # Recorded once the unit is installed, before the wait: a unit that never turns healthy is still one
        # Corral made, and `corral fleet remove` must find it.
        self._systemd.put(SystemdDeployment(spec=spec, user=user, binary=binary, log_dir=log_dir))
        if start:
            await _wait_http_healthy(spec.base_url, health_timeout_s)
        await self._register(spec)
        deployment: SystemdDeploymentView = {"name": spec.name, "kind": "systemd", "spec": spec.view()}
        return {
            "deployment": deployment,
            "estimate": report["estimate"],
            "placement": report["placement"],
            "warnings": report["warnings"],
        }

    # -- what OnDemand (fleet/on_demand.py) drives ------------------------------------------------------

    def deployment_specs(self) -> dict[str, DeploymentSpec]:
        """Every managed deployment's spec: containers from their labels (the latest inventory), systemd ones
        from what this daemon knows of them."""
        specs: dict[str, DeploymentSpec] = {}
        for deployment in self.latest["deployments"]:
            if deployment["managed"] and deployment["spec"]:
                try:
                    specs[deployment["name"]] = DeploymentSpec.model_validate(deployment["spec"])
                except ValidationError:  # a label from another Corral version: shown, not driven
                    continue
        specs.update(self._systemd.specs())
        return specs

    def exited(self, name: str) -> str | None:
        """How a container deployment ended, when the latest inventory shows it stopped after running, or
        being restarted by its restart policy after it exited."""
        for deployment in self.latest["deployments"]:
            ended = deployment["state"] in ("exited", "dead", "restarting")
            if deployment["managed"] and deployment["name"] == name and ended:
                return f"exit code {deployment['exit_code']}"
        return None

    async def start_deployment(self, name: str) -> None:
        if name in self._systemd_specs:
            await asyncio.to_thread(self._systemd_for(name).start, name)
        else:
            await asyncio.to_thread(self._engine().start, name)
        await self.refresh_now()

    async def stop_deployment(self, name: str) -> None:
        if name in self._systemd_specs:
            await asyncio.to_thread(self._systemd_for(name).stop, name)
        else:
            await asyncio.to_thread(self._engine().stop, name)
        await self.refresh_now()

    async def main_pid(self, name: str) -> int | None:
        """The deployment's llama-server process (as NVML lists it), or None when it is not running."""
        if name in self._systemd_specs:
            status = await asyncio.to_thread(self._systemd_for(name).status, name)
            return status.main_pid or None
        try:
            return await asyncio.to_thread(self._engine().main_pid, name)
        except FleetError:
            return None

    async def container_view(self, name: str) -> ContainerView:
        return (await asyncio.to_thread(self._engine().info, name)).to_dict()

    async def inspect(self, name: str) -> dict[str, Any] | None:
        """The engine's record of the deployment's container; None for a systemd deployment, which has none."""
        if name in self._systemd_specs:
            return None
        return await asyncio.to_thread(self._engine().inspect, name)

    async def log_tail(self, name: str, lines: int) -> str:
        try:
            if name in self._systemd_specs:
                return await asyncio.to_thread(self._systemd_log_tail, name, lines)
            return await asyncio.to_thread(self._engine().logs, name, lines)
        except FleetError as error:
            return f"(its log could not be read: {error})"

    def _systemd_for(self, name: str) -> SystemdManager:
        return self._systemd_manager(user=self._systemd_user_of(name))

    def systemd_deployment(self, name: str) -> SystemdDeployment | None:
        """What corral-core keeps of a systemd deployment (its spec, binary and log dir); None for any other."""
        return self._systemd.get(name)

    def _systemd_log_tail(self, name: str, lines: int) -> str:
        """The last lines of the unit's log file when it was installed with a log_dir; else where to look."""
        deployment = self._systemd.get(name)
        if deployment is None or deployment.log_dir is None:
            user = "--user " if self._systemd_user_of(name) else ""
            return f"(its log is in the journal: `journalctl {user}-u corral-{name}.service`)"
        path = Path(deployment.log_dir) / f"{name}.log"
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - 64 * 1024))  # a log may be gigabytes: read its end only
                text = handle.read().decode("utf-8", errors="replace")
        except OSError as error:
            return f"(its log {path} could not be read: {error.strerror})"
        return "\n".join(text.splitlines()[-lines:]) + "\n"

    async def refresh_now(self) -> None:
        """Read the inventory now: the engine's event would refresh it a moment later, and callers look at once."""
        self.latest = await self.inventory()
        self._publish("fleet", self.latest)

    # -- control ----------------------------------------------------------------------------------------

    async def control(self, name: str, action: str) -> ContainerView:
        engine = self._engine()
        operation = {"start": engine.start, "stop": engine.stop, "restart": engine.restart}[action]
        info = await asyncio.to_thread(operation, name)
        log.info("deployment %s: %s", name, action)
        return info.to_dict()

    async def remove(self, name: str) -> None:
        if name in self._systemd:
            await self._remove_systemd(name)
            return
        engine = self._engine()
        info = await asyncio.to_thread(engine.info, name)
        await asyncio.to_thread(engine.remove, name)
        if info.managed:
            await self._unregister(info.name)
        log.info("deployment %s removed", info.name)

    async def _remove_systemd(self, name: str) -> None:
        """Disable and delete the unit, then forget the deployment; a unit systemctl could not remove is kept."""
        await asyncio.to_thread(self._systemd_for(name).uninstall, name)
        self._systemd.remove(name)
        await self._unregister(name)
        log.info("systemd deployment %s removed", name)

    async def logs(self, name: str, tail: int) -> str:
        return await asyncio.to_thread(self._engine().logs, name, tail)

    async def follow_logs(
        self, name: str, *, since: float | None = None, tail: int | None = 200, timestamps: bool = False
    ) -> AsyncIterator[str]:
        """Open the engine's log stream now (so an unknown name fails here), then relay it line by line: the
        last `tail` lines (None: all) written since `since` (Unix seconds), then new ones."""
        deployment = self._systemd.get(name)
        if deployment is not None:
            return await self._follow_unit(deployment, since=since, tail=tail, timestamps=timestamps)
        stream = await asyncio.to_thread(self._engine().follow_logs, name, since, tail, timestamps)
        return self._relay_lines(stream)

    async def _follow_unit(
        self, deployment: SystemdDeployment, *, since: float | None, tail: int | None, timestamps: bool
    ) -> AsyncIterator[str]:
        """A systemd deployment's log: its file with `tail -F` (its lines carry no times, and `since` cannot pick
        them), else its journal with journalctl."""
        if deployment.log_dir is not None:
            command = follow_file_command(Path(deployment.log_dir) / f"{deployment.name}.log", tail)
            return await self._relay_process(command, lambda line: line)
        journal = follow_journal_command(deployment.name, user=deployment.user, tail=tail, since=since)
        return await self._relay_process(journal, lambda line: journal_line(line, timestamps=timestamps))

    async def _relay_process(self, command: list[str], translate: Callable[[str], str]) -> AsyncIterator[str]:
        """Start `command` now (so a missing tool fails here), then relay its output line by line until the reader
        leaves, when the process is stopped."""
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                limit=1 << 20,  # a line may be long (a prompt llama-server logs); asyncio's default is 64 KiB
            )
        except OSError as error:
            raise DeploymentConflict(
                f"cannot follow the log: `{command[0]}` could not run ({error.strerror}); install it on this host"
            ) from None

        async def relay() -> AsyncIterator[str]:
            assert process.stdout is not None
            try:
                async for raw in process.stdout:
                    yield translate(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            finally:
                if process.returncode is None:
                    process.kill()
                await process.wait()

        return relay()

    @staticmethod
    async def _relay_lines(stream: ClosingStream[str]) -> AsyncIterator[str]:
        """Bridge the engine's blocking log stream to the event loop through a bounded queue."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)

        def pump() -> None:
            try:
                for line in stream:
                    asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        pumping = loop.run_in_executor(None, pump)
        try:
            while (line := await queue.get()) is not None:
                yield line
        finally:
            await asyncio.to_thread(stream.close)
            await asyncio.gather(pumping, return_exceptions=True)

    # -- compose ----------------------------------------------------------------------------------------

    async def export_compose(self) -> str:
        engine = self._engine()
        infos = await asyncio.to_thread(engine.inventory)
        specs = [DeploymentSpec.model_validate(info.spec) for info in infos if info.managed and info.spec]
        return export_compose([self._with_effective_policy(spec) for spec in specs])

    def _with_effective_policy(self, spec: DeploymentSpec) -> DeploymentSpec:
        """An operator's change of policy (config.json) wins over the one the deployment was made with."""
        changed = self._policies.get(spec.name) if self._policies is not None else None
        return spec if changed is None else spec.model_copy(update={"load": changed})

    async def import_compose(self, text: str, health_timeout_s: float) -> ComposeImportAnswer:
        imported = import_compose(text)
        deployed = []
        for spec in imported.specs:
            # A container deployment, named as its spec; an on-demand one is created cold, started on first use.
            await self.deploy(spec.model_dump(), health_timeout_s, start=not spec.load.on_demand)
            deployed.append(spec.name)
        return {"deployed": deployed, "warnings": list(imported.warnings)}


def _unavailable(reason: str) -> FleetView:
    return {"engine": {"state": "unavailable", "reason": reason}, "deployments": []}


def _largest_gguf(directory: Path) -> Path:
    """A router's largest model (the first file of a split one), whose VRAM need bounds each of its models'."""
    if not directory.is_dir():
        raise FleetInputError(f"router mode: model_path {directory} must be a directory of .gguf files", "model_path")
    files = [file for file in directory.glob("*.gguf") if file.is_file()]
    if not files:
        raise FleetInputError(f"router mode: {directory} holds no .gguf file to serve", "model_path")
    return max(files, key=lambda file: file.stat().st_size)


def _default_name(model_name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in model_name.lower()).strip("-._")
    return cleaned[:63] or "model"


def free_port(first: int, host: str = "127.0.0.1", tries: int = 200, taken: set[int] | None = None) -> int:
    """The first port from `first` that nothing listens on and no deployment has (`taken`)."""
    for port in range(first, first + tries):
        if taken and port in taken:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise FleetInputError(f"no free port in {first}-{first + tries - 1}; pass --port", "port")


async def _wait_http_healthy(base_url: str, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while asyncio.get_running_loop().time() < deadline:
            try:
                if (await client.get(base_url + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise FleetError(
        f"{base_url}/health did not answer 200 within {timeout_s:g} s; `corral fleet status` "
        "and `journalctl -u` show why"
    )
