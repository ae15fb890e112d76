"""The discovery reconciler on answers real-world servers give: empty, partial, per repository, Docker Hub.

Real kube-apiserver, real Prometheus and real registry; fakes only for servers that cannot run
here (each says which it stands for).
"""

from __future__ import annotations

import shutil
from typing import Any

from aiohttp import web

from drop_operator.controllers.kinds import DISCOVERY_POLICIES
from drop_operator.runtime import KubeClient
from drop_operator.runtime.resources import SECRETS
from tests.component.discovery.conftest import ServeApp, serve_app
from tests.infra.controlplane import unique_name
from tests.infra.hosts import MapHosts
from tests.infra.operator import condition
from tests.infra.prometheus import PrometheusFactory, series_ending_now
from tests.infra.registry import RegistryFactory
from tests.infra.waiting import eventually
from tests.integration.discoverypolicy.conftest import (
    OPERATOR_NAMESPACE,
    Operator,
    images,
    resync,
    source,
    synced,
)

__all__ = ["serve_app"]  # the fixture, shared with the discovery component tests

Obj = dict[str, Any]


def policy(name: str, *sources: Obj, top_x: int = 10) -> Obj:
    return {
        "apiVersion": DISCOVERY_POLICIES.api_version,
        "kind": DISCOVERY_POLICIES.kind,
        "metadata": {"name": name},
        "spec": {"interval": "1h", "topX": top_x, "sources": list(sources)},
    }


def _scripted(answers: list[Obj]) -> web.Application:
    """Fake: a Prometheus-compatible query API that gives `answers[0]` until the test changes it."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response(answers[0])

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", handler)
    return app


async def _first_sync(
    kube: KubeClient, serve_app: ServeApp, answers: list[Obj], prefix: str
) -> tuple[str, Obj]:
    """A policy with one Prometheus source answering `answers[0]`; its name and first synced status."""
    url = await serve_app(_scripted(answers))
    name = unique_name(prefix)
    source_spec = {"type": "prometheus", "prometheus": {"endpoint": url, "query": "m"}}
    await kube.create(DISCOVERY_POLICIES, policy(name, source_spec))
    return name, await eventually(lambda: synced(kube, name), 30, "first sync")


def _vector(*images_: tuple[str, float], **extra: Any) -> Obj:
    result = [{"metric": {"image": i}, "value": [1.0, str(v)]} for i, v in images_]
    return {"status": "success", "data": {"resultType": "vector", "result": result}, **extra}


async def test_no_series_spelled_null_publishes_the_empty_ranking_and_is_ready(
    kube: KubeClient, operator: Operator, serve_app: ServeApp
) -> None:
    """Fake: an older Prometheus / Thanos, which answers "no series" with `"result": null`."""
    answers = [_vector(("redis:7", 2))]
    name, status = await _first_sync(kube, serve_app, answers, "no-series")
    assert images(status) == [("docker.io/library/redis:7", 2.0)]

    answers[0] = {"status": "success", "data": {"resultType": "vector", "result": None}}
    status = await resync(kube, name)
    assert status.get("discoveredImages", []) == [] and status["imageCount"] == 0
    assert source(status, "prometheus-0")["healthy"] is True
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Discovered")
    await kube.delete(DISCOVERY_POLICIES, name)


async def test_a_partial_answer_never_replaces_the_last_complete_list(
    kube: KubeClient, operator: Operator, serve_app: ServeApp
) -> None:
    """Fake: VictoriaMetrics' vmselect, complete first, then `"isPartial": true` (a vmstorage node down)."""
    answers = [_vector(("redis:7", 2), ("node:20", 1))]
    name, status = await _first_sync(kube, serve_app, answers, "partial")
    complete = status["discoveredImages"]
    assert len(complete) == 2

    answers[0] = _vector(("node:20", 1), isPartial=True)
    status = await resync(kube, name)
    assert status["discoveredImages"] == complete
    entry = source(status, "prometheus-0")
    assert (entry["healthy"], entry["reason"]) == (False, "PartialResponse")
    assert "isPartial" in entry["lastError"]
    assert [(i["image"], i["score"]) for i in entry["images"]] == [(i["image"], i["score"]) for i in complete]
    assert condition(status, "SourcesHealthy")["reason"] == "PartialResponse"
    await kube.delete(DISCOVERY_POLICIES, name)


