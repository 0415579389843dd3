"""What each `corral` subcommand does. Everything goes through CorralClient; the daemon owns the logic."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway_core.client import CorralClient, CorralError
from gateway_core.contracts.chat import CompletionUsage
from gateway_core.contracts.history_views import ArchiveStatusView
from gateway_core.contracts.views import KeyPublicView, ProviderView

from .cli_format import print_json, table
from .format import ago, dash, duration, key_state, latency, percent, plural, until

Handler = Callable[[CorralClient, argparse.Namespace], Awaitable[int]]


def run(handler: Handler, args: argparse.Namespace, socket_path: Path) -> int:
    """Run one command on a fresh event loop; a daemon error is printed to stderr and exits 1."""

    async def main() -> int:
        async with CorralClient(socket_path) as client:
            return await handler(client, args)

    try:
        return asyncio.run(main())
    except CorralError as error:
        print(f"corral: {describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `corral history | head`: the reader has what it wanted
        # Point stdout at nothing, so the interpreter's own flush at exit does not complain a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def describe(error: CorralError) -> str:
    """The daemon's message, led by the field it blames when the message does not already name it."""
    if error.param and error.status in (400, 409, 422) and not error.message.startswith(f"{error.param}:"):
        return f"{error.param}: {error.message}"
    return error.message


def warn(message: str) -> None:
    print(f"corral: {message}", file=sys.stderr)


# -- status and models ----------------------------------------------------------------------------------


async def status(client: CorralClient, args: argparse.Namespace) -> int:
    data = await client.status()
    if args.json:
        print_json(data)
        return 0
    providers = data["providers"]
    ready = sum(1 for p in providers if p["state"] == "ready")
    print(f"corral-core {data['version']}, up {duration(data['uptime_s'])}, socket {client.socket_path}")
    print(
        f"{plural(len(providers), 'provider')} ({ready} ready), {plural(len(data['models']), 'model')}, "
        f"{plural(data['keys'], 'key')}, {plural(data['requests_in_flight'], 'request')} in flight"
    )
    print(_archive_line(data["archive"]))
    if providers:
        print()
        print(_providers_table(providers, wide=False))
    if data["models"]:
        print()
        print(_models_table(data["models"]))
    return 0


def _archive_line(archive: ArchiveStatusView) -> str:
    """The request archive in one line: where, what it keeps, and anything lost."""
    if archive["state"] == "off":
        return f"archive: off (--capture off), {archive['directory']}"
    line = f"archive: {archive['capture']} capture, {archive['written']:,} rows written, {archive['directory']}"
    if archive["dropped"]:
        line += f"; {archive['dropped']:,} rows DROPPED (the writer fell behind)"
    if archive["state"] == "failing":
        line += f"; FAILING: {archive['last_error']}"
    return line


async def models(client: CorralClient, args: argparse.Namespace) -> int:
    data = await client.models()
    if args.json:
        print_json(data)
    elif not data:
        print("no models: add a provider with `corral providers add`")
    else:
        print(_models_table(data))
    return 0


def _models_table(served: dict[str, list[str]]) -> str:
    return table(["MODEL", "PROVIDERS"], [[model, ", ".join(names)] for model, names in sorted(served.items())])


# -- providers ------------------------------------------------------------------------------------------


def _capacity(provider: ProviderView) -> str:
    limit = provider["max_concurrency"] or provider["capacity"]
    return f"{provider['in_flight']}/{limit}" if limit else str(provider["in_flight"])


def _providers_table(providers: list[ProviderView], *, wide: bool) -> str:
    headers = ["NAME", "TYPE", "STATE", "BUSY", "MODELS"]
    if wide:
        headers += ["PRIO", "WEIGHT", "REQS", "ERRORS", "P50", "URL"]
    rows: list[list[object]] = []
    for p in providers:
        row: list[object] = [p["name"], p["type"], p["state"], _capacity(p), ", ".join(sorted(p["models"])) or "-"]
        if wide:
            row += [
                p["priority"],
                p["weight"],
                p["requests"],
                percent(p["error_rate"]) if p["requests"] else "-",
                latency(p["latency_p50_s"]),
                p["base_url"],
            ]
        rows.append(row)
    return table(headers, rows)


