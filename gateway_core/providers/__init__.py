"""Upstream providers: their configuration, runtime state, health and wire adapters."""