async def test_one_missing_repository_does_not_freeze_the_others(
    kube: KubeClient, operator: Operator, registry_server: RegistryFactory
) -> None:
    registry = registry_server(auth="token")
    registry.push_tags("ci/app", ["1.0.0"])
    registry.push_tags("ci/tool", ["2.0.0", "2.1.0"])
    name = unique_name("repos")
    body = policy(
        name,
        {
            "type": "registry",
            "name": "ci",
            "registry": {"url": registry.url, "repositories": ["ci/app", "ci/tool"], "topX": 2},
        },
    )
    await kube.create(DISCOVERY_POLICIES, body)
    status = await eventually(lambda: synced(kube, name), 30, "first sync")
    host = registry.host
    assert images(status) == [
        (f"{host}/ci/app:1.0.0", 2.0),
        (f"{host}/ci/tool:2.1.0", 2.0),
        (f"{host}/ci/tool:2.0.0", 1.0),
    ]
    first_success = source(status, "ci")["lastSuccessTime"]

    # ci/tool is deleted (404 NAME_UNKNOWN); ci/app publishes a new release.
    shutil.rmtree(registry.storage / "docker" / "registry" / "v2" / "repositories" / "ci" / "tool")
    registry.push_tags("ci/app", ["1.1.0"])
    status = await resync(kube, name)
    assert images(status) == [
        (f"{host}/ci/app:1.1.0", 2.0),
        (f"{host}/ci/tool:2.1.0", 2.0),
        (f"{host}/ci/app:1.0.0", 1.0),
        (f"{host}/ci/tool:2.0.0", 1.0),
    ]
    entry = source(status, "ci")
    assert (entry["healthy"], entry["reason"]) == (False, "NotFound")
    [failing] = entry["failingRepositories"]  # kept by the API server: the CRD schema has it
    assert (failing["name"], failing["reason"], failing["lastSuccessTime"]) == (
        "ci/tool",
        "NotFound",
        first_success,
    )
    assert {i["repository"] for i in entry["images"]} == {"ci/app", "ci/tool"}
    assert (condition(status, "Ready")["status"], condition(status, "Ready")["reason"]) == (
        "True",
        "PartiallyDiscovered",
    )
    assert condition(status, "SourcesHealthy")["reason"] == "NotFound"
    await kube.delete(DISCOVERY_POLICIES, name)


async def test_docker_hub_tags_and_pod_usage_are_one_image(
    kube: KubeClient,
    operator: Operator,
    registry_server: RegistryFactory,
    prometheus_server: PrometheusFactory,
    map_hosts: MapHosts,
) -> None:
    """A real registry stands for Docker Hub: only the name `registry-1.docker.io` is mapped to it."""
    hub = registry_server(auth="token", tls=True, tls_names=["registry-1.docker.io"])
    hub.push_tags("library/nginx", ["1.27.3"])
    assert hub.ca_pem is not None
    map_hosts({"registry-1.docker.io": ("127.0.0.1", int(hub.host.rsplit(":", 1)[1]))})
    prometheus = prometheus_server(series_ending_now("pods", [({"image": "nginx:1.27.3"}, 40.0)]))
    secret = unique_name("hub-ca")
    await kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": OPERATOR_NAMESPACE},
            "stringData": {"ca.crt": hub.ca_pem.decode()},
        },
        OPERATOR_NAMESPACE,
    )
    name = unique_name("hub")
    body = policy(
        name,
        {"type": "prometheus", "name": "usage", "prometheus": {"endpoint": prometheus.url, "query": "pods"}},
        {
            "type": "registry",
            "name": "hub",
            # The newest (here the only) tag of a source with topX 2 scores 2: 40 + 2.
            "registry": {"url": "https://registry-1.docker.io", "repositories": ["library/nginx"], "topX": 2},
            "secretRef": {"name": secret},
        },
    )
    await kube.create(DISCOVERY_POLICIES, body)

    async def both_healthy() -> Obj | None:
        status = await synced(kube, name)
        ok = status and all(source(status, s).get("healthy") for s in ("usage", "hub"))
        return status if ok else None

    status = await eventually(both_healthy, 30, "both sources answered")
    assert [(i["image"], i["score"], i["sources"]) for i in status["discoveredImages"]] == [
        ("docker.io/library/nginx:1.27.3", 42.0, ["hub", "usage"])
    ]
    await kube.delete(DISCOVERY_POLICIES, name)
    await kube.delete(SECRETS, secret, OPERATOR_NAMESPACE)
