"""Ports for many servers at once: the benchmark deploys 32 llama-servers side by side, and test workers
running in parallel can pick the same free port."""

from __future__ import annotations

import socket

from tests.testbed import CorralDaemon, free_port, free_ports
from tests.testbed import daemon as daemon_module


def test_free_ports_are_all_different_and_each_can_be_bound():
    ports = free_ports(64)

    assert len(set(ports)) == 64
    for port in ports[:8]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", port))


def test_a_daemon_whose_port_is_taken_before_it_binds_starts_on_another(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], free_port()])
    monkeypatch.setattr(daemon_module, "free_port", lambda: next(ports))

    daemon = CorralDaemon(tmp_path / "corral").start()
    try:
        assert daemon.port != taken.getsockname()[1]
        assert daemon.admin_call("GET", "/health").status_code == 200
    finally:
        daemon.stop()
        taken.close()
