"""config.json: providers, keys (hashes only) and settings, in TinyDB. Only the daemon opens it.

Every change is written through at once (atomically); the daemon keeps its own in-memory view for
the request path, so nothing here runs per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from .atomic_storage import AtomicJSONStorage

SCHEMA_VERSION = 1


class ConfigStoreError(RuntimeError):
    pass


class ConfigStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = TinyDB(path, storage=AtomicJSONStorage)
        self._migrate()

    def _migrate(self) -> None:
        meta = self._db.table("meta")
        record = meta.get(doc_id=1)
        version = int(record["schema_version"]) if record else 0
        if version > SCHEMA_VERSION:
            raise ConfigStoreError(
                f"{self.path} has schema version {version}, newer than this corral-core understands "
                f"({SCHEMA_VERSION}); upgrade Corral or restore an older config"
            )
        if version < SCHEMA_VERSION:
            # Version 0 is an empty or new file; later versions add steps here, one per version.
            meta.truncate()
            meta.insert({"schema_version": SCHEMA_VERSION})

    @property
    def schema_version(self) -> int:
        record = self._db.table("meta").get(doc_id=1)
        return int(record["schema_version"]) if record else 0

    # -- named records (providers, keys, deployments) -------------------------------------------------

    def all(self, table: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.table(table).all()]

    def put(self, table: str, key_field: str, record: dict[str, Any]) -> None:
        """Insert or replace the record whose `key_field` matches."""
        self._db.table(table).upsert(record, Query()[key_field] == record[key_field])

    def remove(self, table: str, key_field: str, value: str) -> bool:
        return bool(self._db.table(table).remove(Query()[key_field] == value))

    # -- settings ---------------------------------------------------------------------------------------

    def get_setting(self, name: str, default: Any = None) -> Any:
        row = self._db.table("settings").get(Query().name == name)
        return row["value"] if row else default

    def set_setting(self, name: str, value: Any) -> None:
        self._db.table("settings").upsert({"name": name, "value": value}, Query().name == name)

    def close(self) -> None:
        self._db.close()
