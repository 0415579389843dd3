"""Ports for many servers at once: the benchmark deploys 32 llama-servers side by side."""

from __future__ import annotations

import socket

from tests.testbed import free_ports


def test_free_ports_are_all_different_and_each_can_be_bound():
    ports = free_ports(64)

    assert len(set(ports)) == 64
    for port in ports[:8]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", port))
