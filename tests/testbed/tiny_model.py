"""The tiny GGUF model (console/demo_model.py generates it), cached for the tests."""

from __future__ import annotations

import os
from pathlib import Path

from console.demo_model import TINY_MODEL_REVISION, write_tiny_model

from .cache import build_lock, cache_root


def tiny_model_path() -> Path:
    return cache_root() / f"tiny-llama-r{TINY_MODEL_REVISION}.gguf"


def ensure_tiny_model() -> Path:
    path = tiny_model_path()
    if path.exists():
        return path
    with build_lock("tiny-model"):
        if not path.exists():
            partial = path.with_suffix(".partial")
            write_tiny_model(partial)
            os.replace(partial, path)
    return path
