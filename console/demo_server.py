"""`python -m console.demo_server MODEL PORT`: llama.cpp's own server, in-process via xllamacpp, for the demo.

xllamacpp ships a prebuilt CPU build of llama.cpp's HTTP server, so a newcomer gets a real
OpenAI-compatible llama-server in seconds instead of a five-minute compile.
"""

from __future__ import annotations

import signal
import sys
import threading


def main(argv: list[str]) -> int:
    import xllamacpp

    model, port = argv[0], int(argv[1])
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {"tiny"}
    params.port = port
    params.n_parallel = 4
    params.cpuparams.n_threads = 1
    server = xllamacpp.Server(params)  # serves from its own threads until the process ends
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
