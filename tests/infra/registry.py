"""pytest plugin: real OCI registries (distribution 2.8 from Debian, distribution v3 from `task tools`).

The server code lives in :mod:`devtools.registry` (the e2e suite and the demo start the same
servers); this plugin adds the fixture, which stops everything it started by PID, and turns a
missing registry binary into a test failure that says how to get it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.registry import RegistryServer, TokenServer, start_registry
from tests.infra.process import fail_if_missing

__all__ = [
    "RegistryFactory",
    "RegistryServer",
    "TokenServer",
    "registry_server",
    "start_registry",
]

RegistryFactory = Callable[..., RegistryServer]


@pytest.fixture
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Factory: `registry_server(auth="none"|"basic"|"token", version=2|3, users=..., tls=...)`.

    `version=3` runs distribution v3 (real `Link` pagination of tag lists); it fails, never
    skips, when `task tools` has not built it. Everything started is stopped by PID at teardown.
    """
    started: list[RegistryServer] = []

    def factory(**kwargs: Any) -> RegistryServer:
        server = fail_if_missing(start_registry, tmp_path_factory.mktemp("registry"), **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
