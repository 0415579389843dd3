"""Corral's gateway daemon: the headless core that owns all state."""

__version__ = "0.1.0"
