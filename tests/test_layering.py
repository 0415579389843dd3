"""The layering contract in pyproject.toml ([tool.importlinter]) holds, and it bites when broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The tree's own copy of the packages comes first on the path, so grimp analyses that copy.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_layering_contract_is_kept():
    result = _lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout, result.stdout


def test_a_provider_importing_the_pipeline_breaks_the_contract(tmp_path: Path):
    for package in ("gateway_core", "console"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "gateway_core" / "providers" / "health.py").open("a") as module:
        module.write("\nimport gateway_core.gateway.pipeline  # deliberately against the layering\n")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    assert "providers never import the request pipeline" in result.stdout
    assert "gateway_core.providers.health -> gateway_core.gateway.pipeline" in result.stdout
