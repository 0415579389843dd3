"""config.json is private, written atomically, versioned, and refuses a schema it does not know."""

from __future__ import annotations

import json
import os
import stat

import pytest

from gateway_core.store.config_store import SCHEMA_VERSION, ConfigStore, ConfigStoreError


def test_a_new_store_is_private_and_carries_the_schema_version(tmp_path):
    store = ConfigStore(tmp_path / "config.json")
    store.put("providers", "name", {"name": "a", "type": "llama-server"})
    store.close()

    path = tmp_path / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["meta"]["1"] == {"schema_version": SCHEMA_VERSION}


def test_records_survive_reopening_and_put_replaces_by_key(tmp_path):
    store = ConfigStore(tmp_path / "config.json")
    store.put("providers", "name", {"name": "a", "weight": 1})
    store.put("providers", "name", {"name": "a", "weight": 3})
    store.put("providers", "name", {"name": "b", "weight": 1})
    store.close()

    reopened = ConfigStore(tmp_path / "config.json")
    assert sorted((r["name"], r["weight"]) for r in reopened.all("providers")) == [("a", 3), ("b", 1)]
    assert reopened.remove("providers", "name", "a") is True
    assert reopened.remove("providers", "name", "a") is False
    reopened.close()


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    store = ConfigStore(tmp_path / "config.json")
    store.put("settings", "name", {"name": "kept", "value": 1})
    before = (tmp_path / "config.json").read_bytes()

    with pytest.raises(TypeError):
        store.put("settings", "name", {"name": "broken", "value": object()})  # not serialisable

    assert (tmp_path / "config.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"], "no temporary file may be left behind"
    store.close()


def test_a_config_from_a_newer_corral_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"meta": {"1": {"schema_version": SCHEMA_VERSION + 1}}}))

    with pytest.raises(ConfigStoreError, match="upgrade Corral"):
        ConfigStore(path)


def test_a_corrupt_config_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"providers": {"1": ')

    with pytest.raises(ValueError, match="not valid JSON"):
        ConfigStore(path)
    assert path.read_text() == '{"providers": {"1": '


def test_the_store_never_widens_permissions_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        store = ConfigStore(tmp_path / "config.json")
        store.set_setting("theme", "dark")
        store.close()
    finally:
        os.umask(old)

    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o600
