"""The offline-built image `corral-testbed/llama-server:cpu`.

No registry is reachable, so the image is a `docker import` of a rootfs holding the cached
llama-server build, the shared libraries `ldd` lists for it and for the backends it loads at run
time (libggml-cpu*.so), and curl for container healthchecks, as the upstream image has.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors

from .cache import build_lock

REPOSITORY = "corral-testbed/llama-server"
TAG = "cpu"
IMAGE = f"{REPOSITORY}:{TAG}"
FINGERPRINT_LABEL = "corral.testbed.fingerprint"
# Libraries keep their host paths in the rootfs; the loader in a bare rootfs has no ld.so.cache.
LIBRARY_PATH = "/app:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/lib:/usr/lib"
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


class ImageUnavailable(RuntimeError):
    pass


def ensure_llama_image(client: docker.DockerClient, binary: Path) -> str:
    """Return the image name, importing it again if the llama-server build changed."""
    bin_dir = binary.resolve().parent
    fingerprint = _fingerprint(bin_dir)
    if _current_fingerprint(client) == fingerprint:
        return IMAGE
    with build_lock("llama-image"):
        if _current_fingerprint(client) == fingerprint:
            return IMAGE
        with tempfile.TemporaryDirectory(prefix="corral-rootfs-") as scratch:
            rootfs = Path(scratch) / "rootfs.tar"
            _write_rootfs(rootfs, bin_dir)
            changes = [
                'ENTRYPOINT ["/app/llama-server"]',
                f"ENV LD_LIBRARY_PATH={LIBRARY_PATH}",
                "ENV PATH=/app:/usr/bin:/bin",
                f"LABEL {FINGERPRINT_LABEL}={fingerprint}",
            ]
            try:
                client.api.import_image_from_file(str(rootfs), repository=REPOSITORY, tag=TAG, changes=changes)
            except docker.errors.APIError as error:
                raise ImageUnavailable(f"docker import of {IMAGE} failed: {error}") from error
    if _current_fingerprint(client) != fingerprint:
        raise ImageUnavailable(f"{IMAGE} was imported but does not carry the expected {FINGERPRINT_LABEL}")
    return IMAGE


def _current_fingerprint(client: docker.DockerClient) -> str | None:
    try:
        return (client.images.get(IMAGE).labels or {}).get(FINGERPRINT_LABEL)
    except docker.errors.ImageNotFound:
        return None


def _fingerprint(bin_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(bin_dir.iterdir()):
        digest.update(path.name.encode())
        if path.is_file() and not path.is_symlink():
            digest.update(str(path.stat().st_size).encode() + str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def _shared_libraries(executable: Path) -> set[str]:
    result = subprocess.run(["ldd", str(executable)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise ImageUnavailable(f"ldd {executable} failed: {result.stderr.strip() or result.stdout.strip()}")
    missing = [line.strip() for line in result.stdout.splitlines() if "not found" in line]
    if missing:
        raise ImageUnavailable(f"{executable.name} has unresolved libraries: {'; '.join(missing)}")
    return {match.group(1) for match in map(_LDD_LINE.search, result.stdout.splitlines()) if match}


def _write_rootfs(tar_path: Path, bin_dir: Path) -> None:
    entry_points = [bin_dir / "llama-server", *sorted(bin_dir.glob("lib*.so*"))]
    curl = shutil.which("curl")
    if curl:
        entry_points.append(Path(curl))
    libraries: set[str] = set()
    for executable in entry_points:
        if executable.is_file() and not executable.is_symlink():
            libraries |= _shared_libraries(executable)
    with tarfile.open(tar_path, "w") as tar:
        for directory in ("app", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path in sorted(bin_dir.iterdir()):
            if path.name.startswith("_"):
                continue  # wheel metadata such as _symlinks.json
            tar.add(str(path), arcname=f"app/{path.name}", recursive=False)
        for library in sorted(libraries):
            if Path(library).resolve().parent == bin_dir:
                continue
            tar.add(os.path.realpath(library), arcname=library.lstrip("/"))
        if curl:
            tar.add(os.path.realpath(curl), arcname="usr/bin/curl")
