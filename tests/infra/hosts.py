"""Point public registry host names at local servers, for the sources' HTTP clients only.

Docker Hub's API host (`registry-1.docker.io`) cannot be reached here, and the behaviour under test
(its images are named `docker.io/...`) depends on that very host name. The discovery HTTP client
has one seam for this, `HttpClient.resolver_factory`; `map_hosts` sets it to a resolver that sends
the given `host` (on any port) to a local `(ip, port)` and resolves every other name as usual. TLS
still checks the certificate against the public name, so the local server needs one for it
(`registry_server(tls=True, tls_names=[...])`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from drop_operator.discovery.http import HttpClient

__all__ = ["MapHosts", "MappedResolver", "map_hosts"]


class MappedResolver(AbstractResolver):
    """`mapping[host] = (ip, port)`; other names go to aiohttp's default threaded resolver."""

    def __init__(self, mapping: Mapping[str, tuple[str, int]]) -> None:
        self._mapping = dict(mapping)
        self._default = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host in self._mapping:
            ip, local_port = self._mapping[host]
            return [
                ResolveResult(
                    hostname=host,
                    host=ip,
                    port=local_port,
                    family=socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        return await self._default.resolve(host, port, family)

    async def close(self) -> None:
        await self._default.close()


MapHosts = Callable[[Mapping[str, tuple[str, int]]], None]


@pytest.fixture
def map_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[MapHosts]:
    """`map_hosts({"registry-1.docker.io": ("127.0.0.1", port)})` for the rest of the test."""

    def install(mapping: Mapping[str, tuple[str, int]]) -> None:
        frozen = dict(mapping)
        monkeypatch.setattr(HttpClient, "resolver_factory", lambda: MappedResolver(frozen))

    yield install
