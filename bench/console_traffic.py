"""Live requests for the console benchmark: N streaming chat requests held open through corral-core.

Each stream asks for a model that the null upstream drips (one chunk a second), reads the answer to its end and
starts again, so about N requests are always live and each one moves once a second. Answer lengths vary from half
to one and a half times `--max-tokens` (seeded), so requests end and start all the time rather than in waves.
Streams start spread over `--ramp-s`, so their updates are spread over the second too. Raw asyncio in a process of
its own, so it costs the box little. It stops at `--duration` or on SIGTERM, and prints one JSON line of counts.

    python -m bench.console_traffic --port P --keys-file F --streams 500 --model trickle --max-tokens 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
from collections import Counter
from pathlib import Path

import orjson
import uvloop

MAX_DURATION_S = 900.0
RETRY_S = 0.5


def request_bytes(host: str, port: int, key: str, model: str, max_tokens: int) -> bytes:
    body = orjson.dumps(
        {
            "model": model,
            "stream": True,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "keep me busy"}],
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def hold(host: str, port: int, request: bytes, delay_s: float, stop: asyncio.Event, counts: Counter[str]) -> None:
    """One stream slot: request, read to the end, repeat."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["connect_errors"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
            continue
        try:
            writer.write(request)
            status = await reader.readline()
            counts["started"] += 1
            tail = b""
            while chunk := await reader.read(65536):
                tail = (tail + chunk)[-64:]
            ok = b" 200 " in status and b"[DONE]" in tail
            counts["completed" if ok else "failed"] += 1
        except OSError:
            counts["failed"] += 1
        finally:
            writer.close()


async def run(args: argparse.Namespace, keys: list[str]) -> Counter[str]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(min(args.duration, MAX_DURATION_S), stop.set)
    counts: Counter[str] = Counter()
    lengths = random.Random(args.streams)
    tasks = [
        asyncio.create_task(
            hold(
                args.host,
                args.port,
                request_bytes(
                    args.host,
                    args.port,
                    keys[i % len(keys)],
                    args.model,
                    lengths.randint(args.max_tokens // 2, args.max_tokens * 3 // 2),
                ),
                args.ramp_s * i / args.streams,
                stop,
                counts,
            )
        )
        for i in range(args.streams)
    ]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.console_traffic", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys-file", required=True, help="a JSON list of API keys; streams take them in turn")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--model", default="trickle")
    parser.add_argument("--max-tokens", type=int, default=60, help="mean chunks per answer: its length in seconds")
    parser.add_argument("--ramp-s", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=300.0)
    args = parser.parse_args(argv)
    counts = uvloop.run(run(args, json.loads(Path(args.keys_file).read_text())))
    print(json.dumps(dict(counts)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
