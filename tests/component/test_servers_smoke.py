"""The Prometheus and registry fixtures run real servers that really check what they should."""

from __future__ import annotations

import itertools
import json
import ssl
import time
from typing import Any

import aiohttp
import pytest

from tests.infra.prometheus import PrometheusFactory, series_ending_now
from tests.infra.registry import RegistryFactory
from tests.infra.tls import CertAuthority

SERIES = [({"image": "nginx:1.25", "pod": "a"}, [1, 2, 3]), ({"image": "redis:7", "pod": "b"}, [5, 5, 5])]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def _get_json(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    """Status and JSON body (None when the body is not JSON, e.g. a plain 401)."""
    async with session.get(url, **kwargs) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, None


async def test_prometheus_answers_instant_and_range_queries(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(series_ending_now("m", SERIES))
    async with aiohttp.ClientSession() as session:
        status, body = await _get_json(
            session, f"{prom.url}/api/v1/query", params={"query": "sum(m) by (image)"}
        )
        assert status == 200
        data = body["data"]
        assert isinstance(data, dict)
        assert {r["metric"]["image"]: r["value"][1] for r in data["result"]} == {
            "nginx:1.25": "3",
            "redis:7": "5",
        }

        end = time.time()
        params = {"query": "m", "start": str(end - 600), "end": str(end), "step": "60"}
        status, body = await _get_json(session, f"{prom.url}/api/v1/query_range", params=params)
        assert status == 200
        data = body["data"]
        assert isinstance(data, dict)
        assert data["resultType"] == "matrix"
        values = {r["metric"]["image"]: [v[1] for v in r["values"]] for r in data["result"]}
        # Three points a minute apart; each evaluation step sees the latest one before it.
        assert [v for v, _ in itertools.groupby(values["nginx:1.25"])] == ["1", "2", "3"]
        assert set(values["redis:7"]) == {"5"}


async def test_prometheus_basic_auth_over_tls(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(series_ending_now("m", SERIES), basic_auth=("admin", "s3cret"), tls=True)
    assert prom.url.startswith("https://")
    ctx = prom.ssl_context()
    url = f"{prom.url}/api/v1/query"
    async with aiohttp.ClientSession() as session:
        status, _ = await _get_json(session, url, params={"query": "m"}, ssl=ctx)
        assert status == 401
        status, _ = await _get_json(
            session, url, params={"query": "m"}, ssl=ctx, headers=_basic("admin", "wrong")
        )
        assert status == 401
        status, body = await _get_json(
            session, url, params={"query": "m"}, ssl=ctx, headers=_basic("admin", "s3cret")
        )
        assert status == 200 and body["status"] == "success"
        # A client that does not trust the test CA refuses the server.
        other = ssl.create_default_context(cadata=CertAuthority("someone else").cert_pem.decode())
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get_json(session, url, ssl=other)


async def test_prometheus_requires_client_certificate(prometheus_server: PrometheusFactory) -> None:
    prom = prometheus_server(series_ending_now("m", SERIES), client_cert=True)
    url = f"{prom.url}/api/v1/query"
    async with aiohttp.ClientSession() as session:
        status, _ = await _get_json(session, url, params={"query": "m"}, ssl=prom.ssl_context())
        assert status == 200
        with pytest.raises(aiohttp.ClientError):
            await _get_json(session, url, params={"query": "m"}, ssl=prom.ssl_context(with_client_cert=False))


async def test_registry_lists_pushed_tags_anonymously(registry_server: RegistryFactory) -> None:
    reg = registry_server()
    reg.push_tags("team/app", ["v1.0.0", "v1.1.0", "latest"])
    async with aiohttp.ClientSession() as session:
        status, body = await _get_json(session, f"{reg.url}/v2/team/app/tags/list")
    assert status == 200
    assert body == {"name": "team/app", "tags": ["latest", "v1.0.0", "v1.1.0"]}


async def test_registry_basic_auth(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="basic", users={"reader": "pw"})
    reg.push_image("team/app", "v1")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{reg.url}/v2/team/app/tags/list") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic ")
        status, body = await _get_json(
            session, f"{reg.url}/v2/team/app/tags/list", headers=_basic("reader", "pw")
        )
    assert status == 200 and body["tags"] == ["v1"]


@pytest.mark.parametrize("credentials", [None, ("reader", "pw")], ids=["anonymous", "basic-credentials"])
async def test_registry_bearer_token_flow(
    registry_server: RegistryFactory, credentials: tuple[str, str] | None
) -> None:
    reg = registry_server(auth="token", users={"reader": "pw"})
    reg.push_tags("group/project/helper", ["v1", "v2"])
    assert reg.token_server is not None
    url = f"{reg.url}/v2/group/project/helper/tags/list"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 401
            challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'realm="{reg.token_server.url}"' in challenge
        assert 'scope="repository:group/project/helper:pull"' in challenge
        auth = _basic(*credentials) if credentials else None
        params = {"service": reg.token_server.service, "scope": "repository:group/project/helper:pull"}
        status, token = await _get_json(session, reg.token_server.url, params=params, headers=auth)
        assert status == 200
        status, body = await _get_json(session, url, headers={"Authorization": f"Bearer {token['token']}"})
    assert status == 200 and body["tags"] == ["v1", "v2"]
    assert reg.token_server.requests[-1].account == (credentials[0] if credentials else None)


async def test_registry_token_server_rejects_wrong_credentials(registry_server: RegistryFactory) -> None:
    reg = registry_server(auth="token", users={"reader": "pw"})
    assert reg.token_server is not None
    async with aiohttp.ClientSession() as session:
        status, _ = await _get_json(session, reg.token_server.url, headers=_basic("reader", "nope"))
    assert status == 401


async def test_distribution_v3_paginates_tag_lists(registry_server: RegistryFactory) -> None:
    reg = registry_server(version=3)
    reg.seed_tags("big/repo", [f"t{i:03d}" for i in range(25)])
    seen: list[str] = []
    url: str | None = f"{reg.url}/v2/big/repo/tags/list?n=10"
    pages = 0
    async with aiohttp.ClientSession() as session:
        while url:
            async with session.get(url) as resp:
                assert resp.status == 200
                seen += (await resp.json())["tags"]
                link = resp.headers.get("Link")
            pages += 1
            url = None
            if link:
                target = link.split(";")[0].strip().strip("<>")
                url = target if target.startswith("http") else reg.url + target
    assert pages == 3
    assert seen == [f"t{i:03d}" for i in range(25)]
