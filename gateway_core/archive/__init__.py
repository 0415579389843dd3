"""The request archive: every request in monthly SQLite files, searchable, with hourly rollups for usage."""

from gateway_core.archive.capture import StreamCapture
from gateway_core.archive.export import import_jsonl
from gateway_core.archive.interface import Archive, ExportFormat, HistoryQuery, UsageQuery
from gateway_core.archive.schema import SCHEMA_VERSION, ArchiveFileError
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.archive.sqlite_archive import SqliteArchive

__all__ = [
    "SCHEMA_VERSION",
    "Archive",
    "ArchiveFileError",
    "ArchiveSettings",
    "ExportFormat",
    "HistoryQuery",
    "SqliteArchive",
    "StreamCapture",
    "UsageQuery",
    "import_jsonl",
]
