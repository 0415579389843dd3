"""gateway_core is headless: importing any of it must never import textual."""

from __future__ import annotations

import subprocess
import sys

WALK_AND_CHECK = """
import importlib, pkgutil, sys
import gateway_core
for module in pkgutil.walk_packages(gateway_core.__path__, "gateway_core."):
    importlib.import_module(module.name)
leaked = sorted(name for name in sys.modules if name == "textual" or name.startswith("textual."))
print(len(leaked), leaked[:5])
"""


def test_importing_every_gateway_core_module_never_imports_textual():
    result = subprocess.run([sys.executable, "-c", WALK_AND_CHECK], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 "), f"gateway_core pulled in textual: {result.stdout}"
