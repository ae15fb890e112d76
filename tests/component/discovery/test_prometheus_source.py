"""PrometheusSource against a real Prometheus (and proxies/fakes only where Prometheus cannot)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from devtools.process import free_port
from drop_operator.discovery import Credentials, PrometheusConfig, PrometheusSource, Reason, SourceError
from tests.component.discovery.conftest import ServeApp
from tests.infra.prometheus import PrometheusFactory, PrometheusServer, series_ending_now
from tests.infra.tls import CertAuthority

SEED_QUERY = """count(container_memory_working_set_bytes{
  container!="",
  container!="POD",
  namespace="build-stuff"
}) by (image)"""


def _pods() -> list[tuple[dict[str, str], float]]:
    """cAdvisor-like series: three gitlab-runner builds, two ECR images, pause containers, noise."""
    series: list[tuple[dict[str, str], float]] = []

    def pod(name: str, ns: str, image: str, container: str = "build") -> None:
        series.append(({"namespace": ns, "pod": name, "container": container, "image": image}, 1.5e8))

    for i in range(3):
        pod(f"runner-{i}", "build-stuff", "docker.io/library/golang:1.23")
        pod(f"runner-{i}", "build-stuff", "registry.example.com/pause:3.10", container="POD")
    for i in range(2):
        pod(f"node-{i}", "build-stuff", "node:22")
    pod("ecr-0", "build-stuff", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:7")
    pod("other-0", "default", "docker.io/library/golang:1.23")
    # The pod-level cgroup series has no container and no image.
    series.append(({"namespace": "build-stuff", "pod": "runner-0", "container": ""}, 3e8))
    return series


async def _discover(config: PrometheusConfig, credentials: Credentials | None = None) -> dict[str, float]:
    result = await PrometheusSource(config, credentials).discover()
    return dict(result.candidates)


async def test_seed_query_over_real_prometheus(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(series_ending_now("container_memory_working_set_bytes", _pods()))
    result = await PrometheusSource(PrometheusConfig(prom.url, SEED_QUERY)).discover()
    assert dict(result.candidates) == {
        "docker.io/library/golang:1.23": 3.0,
        "node:22": 2.0,
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:7": 1.0,
    }
    assert result.dropped == {}


async def test_series_without_image_and_non_finite_values_are_counted(
    prometheus_server: PrometheusFactory,
) -> None:
    series = [
        ({"image": "a:1", "pod": "p1"}, 2.0),
        ({"image": "a:1", "pod": "p2"}, 3.0),
        ({"pod": "no-image"}, 4.0),
        ({"image": "nan:1"}, float("nan")),
        ({"image": "inf:1"}, float("inf")),
        ({"image": "ninf:1"}, float("-inf")),
    ]
    prom = prometheus_server(series_ending_now("m", series))
    result = await PrometheusSource(PrometheusConfig(prom.url, "m")).discover()
    assert dict(result.candidates) == {"a:1": 5.0}  # two series of one image are summed
    assert result.dropped == {"MissingImageLabel": 1, "NonFiniteValue": 3}
    assert result.scanned == 6


async def test_range_query_scores_the_peak(prometheus_server: PrometheusFactory) -> None:
    series = [({"image": "a:1"}, [1, 7, 2, 2]), ({"image": "b:1"}, [3, 3, 3, 3])]
    prom = prometheus_server(series_ending_now("m", series))
    config = PrometheusConfig(prom.url, "m", query_type="range", lookback=900, step=60)
    assert await _discover(config) == {"a:1": 7.0, "b:1": 3.0}


async def test_basic_auth_over_tls(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(
        series_ending_now("m", [({"image": "a:1"}, 1.0)]), basic_auth=("admin", "pw"), tls=True
    )
    assert prom.ca_pem is not None
    ca = prom.ca_pem.decode()
    config = PrometheusConfig(prom.url, "m")
    assert await _discover(config, Credentials(username="admin", password="pw", ca_pem=ca)) == {"a:1": 1.0}

    with pytest.raises(SourceError) as err:
        await _discover(config, Credentials(username="admin", password="wrong", ca_pem=ca))
    assert err.value.reason is Reason.UNAUTHORIZED
    assert "HTTP 401" in err.value.message and "wrong" not in err.value.message

    with pytest.raises(SourceError) as err:
        await _discover(config, Credentials(username="admin", password="pw"))  # CA not trusted
    assert err.value.reason is Reason.TLS_ERROR
    assert "certificate" in err.value.message


async def test_client_certificate(
    prometheus_server: PrometheusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, 1.0)]), client_cert=True)
    assert prom.ca_pem is not None and prom.client is not None
    ca, cert, key = prom.ca_pem.decode(), prom.client.cert_pem.decode(), prom.client.key_pem.decode()
    config = PrometheusConfig(prom.url, "m")
    assert await _discover(config, Credentials(ca_pem=ca, cert_pem=cert, key_pem=key)) == {"a:1": 1.0}

    with pytest.raises(SourceError) as err:
        await _discover(config, Credentials(ca_pem=ca))
    assert err.value.reason in (Reason.TLS_ERROR, Reason.CONNECTION_ERROR)

    # mTLS without a custom CA: the server is trusted through the system store.
    monkeypatch.setenv("SSL_CERT_FILE", str(prom.files["ca.crt"]))
    assert await _discover(config, Credentials(cert_pem=cert, key_pem=key)) == {"a:1": 1.0}


def _proxy(upstream: PrometheusServer, seen: list[str]) -> web.Application:
    """A Mimir-like front: serves the Prometheus API under /prometheus, checks a bearer token and tenant."""

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if (
            request.headers.get("Authorization") != "Bearer t0ken"
            or request.headers.get("X-Scope-OrgID") != "team-a"
        ):
            return web.Response(status=401, text="no org id or bad token")
        path = request.path.removeprefix("/prometheus")
        async with aiohttp.ClientSession() as session, session.request(
            request.method, upstream.url + path, params=request.query, data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "")},
        ) as resp:  # fmt: skip
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/prometheus/{tail:.*}", handle)
    return app


async def test_base_path_bearer_token_and_headers(
    prometheus_server: PrometheusFactory, serve_app: ServeApp
) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, 4.0)]))
    seen: list[str] = []
    base = await serve_app(_proxy(prom, seen))
    creds = Credentials(token="t0ken", headers={"X-Scope-OrgID": "team-a"})
    assert await _discover(PrometheusConfig(f"{base}/prometheus", "m"), creds) == {"a:1": 4.0}
    assert await _discover(PrometheusConfig(f"{base}/prometheus/", "m"), creds) == {"a:1": 4.0}
    assert seen == ["/prometheus/api/v1/query", "/prometheus/api/v1/query"]

    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(f"{base}/prometheus", "m"), Credentials(token="t0ken"))
    assert err.value.reason is Reason.UNAUTHORIZED
    assert "no org id" in err.value.message


async def test_query_errors_from_real_prometheus(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, 1.0)]))
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(prom.url, "count(m) by (image"))
    assert err.value.reason is Reason.INVALID_QUERY
    assert "bad_data" in err.value.message and "parse error" in err.value.message

    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(prom.url, "1 + 1"))
    assert err.value.reason is Reason.INVALID_QUERY_RESULT
    assert "scalar" in err.value.message

    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(prom.url + "/wrong-base", "m"))
    assert err.value.reason is Reason.NOT_FOUND


async def test_response_size_bound(prometheus_server: PrometheusFactory) -> None:
    series = [({"image": f"img{i}:1"}, 1.0) for i in range(200)]
    prom = prometheus_server(series_ending_now("m", series, points=2))
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(prom.url, "m", max_body_bytes=4096))
    assert err.value.reason is Reason.TOO_LARGE


async def test_unreachable_endpoints() -> None:
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig("http://prometheus.invalid", "m", timeout=10))
    assert err.value.reason is Reason.DNS_ERROR
    assert "prometheus.invalid" in err.value.message

    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(f"http://127.0.0.1:{free_port()}", "m"))
    assert err.value.reason is Reason.CONNECTION_ERROR


# --- fakes: behaviour the real Prometheus does not produce on demand ---------------------------


def _fake(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/api/v1/query", handler)
    return app


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, Reason.FORBIDDEN),
        (429, Reason.RATE_LIMITED),
        (502, Reason.SERVER_ERROR),
        (418, Reason.HTTP_ERROR),
    ],
)
async def test_http_statuses(serve_app: ServeApp, status: int, reason: Reason) -> None:
    """Fake: a gateway in front of Prometheus answering with a plain-text error."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, text="gateway says no", headers={"Retry-After": "7"})

    url = await serve_app(_fake(handler))
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(url, "m"))
    assert err.value.reason is reason
    assert f"HTTP {status}" in err.value.message and "gateway says no" in err.value.message
    if status == 429:
        assert "Retry-After: 7" in err.value.message


