"""Informer against the real API server: restarts, 410 re-lists, bookmarks; plus one stalled fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import REGISTRY

from devtools.localcluster import LocalCluster
from drop_operator.runtime import Informer, KubeClient
from drop_operator.runtime.backoff import Backoff
from drop_operator.runtime.resources import CONFIG_MAPS, SECRETS
from tests.infra.waiting import eventually
from tests.integration.runtime.conftest import Recorder


def cm(name: str, namespace: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


async def server_state(kube: KubeClient, namespace: str, label_selector: str | None = None) -> dict[str, str]:
    items, _ = await kube.list(CONFIG_MAPS, namespace=namespace, label_selector=label_selector)
    return {f"{namespace}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def cache_state(informer: Informer) -> dict[str, str]:
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in informer.list()
    }


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    informer.start()
    try:
        yield informer
    finally:
        await informer.stop()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.slow
async def test_informer_survives_apiserver_restart_with_changes_while_reconnecting(
    control_plane: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    for name in ("keep", "change", "remove"):
        await kube.create(CONFIG_MAPS, cm(name, namespace, v="1"))
    # A long first backoff keeps the informer disconnected while the writes below happen; 30 s,
    # because a restart of the API server alone took over 10 s on a loaded 2-core machine.
    informer = Informer(
        kube, CONFIG_MAPS, namespace=namespace, backoff=Backoff(initial=30.0, cap=30.0, jitter=0)
    )
    seen = Recorder()
    informer.add_handler(seen.add, seen.update, seen.delete)
    async with running(informer):
        assert await informer.wait_synced(15)
        assert sorted(seen.of("add")) == ["change", "keep", "remove"]

        await asyncio.to_thread(control_plane.stop_apiserver)
        await eventually(lambda: informer.state == "backoff", 30, "informer notices the apiserver is gone")
        await asyncio.to_thread(control_plane.start_apiserver)

        writer = await KubeClient.connect(str(control_plane.kubeconfig))
        try:
            states_during_writes = [informer.state]
            await writer.create(CONFIG_MAPS, cm("new", namespace, v="1"))
            await writer.patch(CONFIG_MAPS, "change", {"data": {"v": "2"}}, namespace)
            assert await writer.delete(CONFIG_MAPS, "remove", namespace)
            states_during_writes.append(informer.state)
            expected = await server_state(writer, namespace)
        finally:
            await writer.close()

        async def converged() -> bool:
            return cache_state(informer) == await server_state(kube, namespace)

        await eventually(converged, 60, "cache equals server after the restart")
        assert cache_state(informer) == expected
    assert "backoff" in states_during_writes, "the writes should have raced the reconnect"
    assert seen.of("delete") == ["remove"], "the deletion made while disconnected must be reported once"
    assert seen.of("add").count("new") == 1
    assert seen.of("update") == ["change"]
    assert informer.get(f"{namespace}/change")["data"] == {"v": "2"}  # type: ignore[index]


async def test_expired_resource_version_relists_without_losing_or_duplicating(
    kube: KubeClient, namespace: str, control_plane: LocalCluster
) -> None:
    for name in ("stay", "edit", "drop"):
        await kube.create(CONFIG_MAPS, cm(name, namespace, v="1"))
    informer = Informer(kube, CONFIG_MAPS, namespace=namespace)
    seen = Recorder()
    informer.add_handler(seen.add, seen.update, seen.delete)
    async with running(informer):
        assert await informer.wait_synced(15)
    seen.events.clear()

    # While the informer is stopped: one of each change; then make it resume from a resourceVersion
    # the API server no longer serves, which answers 410 Gone.
    await kube.delete(CONFIG_MAPS, "drop", namespace)
    await kube.patch(CONFIG_MAPS, "edit", {"data": {"v": "2"}}, namespace)
    await kube.create(CONFIG_MAPS, cm("fresh", namespace, v="1"))
    control_plane.compact_etcd()
    informer._resource_version = "1"
    gone_before = metric("drop_informer_watch_restarts_total", resource=informer.label, reason="gone")
    lists_before = metric("drop_informer_lists_total", resource=informer.label)

    async with running(informer):

        async def converged() -> bool:
            return cache_state(informer) == await server_state(kube, namespace)

        await eventually(converged, 30, "cache equals server after the 410 re-list")
        await kube.patch(CONFIG_MAPS, "stay", {"data": {"v": "3"}}, namespace)
        await eventually(
            lambda: ("update", "stay") in [(k, n) for k, n, _ in seen.events], 15, "watch resumed"
        )

    assert (
        metric("drop_informer_watch_restarts_total", resource=informer.label, reason="gone")
        == gone_before + 1
    )
    assert metric("drop_informer_lists_total", resource=informer.label) == lists_before + 1
    assert sorted((k, n) for k, n, _ in seen.events) == [
        ("add", "fresh"),
        ("delete", "drop"),
        ("update", "edit"),
        ("update", "stay"),
    ]


async def test_bookmarks_advance_the_resume_point_without_events(kube: KubeClient, namespace: str) -> None:
    # Secrets, not ConfigMaps: bookmarks come from the watch cache, which the local control plane
    # leaves off for ConfigMaps (see LocalCluster).
    informer = Informer(
        kube, SECRETS, namespace=namespace, label_selector="rt-bookmark=yes", server_timeout=(4, 4)
    )
    seen = Recorder()
    informer.add_handler(seen.add, seen.update, seen.delete)
    before = metric("drop_informer_watch_events_total", resource=informer.label, type="BOOKMARK")
    async with running(informer):
        assert await informer.wait_synced(15)
        listed_rv = int(informer.resource_version)
        last = None
        for i in range(3):  # not selected: moves the collection's resourceVersion, delivers nothing
            last = await kube.create(
                SECRETS,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"other{i}", "namespace": namespace},
                },
            )
        assert last is not None
        target = int(last["metadata"]["resourceVersion"])
        await eventually(
            lambda: int(informer.resource_version) >= target, 20, "a bookmark moved the resume point"
        )
    assert int(informer.resource_version) > listed_rv
    assert metric("drop_informer_watch_events_total", resource=informer.label, type="BOOKMARK") > before
    assert seen.events == []


class SilentWatchServer:
    """Fake API server for the one behaviour a healthy kube-apiserver never shows: a watch that is
    accepted (200, headers sent) and then stays silent forever, as behind a dead NAT or a hung proxy.
    LIST works normally (empty); every watch request is counted and then left hanging.
    """

    def __init__(self) -> None:
        self.watches = 0
        self.app = web.Application()
        self.app.router.add_get("/api/v1/namespaces/{ns}/configmaps", self.handle)
        self.runner = web.AppRunner(self.app)
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response(
                {"kind": "ConfigMapList", "metadata": {"resourceVersion": "7"}, "items": []}
            )
        self.watches += 1
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await asyncio.sleep(3600)
        return resp

    async def __aenter__(self) -> SilentWatchServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_inactivity_timeout_detects_a_silent_watch() -> None:
    async with SilentWatchServer() as fake:
        cfg = Configuration(host=fake.url)
        client = KubeClient(ApiClient(configuration=cfg), connect_timeout=2, read_timeout=5)
        informer = Informer(
            client, CONFIG_MAPS, namespace="x", inactivity_timeout=0.5, backoff=Backoff(initial=0.05, cap=0.1)
        )
        before = metric("drop_informer_watch_restarts_total", resource=informer.label, reason="inactivity")
        try:
            async with running(informer):
                assert await informer.wait_synced(5)
                await eventually(lambda: fake.watches >= 3, 10, "silent watches are abandoned and retried")
                assert informer.healthy()
                informer.state = "watching"
                assert not informer.healthy(now=informer.last_activity + 0.5 * 1.5 + 1), (
                    "a watch silent past its budget that is not reconnecting must fail liveness"
                )
        finally:
            await client.close()
        assert (
            metric("drop_informer_watch_restarts_total", resource=informer.label, reason="inactivity")
            >= before + 2
        )
        assert informer.resource_version == "7"
