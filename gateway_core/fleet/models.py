"""The GGUF model catalog: what models lie in the model directories, read from their headers.

Only headers are read (through a read-only memory map that is released before returning), so a
scan of many large files stays cheap. Anything wrong with a file is a `CatalogProblem`, never an
exception that stops the scan.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from gateway_core.contracts.fleet_views import CatalogProblemView, CatalogScanView, GgufModelView

GGUF_MAGIC = b"GGUF"
# llama.cpp names split models NAME-00001-of-00003.gguf (see llama-gguf-split).
SPLIT_NAME = re.compile(r"^(?P<name>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# llama.cpp ORs this into general.file_type when the type was guessed from the tensors.
FILE_TYPE_GUESSED = 1024
# Errors gguf.GGUFReader raises on a header that ends early or holds garbage.
_CORRUPT_HEADER_ERRORS = (ValueError, IndexError, KeyError, OverflowError, TypeError, struct.error)


class GgufError(Exception):
    """A file that cannot be catalogued; the message says why in words a user can act on."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class GgufModel:
    path: Path  # the file to pass to llama-server: the first part of a split model
    name: str
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int | None  # trained context
    layers: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    file_size: int  # bytes, all parts summed
    parts: tuple[Path, ...]

    def to_dict(self) -> GgufModelView:
        return {
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "parameter_count": self.parameter_count,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "layers": self.layers,
            "embedding_length": self.embedding_length,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "key_length": self.key_length,
            "value_length": self.value_length,
            "file_size": self.file_size,
            "parts": [str(part) for part in self.parts],
        }


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    path: Path
    message: str

    def to_dict(self) -> CatalogProblemView:
        return {"path": str(self.path), "message": self.message}


@dataclass(frozen=True, slots=True)
class CatalogScan:
    models: tuple[GgufModel, ...]
    problems: tuple[CatalogProblem, ...]

    def to_dict(self) -> CatalogScanView:
        return {
            "models": [model.to_dict() for model in self.models],
            "problems": [problem.to_dict() for problem in self.problems],
        }


@dataclass(frozen=True, slots=True)
class _Header:
    """Plain Python values copied out of one file's header, so nothing keeps the memory map alive."""

    metadata: dict[str, Any]
    tensor_count: int
    parameter_count: int


def scan(directories: list[Path]) -> CatalogScan:
    """Every model under `directories` (recursively), sorted by path, and every problem met on the way."""
    problems: list[CatalogProblem] = []
    listed: dict[Path, list[Path]] = {}  # the path a model is listed by -> its parts
    seen: set[Path] = set()
    for directory in directories:
        for path in _gguf_files(Path(directory), problems):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            parts = _split_parts(path)
            listed.setdefault(parts[0], parts)
    models: list[GgufModel] = []
    for first, parts in sorted(listed.items()):
        try:
            models.append(_read_parts(parts))
        except GgufError as error:
            problems.append(CatalogProblem(first, error.message))
    problems.sort(key=lambda problem: str(problem.path))
    return CatalogScan(tuple(models), tuple(problems))


def read_model(path: Path) -> GgufModel:
    """One model from its file (the first part, for a split model); raises GgufError when it cannot."""
    path = Path(path)
    parts = _split_parts(path)
    if path.name != parts[0].name:
        raise GgufError(f"{path.name} is one part of a split model; use its first part {parts[0].name}")
    return _read_parts(parts)


