"""Byte units, kept apart from vram.py so light importers (the console's forms) don't load gguf and numpy."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def format_bytes(size: int) -> str:
    """Binary units with two decimals: "4.37 GiB", "512.00 MiB"."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(size) >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"
