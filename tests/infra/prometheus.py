"""pytest plugin: a real Prometheus serving data a test supplies.

The server code lives in :mod:`devtools.prometheus` (the e2e suite and the demo start the same
server); this plugin adds the fixture, which stops every server it started by PID, and turns a
missing `prometheus` package into a test failure naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest

from devtools.prometheus import PrometheusServer, Sample, openmetrics, series_ending_now, start_prometheus
from tests.infra.process import fail_if_missing

__all__ = [
    "PrometheusFactory",
    "PrometheusServer",
    "Sample",
    "openmetrics",
    "prometheus_server",
    "series_ending_now",
    "start_prometheus",
]

PrometheusFactory = Callable[..., PrometheusServer]


@pytest.fixture
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    """Factory: `prometheus_server(data, basic_auth=(u, p), tls=True, client_cert=True)`.

    Every server started through it is stopped (by PID) when the test ends.
    """
    started: list[PrometheusServer] = []

    def factory(
        data: str | Iterable[Sample] = "",
        *,
        basic_auth: tuple[str, str] | None = None,
        tls: bool = False,
        client_cert: bool = False,
        ready_timeout: float = 30.0,
    ) -> PrometheusServer:
        workdir = tmp_path_factory.mktemp("prometheus")
        server = fail_if_missing(
            start_prometheus,
            workdir,
            data,
            basic_auth=basic_auth,
            tls=tls,
            client_cert=client_cert,
            ready_timeout=ready_timeout,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.process.stop()
