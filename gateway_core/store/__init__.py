"""Persistent state: the config store and the monthly archives."""
