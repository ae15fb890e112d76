"""What KubeClient puts on the wire, against a local aiohttp server standing in for the API server.

The client sends through kubernetes-asyncio's aiohttp session, not ``ApiClient.call_api``; these
tests pin what call_api used to guarantee: the body as the same JSON, the content type per verb, the
User-Agent, the query encoding, the auth header as the configuration has it at each request (tokens
that a refresh hook or the library's refresh loop replace), the proxy, and watch decoding.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import CONFIG_MAPS

Seen = list[dict[str, Any]]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[str, Seen, dict[str, bytes]]]:
    """``(url, requests seen, canned watch body by path)``; every other request echoes ``{}``."""
    seen: Seen = []
    watch_bodies: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(
            {
                "method": request.method,
                "host": request.host,
                "path": request.path,
                "query": list(request.query.items()),
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        if request.query.get("watch") == "true":
            resp = web.StreamResponse()
            await resp.prepare(request)
            body = watch_bodies.get(request.path, b"")
            for start in range(0, len(body), 7):  # events split across chunks
                await resp.write(body[start : start + 7])
            await resp.write_eof()
            return resp
        return web.json_response({"kind": "Status", "echo": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen, watch_bodies
    finally:
        await runner.cleanup()


Connect = Callable[[str], Awaitable[KubeClient]]


@pytest.fixture
def connect(tmp_path: Path) -> Connect:
    """Connect through a token kubeconfig for ``server`` (the path operators use)."""

    async def _connect(server: str) -> KubeClient:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": server}}],
                    "users": [{"name": "u", "user": {"token": "first"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        return await KubeClient.connect(str(kubeconfig), connect_timeout=5, read_timeout=5)

    return _connect


async def test_bodies_go_out_as_the_same_json_with_the_verbs_content_types(
    server: tuple[str, Seen, dict[str, bytes]], connect: Connect
) -> None:
    url, seen, _ = server
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns", "labels": {"é": "ü"}},
        "data": {"n": "1", "nested": json.dumps({"x": [1, 2.5, None, True]})},
        "extra": {1: "int key"},
    }
    async with await connect(url) as client:
        assert (await client.create(CONFIG_MAPS, body))["echo"] == "/api/v1/namespaces/ns/configmaps"
        await client.patch(CONFIG_MAPS, "a", {"data": {"n": None}}, "ns")
        await client.apply(CONFIG_MAPS, body, field_manager="drop-test")
        await client.list(CONFIG_MAPS, namespace="ns", label_selector="app in (a,b),tier!=x")
        assert await client.delete(CONFIG_MAPS, "a", "ns", uid="u-1") is True

    create, patch, apply, listed, delete = seen
    assert json.loads(create["body"]) == json.loads(json.dumps(body)), "what json.dumps would have sent"
    assert create["headers"]["Content-Type"] == "application/json"
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch["body"]) == {"data": {"n": None}}
    assert apply["headers"]["Content-Type"] == "application/apply-patch+yaml"
    assert apply["method"] == "PATCH"
    assert apply["query"] == [("fieldManager", "drop-test"), ("force", "true")]
    assert listed["query"] == [("labelSelector", "app in (a,b),tier!=x"), ("limit", "500")]
    assert listed["body"] == b""
    assert json.loads(delete["body"])["preconditions"] == {"uid": "u-1"}
    for request in seen:
        assert request["headers"]["Accept"] == "application/json"
        assert request["headers"]["User-Agent"] == "drop-operator"
        assert request["headers"]["Authorization"] == "Bearer first"


async def test_the_token_is_read_at_each_request_after_the_library_refreshes_it(
    server: tuple[str, Seen, dict[str, bytes]], connect: Connect
) -> None:
    url, seen, _ = server
    async with await connect(url) as client:
        configuration = client._api.configuration
        await client.get(CONFIG_MAPS, "a", "ns")
        # What kubernetes-asyncio's refresh_token loop does for exec plugins:
        configuration.api_key["BearerToken"] = "Bearer rotated"
        await client.get(CONFIG_MAPS, "a", "ns")
        # What its in-cluster loader installs: a hook run before every request (token file).
        calls = []

        def reread_token_file(config: Any, *args: Any) -> None:
            calls.append(config)
            config.api_key["BearerToken"] = f"Bearer file-{len(calls)}"

        configuration.refresh_api_key_hook = reread_token_file
        await client.get(CONFIG_MAPS, "a", "ns")
        await client.create(CONFIG_MAPS, {"metadata": {"name": "b", "namespace": "ns"}})
    assert [r["headers"]["Authorization"] for r in seen] == [
        "Bearer first",
        "Bearer rotated",
        "Bearer file-1",
        "Bearer file-2",
    ]


async def test_the_proxy_from_the_environment_carries_the_requests(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[bytes] = []

    async def refuse_tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(refuse_tunnel, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # The API server's name never resolves: only the proxy can have been asked. It refuses the
    # tunnel, so the request fails, but only after the proxy saw the CONNECT and its credentials.
    async with proxy, await connect("https://kube.invalid:6443") as client:
        with pytest.raises(ApiError) as exc:
            await client.get(CONFIG_MAPS, "a", "ns")
    assert exc.value.status == 0
    request_line, *header_lines = heads[0].decode().strip().split("\r\n")
    assert request_line == "CONNECT kube.invalid:6443 HTTP/1.1"
    credentials = base64.b64encode(b"user:secret").decode()
    assert f"Proxy-Authorization: Basic {credentials}" in header_lines


async def test_watch_decodes_split_lines_and_raises_the_error_event(
    server: tuple[str, Seen, dict[str, bytes]], connect: Connect
) -> None:
    url, _, watch_bodies = server
    added = {"type": "ADDED", "object": {"metadata": {"name": "a", "labels": {"é": "ü"}}}}
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    watch_bodies["/api/v1/namespaces/ns/configmaps"] = (
        json.dumps(added).encode() + b"\n\n" + json.dumps(gone).encode() + b"\n"
    )
    events = []
    async with await connect(url) as client:
        with pytest.raises(ApiError) as exc:
            async for event in client.watch(
                CONFIG_MAPS, resource_version="7", namespace="ns", timeout_seconds=30
            ):
                events.append(event)
    assert exc.value.gone
    assert events == [
        {
            "type": "ADDED",
            "object": {
                "metadata": {"name": "a", "labels": {"é": "ü"}},
                "apiVersion": "v1",
                "kind": "ConfigMap",
            },
        }
    ]
