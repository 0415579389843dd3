"""Where the testbed keeps what it builds: outside the tree, so clones and CI runs share it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """`CORRAL_TESTBED_CACHE`, else `$XDG_CACHE_HOME/corral-testbed` (`~/.cache/corral-testbed`)."""
    explicit = os.environ.get("CORRAL_TESTBED_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "corral-testbed"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def build_lock(name: str) -> Iterator[None]:
    """Serialise builds of one component across processes (the prepare step and pytest may race)."""
    lock_path = cache_root() / f".{name}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
