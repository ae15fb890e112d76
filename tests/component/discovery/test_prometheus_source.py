"""PrometheusSource against a real Prometheus (and proxies/fakes only where Prometheus cannot)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from devtools.process import free_port
from drop_operator.discovery import Credentials, PrometheusConfig, PrometheusSource, Reason, SourceError
from drop_operator.discovery.prometheus import MethodMemory
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


@pytest.mark.parametrize(
    ("server", "data", "query_type"),
    [
        ("Prometheus 2.0 / Thanos", {"resultType": "vector", "result": None}, "instant"),
        ("Google's managed Prometheus frontend", {"resultType": "matrix", "result": None}, "range"),
        ("Cortex query-frontend", {"resultType": "", "result": None}, "instant"),
        ("Cortex query-frontend", {"resultType": "", "result": None}, "range"),
    ],
)
async def test_no_series_as_null_is_an_empty_healthy_answer(
    serve_app: ServeApp, server: str, data: dict[str, object], query_type: str
) -> None:
    """Fake: a Prometheus-compatible server that spells "no series" with null, as `server` does."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": data})

    app = web.Application()
    app.router.add_route("*", "/api/v1/{api:query|query_range}", handler)
    url = await serve_app(app)
    result = await PrometheusSource(
        PrometheusConfig(url, "m", query_type=query_type),
        memory=MethodMemory(),  # type: ignore[arg-type]
    ).discover()
    assert (result.candidates, result.dropped, result.scanned, result.warnings) == ([], {}, 0, [])


def _vmselect(seen: list[dict[str, str]], *, honours_deny: bool) -> web.Application:
    """Fake: VictoriaMetrics' vmselect while one vmstorage node is down.

    With `honours_deny` it refuses to answer partially when asked (`deny_partial_response=1`), as
    vmselect does; without, it stands for a vmselect that ignores the argument (an old one, or a
    proxy that drops arguments it does not know) and answers `"isPartial": true`.
    """

    async def handler(request: web.Request) -> web.Response:
        params = dict(await request.post()) if request.method == "POST" else dict(request.query)
        seen.append({k: str(v) for k, v in params.items()})
        if honours_deny and params.get("deny_partial_response") == "1":
            return web.json_response(
                {"status": "error", "errorType": "503", "error": "cannot fetch query results from vmstorage"},
                status=503,
            )
        series = [{"metric": {"image": "nginx:1.25"}, "value": [1.0, "3"]}]
        return web.json_response(
            {"status": "success", "isPartial": True, "data": {"resultType": "vector", "result": series}}
        )

    app = web.Application()
    app.router.add_route("*", "/select/0/prometheus/api/v1/query", handler)
    return app


@pytest.mark.parametrize("honours_deny", [True, False])
async def test_a_partial_victoriametrics_answer_is_never_taken_as_complete(
    serve_app: ServeApp, honours_deny: bool
) -> None:
    seen: list[dict[str, str]] = []
    url = await serve_app(_vmselect(seen, honours_deny=honours_deny))
    source = PrometheusSource(PrometheusConfig(f"{url}/select/0/prometheus", "m"), memory=MethodMemory())
    with pytest.raises(SourceError) as err:
        await source.discover()
    # Asked to refuse partial answers, in the spelling of each server that can give one.
    assert seen[0]["deny_partial_response"] == "1" and seen[0]["partial_response"] == "false"
    if honours_deny:
        assert err.value.reason is Reason.QUERY_FAILED
    else:
        assert err.value.reason is Reason.PARTIAL_RESPONSE
        assert "isPartial" in err.value.message


