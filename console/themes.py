"""Turn theme files into Textual themes; a broken file is reported, never fatal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from textual.theme import Theme

from .theme_files import theme_files

THEME_FIELDS = {
    "name",
    "dark",
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "success",
    "warning",
    "error",
}


@dataclass
class LoadedThemes:
    themes: list[Theme] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_theme(path: Path) -> Theme:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "name" not in data or "primary" not in data:
        raise ValueError("a theme needs at least 'name' and 'primary'")
    unknown = set(data) - THEME_FIELDS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; allowed: {sorted(THEME_FIELDS)}")
    return Theme(**data)


def load_themes() -> LoadedThemes:
    loaded = LoadedThemes()
    for path in theme_files():
        try:
            loaded.themes.append(load_theme(path))
        except (OSError, ValueError, TypeError, yaml.YAMLError) as error:
            loaded.problems.append(f"theme {path} skipped: {error}")
    return loaded
