"""What users install is the wheel: it must carry the themes and both commands, not just the source tree."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THEMES = sorted(p.name for p in (ROOT / "themes").glob("*.yaml"))

READ_THEMES = """
import json
from console.theme_files import builtin_themes_dir, theme_files
print(json.dumps({"dir": str(builtin_themes_dir()), "files": [p.name for p in theme_files({})]}))
"""


def test_installed_wheel_ships_themes_as_data_and_both_console_scripts(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("corral-*.whl")
    assert {f"console/themes/{name}" for name in THEMES} <= set(zipfile.ZipFile(wheel).namelist())

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Run from an empty directory so the checkout cannot shadow the installed package.
    result = subprocess.run(
        [str(python), "-c", READ_THEMES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    found = json.loads(result.stdout)

    assert found["dir"].startswith(str(venv)), "themes were read from the source tree, not the installed wheel"
    assert found["files"] == THEMES
    assert len(THEMES) >= 4
    assert (venv / "bin" / "corral").exists()
    assert (venv / "bin" / "corral-core").exists()
