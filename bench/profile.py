"""Profiling corral-core under load with py-spy, and ranking what the samples show."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import LoadWorker

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(
    pid: int, worker: LoadWorker, spec: dict[str, Any], raw_file: Path, label: str, duration_s: int = 10
) -> dict[str, Any]:
    """Run `spec` on the worker (it should last a little over `duration_s`) while py-spy samples `pid`."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed; `.venv/bin/pip install py-spy`")
    raw_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "record",
        "-p",
        str(pid),
        "-f",
        "raw",
        "-d",
        str(duration_s),
        "-o",
        str(raw_file),
        "--nonblocking",
    ]
    spy = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        result = worker.run(spec)
        output, _ = spy.communicate(timeout=duration_s + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.communicate(timeout=5)
    if spy.returncode != 0 or not raw_file.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {output.decode(errors='replace')[-500:]}")
    summary = summarize(raw_file.read_text())
    rps = result["ok"] / result["wall_s"] if result["wall_s"] else 0.0
    return {
        "label": label,
        "raw_file": raw_file.name,
        "load_rps_while_profiled": round(rps, 1),
        "load_errors": result["errors"],
        "load_error_samples": result["error_samples"],
        **summary,
    }


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match["function"], match["file"]) if match else (frame.strip(), "")


def package_of(path: str) -> str:
    """httpcore/_async/http11.py -> httpcore; gateway_core/gateway/x.py -> gateway_core.gateway; asyncio -> stdlib."""
    parts = Path(path).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if not parts:
        return "(native)"
    top = parts[0].removesuffix(".py")
    if top == "gateway_core" and len(parts) > 1:
        return f"gateway_core.{parts[1].removesuffix('.py')}"
    if top in sys.stdlib_module_names or top.startswith("<frozen"):
        return f"stdlib ({top})"
    return top


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Shares of all samples: by leaf frame (self), by frame anywhere on the stack (inclusive), by leaf package."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_split(frame) for frame in stack.split(";") if frame.strip()]
        named = [f"{function} ({Path(file).name})" if file else function for function, file in frames]
        total += count
        self_counts[named[-1]] += count
        packages[package_of(frames[-1][1])] += count
        for name in set(named):
            inclusive[name] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "top_self": shares(self_counts),
        "top_inclusive": shares(inclusive),
        "by_package": shares(packages),
    }