async def providers_list(client: CorralClient, args: argparse.Namespace) -> int:
    data = await client.providers()
    if args.json:
        print_json(data)
    elif not data:
        print("no providers: add one with `corral providers add NAME --type TYPE --url URL`")
    else:
        print(_providers_table(data, wide=True))
    return 0


def parse_model_mapping(specs: list[str]) -> dict[str, str]:
    """`PUBLIC=UPSTREAM`, or `PUBLIC` alone when the upstream uses the same name."""
    mapping: dict[str, str] = {}
    for spec in specs:
        public, _, upstream = spec.partition("=")
        mapping[public.strip()] = upstream.strip() or public.strip()
    return mapping


def _state_line(provider: ProviderView) -> str:
    detail = provider["health_detail"]
    return f"{provider['state']} ({detail})" if detail else provider["state"]


async def providers_add(client: CorralClient, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"name": args.name, "type": args.type, "base_url": args.url}
    optional = {
        "api_key_env": args.api_key_env,
        "priority": args.priority,
        "weight": args.weight,
        "max_concurrency": args.max_concurrency,
        "gpus": args.gpus,
    }
    fields.update({field: value for field, value in optional.items() if value is not None})
    if args.model:
        fields["models"] = parse_model_mapping(args.model)
    if args.disabled:
        fields["enabled"] = False
    added = await client.add_provider(**fields)
    if args.json:
        print_json(added)
        return 0
    print(f"added provider {added['name']}: {_state_line(added)}")
    print(f"models: {', '.join(sorted(added['models'])) or 'none yet'}")
    if added["state"] not in ("ready", "disabled"):
        warn(
            f"provider {added['name']} is saved but not ready yet; `corral providers test {added['name']}` "
            "probes it again"
        )
    return 0


async def providers_remove(client: CorralClient, args: argparse.Namespace) -> int:
    await client.remove_provider(args.name)
    print(f"removed provider {args.name}")
    return 0


async def providers_enable(client: CorralClient, args: argparse.Namespace) -> int:
    updated = await client.update_provider(args.name, enabled=True)
    print(f"enabled provider {updated['name']}: {_state_line(updated)}")
    return 0


async def providers_disable(client: CorralClient, args: argparse.Namespace) -> int:
    updated = await client.update_provider(args.name, enabled=False)
    print(
        f"disabled provider {updated['name']}: it gets no new requests until `corral providers enable "
        f"{updated['name']}`"
    )
    return 0


async def providers_test(client: CorralClient, args: argparse.Namespace) -> int:
    result = await client.test_provider(args.name)
    if args.json:
        print_json(result)
    else:
        print(f"{result['name']}: {result['health']}" + (f" ({result['detail']})" if result["detail"] else ""))
        print(f"models: {', '.join(result['models']) or 'none'}")
        print(f"capacity: {dash(result['capacity'])}")
    return 0 if result["health"] == "ready" else 1


def _router_models_table(provider: ProviderView) -> str:
    models = provider["router_models"] or []
    return table(["MODEL", "STATUS", "DETAIL"], [[m["id"], m["status"], m["detail"] or "-"] for m in models])


async def providers_models(client: CorralClient, args: argparse.Namespace) -> int:
    provider = await client.provider(args.name)
    if args.json:
        print_json(provider["router_models"] or [])
    elif provider["router_models"] is None:
        print(f"{provider['name']} is not a llama-server in router mode; it serves: {', '.join(provider['models'])}")
    else:
        print(_router_models_table(provider))
    return 0


async def providers_load_model(client: CorralClient, args: argparse.Namespace) -> int:
    provider = await client.load_provider_model(args.name, args.model)
    print(f"loaded {args.model} on {provider['name']}")
    print(_router_models_table(provider))
    return 0


