"""Where colour themes live: the built-in ones shipped with Corral, then the user's own.

Pure file lookups, no Textual import, so packaging tests can run it from a bare install.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

THEME_SUFFIXES = (".yaml", ".yml")


def builtin_themes_dir() -> Path:
    """In a wheel, themes/ is shipped inside this package; in a source checkout it sits beside it."""
    installed = Path(__file__).with_name("themes")
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "themes"


def user_themes_dir(env: Mapping[str, str] | None = None) -> Path:
    config_home = (os.environ if env is None else env).get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "corral" / "themes"


def theme_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """Built-in theme files first, then the user's, each directory sorted by name."""
    found: list[Path] = []
    for directory in (builtin_themes_dir(), user_themes_dir(env)):
        if directory.is_dir():
            found.extend(sorted(p for p in directory.iterdir() if p.suffix in THEME_SUFFIXES))
    return found
