"""The console's own settings (theme, key remaps) in $XDG_CONFIG_HOME/corral/console.json, written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .theme_files import user_themes_dir


def settings_path(env: Mapping[str, str] | None = None) -> Path:
    return user_themes_dir(env).parent / "console.json"


@dataclass
class ConsoleSettings:
    theme: str = "corral-dark"
    # Binding id -> keys, e.g. {"app.chat": "ctrl+o"}; applied with App.set_keymap.
    keymap: dict[str, str] = field(default_factory=dict)
    # Named corral-cores to reach (console/contexts.py gives them meaning): name -> {"socket": ...} or {"ssh": ...}.
    contexts: dict[str, dict[str, object]] = field(default_factory=dict)
    context: str | None = None  # the current context's name; None: the default socket
    read_only: bool = False  # offer no key or command that changes anything (`corral --read-only`: one run)
    problems: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, path: Path | None = None) -> ConsoleSettings:
        path = path or settings_path()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            return cls(problems=[f"{path} is unreadable ({error}); using defaults"])
        if not isinstance(data, dict):
            return cls(problems=[f"{path} is not a JSON object; using defaults"])
        theme, keymap = data.get("theme"), data.get("keymap")
        return cls(
            theme=theme if isinstance(theme, str) else cls.theme,
            keymap={str(k): str(v) for k, v in keymap.items()} if isinstance(keymap, dict) else {},
            contexts=_contexts(data.get("contexts")),
            context=data["context"] if isinstance(data.get("context"), str) else None,
            read_only=data.get("read_only") is True,
        )

    def save(self, path: Path | None = None) -> None:
        path = path or settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "problems"}
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temporary, path)


def _contexts(raw: object) -> dict[str, dict[str, object]]:
    """Each context's fields as JSON gave them; an entry that is not an object is left out (contexts.py checks the
    rest, so one bad context does not cost the others)."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): {str(k): v for k, v in fields.items()} for name, fields in raw.items() if isinstance(fields, dict)
    }