async def test_non_json_body(serve_app: ServeApp) -> None:
    """Fake: a login page answered with 200, as SSO proxies do."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>Please log in</body></html>", content_type="text/html")

    url = await serve_app(_fake(handler))
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(url, "m"))
    assert err.value.reason is Reason.INVALID_RESPONSE
    assert "non-JSON" in err.value.message and "Please log in" in err.value.message


async def test_huge_streamed_body_is_cut(serve_app: ServeApp) -> None:
    """Fake: an endless chunked body without Content-Length."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        for _ in range(1000):
            await resp.write(chunk)
        return resp

    url = await serve_app(_fake(handler))
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(url, "m", max_body_bytes=1_000_000))
    assert err.value.reason is Reason.TOO_LARGE


async def test_stalled_server_times_out(serve_app: ServeApp) -> None:
    """Fake: accepts the request and never answers."""
    never = asyncio.Event()

    async def handler(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    url = await serve_app(_fake(handler))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(SourceError) as err:
        await _discover(PrometheusConfig(url, "m", timeout=0.5))
    assert err.value.reason is Reason.TIMEOUT
    assert loop.time() - start < 3


def test_invalid_config() -> None:
    for config in (
        PrometheusConfig("mimir.example.com", "m"),
        PrometheusConfig("https://mimir.example.com", " "),
        PrometheusConfig("https://mimir.example.com", "m", query_type="range", lookback=86400 * 30, step=1),
    ):
        with pytest.raises(SourceError) as err:
            PrometheusSource(config)
        assert err.value.reason is Reason.INVALID_CONFIG


def test_untrusted_ca_material_is_invalid_credentials() -> None:
    with pytest.raises(SourceError) as err:
        PrometheusSource(PrometheusConfig("https://x.example.com", "m"), Credentials(ca_pem="not a cert"))
    assert err.value.reason is Reason.INVALID_CREDENTIALS
    other = CertAuthority("x").issue("c", client=True)
    with pytest.raises(SourceError):
        PrometheusSource(
            PrometheusConfig("https://x.example.com", "m"),
            Credentials(
                cert_pem=other.cert_pem.decode(), key_pem=CertAuthority("y").issue("d").key_pem.decode()
            ),
        )
