"""A TinyDB storage that never leaves half a file: write a temporary file, fsync, then rename over."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        try:
            tables: dict[str, dict[str, Any]] = orjson.loads(raw)  # TinyDB's layout, as this class wrote it
        except orjson.JSONDecodeError as error:
            raise ValueError(
                f"{self.path} is not valid JSON ({error}); restore it from a backup or move it aside to start empty"
            ) from error
        return tables

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, self.mode)  # the umask may have narrowed it further than asked; never widen
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def close(self) -> None:
        pass
