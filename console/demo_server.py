"""`python -m console.demo_server --model GGUF --port N --alias NAME --tied-to PID`: the demo's llama.cpp server.

It serves with xllamacpp, which ships a prebuilt CPU build of llama.cpp's HTTP server, so a newcomer gets a
real OpenAI-compatible llama-server in seconds instead of a five-minute compile; with `--binary PATH` it runs
that llama-server as its child instead. Either way it lives only as long as the corral-core it was started
for (`--tied-to`, that daemon's pid): `corral daemon stop`, or any end of the daemon, ends the demo too, so a
first run leaves nothing behind once its daemon is gone.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

CHILD_STOP_GRACE_S = 5.0
POLL_S = 1.0  # only where pidfd_open is missing (not Linux)


def _watch_exit(pid: int, stop: threading.Event) -> None:
    """Set `stop` when process `pid` ends. A pidfd names that very process, so a reused pid cannot fool it."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        stop.set()
        return
    except (AttributeError, OSError):
        while not stop.wait(POLL_S):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop.set()
        return
    try:
        select.select([pidfd], [], [])  # readable once the process has exited
    finally:
        os.close(pidfd)
    stop.set()


def _serve_in_process(args: argparse.Namespace) -> object:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.port = args.port
    params.n_parallel = args.parallel
    # One context all slots share: a slot may use all of it, and the box holds one KV cache, not one per slot.
    params.n_ctx = args.ctx_size
    params.kv_unified = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    # For clients that set no sampling of their own (a curl from the README).
    params.sampling.temp = args.temperature
    params.sampling.top_p = args.top_p
    if args.chat_template_file:
        params.chat_template = Path(args.chat_template_file).read_text()
    return xllamacpp.Server(params)  # serves from its own threads until the process ends


def _binary_command(args: argparse.Namespace) -> list[str]:
    return [
        args.binary,
        *("--model", args.model, "--port", str(args.port), "--host", "127.0.0.1", "--alias", args.alias),
        *("--parallel", str(args.parallel), "--threads", str(args.threads)),
        *("--ctx-size", str(args.ctx_size), "--kv-unified"),
        *("--temp", str(args.temperature), "--top-p", str(args.top_p)),
        *(("--jinja", "--chat-template-file", args.chat_template_file) if args.chat_template_file else ()),
    ]


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=CHILD_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m console.demo_server", description=__doc__)
    parser.add_argument("--model", required=True, help="the GGUF to serve")
    parser.add_argument("--port", type=int, required=True, help="the port on 127.0.0.1")
    parser.add_argument("--alias", required=True, help="the model name it answers to")
    parser.add_argument("--tied-to", type=int, required=True, metavar="PID", help="exit when this process ends")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-size", type=int, default=8192, help="tokens of context, shared by the slots")
    # SmolLM2's own recommendation; a request's own sampling wins (the chat sends its temperature, 0.7).
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--chat-template-file", help="a Jinja chat template to use instead of the GGUF's own")
    parser.add_argument("--binary", help="run this llama-server binary as a child instead of xllamacpp")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=_watch_exit, args=(args.tied_to, stop), name="tied-to", daemon=True).start()
    if args.binary:
        child = subprocess.Popen(_binary_command(args), stdin=subprocess.DEVNULL)
        threading.Thread(target=_watch_exit, args=(child.pid, stop), name="child", daemon=True).start()
        stop.wait()
        _stop_child(child)
        return child.returncode if child.returncode and child.returncode > 0 else 0
    server = _serve_in_process(args)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
