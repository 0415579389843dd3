"""CorralClient against a real corral-core: every admin route, its errors, the event stream and chat."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import types
import typing
from typing import Any

import pytest

from gateway_core.client import CorralClient, CorralError, DaemonNotRunning
from gateway_core.contracts import fleet_views, views

UNREACHABLE_URL = "http://127.0.0.1:1"  # nothing listens on port 1, so the probe fails fast


@pytest.mark.asyncio
async def test_status_describes_an_empty_gateway(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        status = await client.status()
        health = await client.health()

    assert status["providers"] == []
    assert status["keys"] == 0
    assert status["models"] == {}
    assert status["requests_in_flight"] == 0
    assert status["uptime_s"] >= 0
    assert health["status"] == "ok"
    assert health["version"] == status["version"]


@pytest.mark.asyncio
async def test_a_key_is_shown_once_then_listed_updated_revoked_and_removed(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        created = await client.create_key("ci", models=["tiny"], rpm=60, expires_in_days=7)
        listed = await client.keys()
        updated = await client.update_key("ci", rpm=120, models=None)
        revoked = await client.revoke_key(created["id"])
        removed = await client.remove_key("ci")
        remaining = await client.keys()

    assert created["key"].startswith(f"sk-corral-{created['id']}-")
    assert created["models"] == ["tiny"]
    assert created["expires_at"] is not None
    assert [key["name"] for key in listed] == ["ci"]
    assert all("key" not in key and "secret_sha256" not in key for key in listed)
    assert (updated["rpm"], updated["models"]) == (120, None)
    assert revoked["revoked"] is True
    assert removed == {"removed": created["id"]}
    assert remaining == []


@pytest.mark.asyncio
async def test_a_bad_field_raises_corral_error_with_the_status_and_the_field(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        with pytest.raises(CorralError) as bad_url:
            await client.add_provider(name="p", type="openai", base_url="ftp://example.com")
        with pytest.raises(CorralError) as bad_rpm:
            await client.create_key("k", rpm=0)

    assert (bad_url.value.status, bad_url.value.param, bad_url.value.code) == (400, "base_url", "invalid_field")
    assert "base_url" in bad_url.value.message
    assert (bad_rpm.value.status, bad_rpm.value.param) == (400, "rpm")
    assert not isinstance(bad_url.value, DaemonNotRunning)


@pytest.mark.asyncio
async def test_a_provider_is_added_updated_refused_twice_and_removed(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        added = await client.add_provider(
            name="remote",
            type="openai",
            base_url=UNREACHABLE_URL,
            api_key_env="REMOTE_KEY",
            models={"big": "big-2025"},
            priority=5,
        )
        with pytest.raises(CorralError) as duplicate:
            await client.add_provider(name="remote", type="openai", base_url=UNREACHABLE_URL)
        disabled = await client.update_provider("remote", enabled=False)
        fetched = await client.provider("remote")
        listed = await client.providers()
        removed = await client.remove_provider("remote")
        with pytest.raises(CorralError) as missing:
            await client.test_provider("remote")

    assert added["name"] == "remote"
    assert added["state"] == "down"
    assert added["priority"] == 5
    assert added["api_key_env"] == "REMOTE_KEY"
    assert (duplicate.value.status, duplicate.value.param, duplicate.value.code) == (409, "name", "duplicate_name")
    assert disabled["enabled"] is False
    assert disabled["state"] == "disabled"
    assert fetched["state"] == "disabled"
    assert [p["name"] for p in listed] == ["remote"]
    assert removed == {"removed": "remote"}
    assert (missing.value.status, missing.value.code) == (404, "provider_not_found")


@pytest.mark.asyncio
async def test_testing_an_unsaved_config_probes_it_without_saving_it(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        result = await client.test_provider_config(name="trial", type="llama-server", base_url=UNREACHABLE_URL)
        providers = await client.providers()

    assert result["name"] == "trial"
    assert result["health"] == "down"
    assert result["detail"]
    assert providers == []


@pytest.mark.asyncio
async def test_no_socket_raises_daemon_not_running_saying_how_to_start_one(tmp_path):
    missing = tmp_path / "corral.sock"

    async with CorralClient(missing) as client:
        with pytest.raises(DaemonNotRunning) as caught:
            await client.status()

    assert caught.value.status is None
    assert f"no socket at {missing}" in caught.value.message
    assert "Start it with `corral-core`" in caught.value.message


@pytest.mark.asyncio
async def test_a_socket_file_nobody_listens_on_raises_daemon_not_running(tmp_path):
    stale = tmp_path / "corral.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left_behind:
        left_behind.bind(str(stale))  # a daemon that died without removing its socket leaves exactly this

    async with CorralClient(stale) as client:
        with pytest.raises(DaemonNotRunning) as caught:
            await client.keys()

    assert "refuses connections" in caught.value.message
    assert "corral-core" in caught.value.message


@pytest.mark.asyncio
async def test_events_start_with_a_snapshot_then_report_admin_changes(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client, contextlib.aclosing(client.events()) as events:
        kind, snapshot = await anext(events)
        await client.create_key("watcher")
        await client.add_provider(name="remote", type="openai", base_url=UNREACHABLE_URL)
        seen: dict[str, dict] = {}
        async with asyncio.timeout(10):
            async for kind_, data in events:
                seen.setdefault(kind_, data)
                if {"key", "provider"} <= seen.keys():
                    break

    assert kind == "snapshot"
    assert snapshot["keys"] == []
    assert snapshot["providers"] == []
    assert snapshot["requests"] == []
    assert seen["key"]["name"] == "watcher"
    assert "key" not in seen["key"]
    assert seen["provider"]["name"] == "remote"


@pytest.mark.asyncio
async def test_cancelling_a_request_that_is_not_running_is_a_404(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        live = await client.requests()
        with pytest.raises(CorralError) as caught:
            await client.cancel_request("no-such-request")

    assert live == []
    assert (caught.value.status, caught.value.code) == (404, "request_not_found")


@pytest.mark.asyncio
async def test_chat_stream_for_a_model_nobody_serves_raises_naming_the_model(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        stream = client.chat_stream("ghost", [{"role": "user", "content": "hi"}])
        with pytest.raises(CorralError) as caught:
            await anext(stream)

    assert (caught.value.status, caught.value.param, caught.value.code) == (404, "model", "model_not_found")


@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_a_llama_server_provider_serves_its_model_through_the_admin_socket(corral_daemon, llama_servers):
    (server,) = llama_servers(1)
    messages = [{"role": "user", "content": "hello"}]

    async with CorralClient(corral_daemon.socket_path) as client:
        added = await client.add_provider(
            name="llama", type="llama-server", base_url=server.base_url, models={"tiny": "tiny"}
        )
        tested = await client.test_provider("llama")
        served = await client.models()
        chunks = []
        async with client.chat_stream("tiny", messages, max_tokens=8, stream_options={"include_usage": True}) as stream:
            async for chunk in stream:
                chunks.append(chunk)
        answer = await client.chat("tiny", messages, max_tokens=4)
        stats = await client.stats()

    text = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
    assert added["state"] == "ready"
    assert tested["health"] == "ready"
    assert tested["capacity"] >= 1
    assert served == {"tiny": ["llama"]}
    assert text
    assert stream.provider == "llama"
    assert stream.usage is not None
    assert stream.usage["completion_tokens"] > 0
    assert answer["choices"][0]["message"]["content"] is not None
    assert stats["provider"]["llama"]["requests"] == 2


@pytest.mark.asyncio
async def test_every_answer_and_the_snapshot_have_exactly_their_contracts_fields_and_types(corral_daemon):
    async with CorralClient(corral_daemon.socket_path) as client:
        added = await client.add_provider(name="remote", type="openai", base_url=UNREACHABLE_URL, models={"a": "b"})
        created = await client.create_key("ci", models=["a"], expires_in_days=1)
        answers: list[tuple[Any, Any]] = [
            (await client.health(), views.HealthAnswer),
            (await client.status(), views.StatusView),
            (added, views.ProviderView),
            (await client.providers(), list[views.ProviderView]),
            (await client.test_provider("remote"), views.ProbeAnswer),
            (created, views.CreatedKey),
            (await client.keys(), list[views.KeyView]),
            (await client.revoke_key("ci"), views.KeyView),
            (await client.requests(), list[views.LiveRequestView]),
            (await client.stats(), views.StatsView),
            (await client.gpus(), fleet_views.GpuSnapshotView),
            (await client.fleet(), fleet_views.FleetView),
            (await client.catalog(), fleet_views.CatalogAnswer),
        ]
        async with contextlib.aclosing(client.events()) as events:
            kind, snapshot = await anext(events)
        answers.append((snapshot, views.Snapshot))
        answers.append((await client.remove_key("ci"), views.Removed))
        answers.append((await client.remove_provider("remote"), views.Removed))

    assert kind == "snapshot"
    for answer, contract in answers:
        assert mismatches(answer, contract) == [], contract


def mismatches(value: Any, hint: Any, where: str = "answer") -> list[str]:
    """Where `value` (decoded JSON) differs from the type `hint`: missing or unknown fields, wrong types."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return []
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where} is {value!r}, not an object"]
        fields = typing.get_type_hints(hint)
        problems = [f"{where}.{name} is missing" for name in hint.__required_keys__ - value.keys()]
        problems += [f"{where}.{name} is not in the contract" for name in value.keys() - fields.keys()]
        for name in value.keys() & fields.keys():
            problems += mismatches(value[name], fields[name], f"{where}.{name}")
        return problems
    if origin in (typing.Union, types.UnionType):
        found = [mismatches(value, member, where) for member in args]
        return [] if [] in found else found[0]
    if origin is typing.Literal:
        return [] if value in args else [f"{where} is {value!r}, not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where} is {value!r}, not a list"]
        return [
            problem for index, item in enumerate(value) for problem in mismatches(item, args[0], f"{where}[{index}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where} is {value!r}, not an object"]
        return [problem for key, item in value.items() for problem in mismatches(item, args[1], f"{where}[{key!r}]")]
    expected = (int, float) if hint is float else hint
    if not isinstance(value, expected) or (isinstance(value, bool) and hint is not bool):
        return [f"{where} is {value!r}, not {hint.__name__}"]
    return []