async def providers_unload_model(client: CorralClient, args: argparse.Namespace) -> int:
    provider = await client.unload_provider_model(args.name, args.model)
    print(f"unloaded {args.model} from {provider['name']}")
    print(_router_models_table(provider))
    return 0


# -- keys -----------------------------------------------------------------------------------------------


def _limits(key: KeyPublicView) -> str:
    limits = (("rpm", key["rpm"]), ("tpm", key["tpm"]), ("conc", key["max_concurrency"]))
    return ", ".join(f"{label} {value}" for label, value in limits if value) or "none"


async def keys_list(client: CorralClient, args: argparse.Namespace) -> int:
    data = await client.keys()
    if args.json:
        print_json(data)
        return 0
    if not data:
        print("no keys: create one with `corral keys create NAME`")
        return 0
    now = time.time()
    rows = [
        [
            key["id"],
            key["name"],
            key_state(key, now),
            ", ".join(key["models"]) if key["models"] is not None else "all",
            _limits(key),
            until(key["expires_at"], now),
            ago(key["last_used_at"], now),
            key["usage"]["requests_last_minute"],
        ]
        for key in data
    ]
    print(table(["ID", "NAME", "STATE", "MODELS", "LIMITS", "EXPIRES", "LAST USED", "REQ/MIN"], rows))
    return 0


async def keys_create(client: CorralClient, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "rpm": args.rpm,
        "tpm": args.tpm,
        "max_concurrency": args.max_concurrency,
        "expires_in_days": args.expires_in,
        "capture": args.capture,
    }
    if args.models is not None:
        fields["models"] = [model.strip() for model in args.models.split(",") if model.strip()]
    created = await client.create_key(args.name, **{k: v for k, v in fields.items() if v is not None})
    if args.json:
        print_json(created)
        return 0
    models = ", ".join(created["models"]) if created["models"] is not None else "all"
    print(
        f"created key {created['name']} (id {created['id']}): models {models}; limits {_limits(created)}; "
        f"expires {until(created['expires_at'], time.time())}"
    )
    print(f"webhook secret (verifies its job callbacks; shown only once): {created['webhook_secret']}")
    print("This key is shown only once. Store it now:")
    print(created["key"])  # alone on the last line, so scripts can `| tail -n 1`
    return 0


async def keys_revoke(client: CorralClient, args: argparse.Namespace) -> int:
    revoked = await client.revoke_key(args.id_or_name)
    print(f"revoked key {revoked['name']} (id {revoked['id']}): it is refused from its next request")
    return 0


async def keys_remove(client: CorralClient, args: argparse.Namespace) -> int:
    removed = await client.remove_key(args.id_or_name)
    print(f"removed key {removed['removed']}")
    return 0


# -- chat -----------------------------------------------------------------------------------------------


async def chat(client: CorralClient, args: argparse.Namespace) -> int:
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.prompt})
    params: dict[str, Any] = {"stream_options": {"include_usage": True}}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    started = time.monotonic()
    wrote = False
    try:
        async with client.chat_stream(args.model, messages, **params) as stream:
            async for chunk in stream:
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        sys.stdout.write(text)
                        sys.stdout.flush()
                        wrote = True
    except BaseException:
        if wrote:  # end the partial answer's line before the error goes to stderr
            print(flush=True)
        raise
    print(flush=True)
    print(_chat_summary(stream.provider, stream.usage, time.monotonic() - started), file=sys.stderr)
    return 0


def _chat_summary(provider: str | None, usage: CompletionUsage | None, elapsed_s: float) -> str:
    parts = [f"provider {provider or 'unknown'}"]
    if usage:  # read with .get: a relayed upstream's usage may leave either count out
        parts.append(f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens")
    parts.append(latency(elapsed_s))
    return "[" + ", ".join(parts) + "]"