def _gguf_files(root: Path, problems: list[CatalogProblem]) -> Iterable[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        problems.append(CatalogProblem(root, "model directory does not exist"))
        return []
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        problems.append(CatalogProblem(Path(error.filename or root), f"cannot read directory: {error.strerror}"))

    visited: set[str] = set()
    for folder, subfolders, names in os.walk(root, onerror=unreadable, followlinks=True):
        visited.add(os.path.realpath(folder))
        # Following links finds models symlinked in, but a link back up the tree must not loop forever.
        subfolders[:] = [sub for sub in subfolders if os.path.realpath(os.path.join(folder, sub)) not in visited]
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() == ".gguf" and path.is_file():
                found.append(path)
    return sorted(found)


def _split_parts(path: Path) -> list[Path]:
    """All the part paths of the model `path` belongs to: just `path` unless it is named as a split part."""
    match = SPLIT_NAME.match(path.name)
    if match is None:
        return [path]
    count = int(match["count"])
    return [path.with_name(f"{match['name']}-{no:05d}-of-{count:05d}{path.suffix}") for no in range(1, count + 1)]


def _read_parts(parts: list[Path]) -> GgufModel:
    count = len(parts)
    missing = [f"{no} ({part.name})" for no, part in enumerate(parts, start=1) if not part.exists()]
    if missing:
        noun = "part" if len(missing) == 1 else "parts"
        raise GgufError(f"split model of {count} parts is missing {noun} {', '.join(missing)}")
    headers: list[_Header] = []
    for no, part in enumerate(parts, start=1):
        try:
            headers.append(_read_header(part))
        except GgufError as error:
            if count == 1:
                raise
            raise GgufError(f"part {no} of {count} ({part.name}): {error.message}") from None
    if count > 1:
        _check_split_metadata(headers)
    match = SPLIT_NAME.match(parts[0].name)
    name = match["name"] if match else parts[0].stem
    return _model(parts, name, headers, sum(part.stat().st_size for part in parts))


def _check_split_metadata(headers: list[_Header]) -> None:
    declared = headers[0].metadata.get("split.count")
    if isinstance(declared, int) and declared != len(headers):
        raise GgufError(f"file names say {len(headers)} parts but the header says split.count = {declared}")
    expected = headers[0].metadata.get("split.tensors.count")
    found = sum(header.tensor_count for header in headers)
    if isinstance(expected, int) and expected != found:
        raise GgufError(f"parts hold {found} tensors but the header says split.tensors.count = {expected}")


def _model(parts: list[Path], name: str, headers: list[_Header], file_size: int) -> GgufModel:
    meta = headers[0].metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GgufError("GGUF header has no general.architecture")
    embedding_length = _count(meta, f"{arch}.embedding_length")
    head_count = _count(meta, f"{arch}.attention.head_count")
    head_count_kv = _count(meta, f"{arch}.attention.head_count_kv")
    head_length = embedding_length // head_count if embedding_length and head_count else None
    key_length = _count(meta, f"{arch}.attention.key_length")
    value_length = _count(meta, f"{arch}.attention.value_length")
    return GgufModel(
        path=parts[0],
        name=name,
        architecture=arch,
        parameter_count=sum(header.parameter_count for header in headers),
        quantization=quantization_name(meta.get("general.file_type")),
        context_length=_count(meta, f"{arch}.context_length"),
        layers=_count(meta, f"{arch}.block_count"),
        embedding_length=embedding_length,
        head_count=head_count,
        head_count_kv=head_count_kv if head_count_kv is not None else head_count,
        key_length=key_length if key_length is not None else head_length,
        value_length=value_length if value_length is not None else head_length,
        file_size=file_size,
        parts=tuple(parts),
    )


def quantization_name(file_type: object) -> str:
    """`general.file_type` as llama.cpp names it: "Q4_K_M", "F16", "ALL_F32", or "unknown (123)"."""
    if file_type is None:
        return "unknown (no general.file_type)"
    if not isinstance(file_type, int) or isinstance(file_type, bool):
        return f"unknown ({file_type!r})"
    guessed = bool(file_type & FILE_TYPE_GUESSED) and file_type != FILE_TYPE_GUESSED
    value = file_type & ~FILE_TYPE_GUESSED if guessed else file_type
    try:
        name = gguf.LlamaFileType(value).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"unknown ({file_type})"
    return f"{name} (guessed)" if guessed else name


def _count(meta: dict[str, Any], key: str) -> int | None:
    value = meta.get(key)
    # Some architectures store per-layer arrays (e.g. head counts); the largest bounds the memory use.
    if isinstance(value, list):
        value = max((item for item in value if isinstance(item, int)), default=None)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _read_header(path: Path) -> _Header:
    _check_preamble(path)
    failure = ""
    try:
        return _copy_header(path)
    except _CORRUPT_HEADER_ERRORS as error:
        failure = f"truncated or corrupt GGUF: {error} (the file is {_size(path):,} bytes)"
    except OSError as error:
        failure = f"cannot read: {error.strerror or error}"
    # Raised outside the except block so the error does not chain a traceback that pins the memory map.
    raise GgufError(failure)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _check_preamble(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            preamble = handle.read(8)
    except OSError as error:
        raise GgufError(f"cannot read: {error.strerror or error}") from None
    if not preamble:
        raise GgufError("not a GGUF file (empty file)")
    if preamble[:4] != GGUF_MAGIC:
        raise GgufError("not a GGUF file (bad magic)")
    if len(preamble) < 8:
        raise GgufError("truncated or corrupt GGUF: the file ends inside the version field")
    # A file written on a big-endian machine has its version byte-swapped; the reader handles both.
    little, big = (int.from_bytes(preamble[4:], order) for order in ("little", "big"))
    if little not in gguf.READER_SUPPORTED_VERSIONS and big not in gguf.READER_SUPPORTED_VERSIONS:
        raise GgufError(f"unsupported GGUF version {little}")


def _copy_header(path: Path) -> _Header:
    reader = gguf.GGUFReader(path, mode="r")
    try:
        arch_field = reader.get_field("general.architecture")
        arch = arch_field.contents() if arch_field is not None else None
        metadata: dict[str, Any] = {}
        for key, field in reader.fields.items():
            is_array = bool(field.types) and field.types[0] == gguf.GGUFValueType.ARRAY
            # Arrays are copied only for the architecture's own keys; vocabularies can hold 100k+ strings.
            if not is_array or (isinstance(arch, str) and key.startswith(f"{arch}.")):
                metadata[key] = field.contents()
        return _Header(
            metadata=metadata,
            tensor_count=len(reader.tensors),
            parameter_count=sum(int(tensor.n_elements) for tensor in reader.tensors),
        )
    finally:
        _release(reader)


def _release(reader: gguf.GGUFReader) -> None:
    """Unmap the file now rather than whenever the garbage collector gets to the reader."""
    mapping = getattr(reader.data, "_mmap", None)
    reader.fields.clear()
    reader.tensors = []
    del reader.data
    if mapping is not None:
        # BufferError: a view is still alive somewhere; the mapping is then unmapped along with it.
        with contextlib.suppress(BufferError):
            mapping.close()