def _get_only(upstream: PrometheusServer, methods: list[str]) -> web.Application:
    """Fake: a query proxy that only allows GET (405 with `Allow: GET` to anything else)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        methods.append(request.method)
        if request.method != "GET":
            return web.Response(status=405, text="method not allowed", headers={"Allow": "GET, HEAD"})
        async with aiohttp.ClientSession() as session, session.get(
            upstream.url + request.path, params=request.query
        ) as resp:  # fmt: skip
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.mark.parametrize("query_type", ["instant", "range"])
async def test_get_only_endpoint_answers_by_get_and_is_remembered(
    prometheus_server: PrometheusFactory, serve_app: ServeApp, query_type: str
) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, [1, 4, 2])]))
    methods: list[str] = []
    url = await serve_app(_get_only(prom, methods))
    memory = MethodMemory()
    config = PrometheusConfig(url, "m", query_type=query_type, lookback=600, step=60)  # type: ignore[arg-type]
    expected = {"a:1": 4.0 if query_type == "range" else 2.0}
    result = await PrometheusSource(config, memory=memory).discover()
    assert dict(result.candidates) == expected
    assert methods == ["POST", "GET"]
    # The next sync (a new source object, as every sync builds) goes straight to GET.
    result = await PrometheusSource(config, memory=memory).discover()
    assert dict(result.candidates) == expected
    assert methods == ["POST", "GET", "GET"]


async def test_405_that_does_not_allow_get_is_reported(serve_app: ServeApp) -> None:
    """Fake: an endpoint that answers 405 and allows only PUT."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=405, text="use PUT", headers={"Allow": "PUT"})

    url = await serve_app(_fake(handler))
    with pytest.raises(SourceError) as err:
        await PrometheusSource(PrometheusConfig(url, "m"), memory=MethodMemory()).discover()
    assert err.value.reason is Reason.HTTP_ERROR and "HTTP 405" in err.value.message


def _moved(upstream: PrometheusServer, seen: list[tuple[str, str]], *, location: str) -> web.Application:
    """Fake: a front that moved the query API from /old to /new with a 301, as path rewrites do."""

    async def old(request: web.Request) -> web.Response:
        seen.append((request.method, request.path))
        raise web.HTTPMovedPermanently(location=location + request.path.replace("/old", "/new", 1))

    async def new(request: web.Request) -> web.Response:
        seen.append((request.method, request.path))
        async with aiohttp.ClientSession() as session, session.request(
            request.method, upstream.url + request.path.removeprefix("/new"), params=request.query,
            data=await request.read(), headers={"Content-Type": request.headers.get("Content-Type", "")},
        ) as resp:  # fmt: skip
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/old/{tail:.*}", old)
    app.router.add_route("*", "/new/{tail:.*}", new)
    return app


async def test_a_redirect_that_drops_the_post_body_is_followed_with_the_query(
    prometheus_server: PrometheusFactory, serve_app: ServeApp
) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, 3.0)]))
    seen: list[tuple[str, str]] = []
    url = await serve_app(_moved(prom, seen, location=""))
    memory = MethodMemory()
    config = PrometheusConfig(f"{url}/old", "m")
    assert dict((await PrometheusSource(config, memory=memory).discover()).candidates) == {"a:1": 3.0}
    # aiohttp followed the 301 with a body-less GET (which Prometheus rejects); the query is posted again.
    assert seen == [
        ("POST", "/old/api/v1/query"),
        ("GET", "/new/api/v1/query"),
        ("POST", "/new/api/v1/query"),
    ]
    seen.clear()
    assert dict((await PrometheusSource(config, memory=memory).discover()).candidates) == {"a:1": 3.0}
    assert seen == [("POST", "/new/api/v1/query")]


async def test_a_redirect_to_another_host_is_not_followed_with_credentials(
    prometheus_server: PrometheusFactory, serve_app: ServeApp
) -> None:
    prom = prometheus_server(series_ending_now("m", [({"image": "a:1"}, 3.0)]))
    seen: list[tuple[str, str]] = []
    target = await serve_app(_moved(prom, [], location=""))
    url = await serve_app(_moved(prom, seen, location=target.replace("127.0.0.1", "localhost")))
    with pytest.raises(SourceError) as err:
        await PrometheusSource(
            PrometheusConfig(f"{url}/old", "m"), Credentials(token="t0ken"), memory=MethodMemory()
        ).discover()
    assert err.value.reason is Reason.INVALID_CONFIG
    assert "another host" in err.value.message and "localhost" in err.value.message


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
