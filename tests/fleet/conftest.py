"""Fixtures the fleet's tests share."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest


@pytest.fixture
def names(docker_client: docker.DockerClient) -> Iterator[Callable[[], str]]:
    """Unique deployment names (other sessions' deployments may share the engine, and the NVML stub matches
    processes by name); their containers are removed at teardown whatever happened."""
    made: list[str] = []

    def name() -> str:
        made.append(f"t{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    for made_name in made:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(f"corral-{made_name}").remove(force=True)
