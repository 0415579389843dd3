"""Over HTTPS the delivery connects to the address the guard checked, yet TLS is the URL's name's: the SNI sent,
and the certificate verified, are those of the reply_to's host, not of the address."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway_core.callbacks.delivery import Sender
from gateway_core.callbacks.destination import AddressPolicy
from gateway_core.callbacks.settings import networks
from tests.testbed.requirement import component_unavailable

NAME = "receiver.test"


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for NAME (openssl, at test time: no key material in git)."""
    if shutil.which("openssl") is None:
        component_unavailable("openssl", "no openssl binary on PATH to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={NAME}"]
    names = ["-addext", f"subjectAltName=DNS:{NAME}"]
    subprocess.run([*request, *names, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextlib.asynccontextmanager
async def tls_receiver(cert: Path, key: Path, seen: list[Any]) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen.append(("sni", name))

    async def handle(request: web.Request) -> web.Response:
        seen.append(("host", request.host))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def to_loopback(host: str, port: int, *, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
    if host != NAME:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


@pytest.mark.asyncio
async def test_https_sends_the_urls_name_as_sni_and_verifies_the_certificate_against_it(tmp_path):
    cert, key = certificate(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    sender = Sender(
        AddressPolicy(networks("127.0.0.1/32")), timeout_s=5, concurrency=2, getaddrinfo=to_loopback, tls=trust
    )
    seen: list[Any] = []
    async with tls_receiver(cert, key, seen) as port:
        sender.start()
        try:
            by_name = await sender.send(f"https://{NAME}:{port}/hook", b"{}", {}, 0.0)
            by_address = await sender.send(f"https://127.0.0.1:{port}/hook", b"{}", {}, 0.0)
        finally:
            await sender.close()

    assert by_name.kind == "delivered"
    assert ("sni", NAME) in seen
    assert ("host", f"{NAME}:{port}") in seen
    assert by_address.kind == "failed"  # the certificate names receiver.test, not the address
    assert by_address.status is None
