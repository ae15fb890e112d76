"""The discovery reconciler against a real kube-apiserver, a real Prometheus and a real registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY

from devtools.localcluster import LocalCluster
from devtools.tools import REPO_ROOT
from drop_operator.controllers.discoverypolicy.schedule import SECRET_RETRY_FLOOR, jittered_interval
from drop_operator.controllers.kinds import DISCOVERY_POLICIES
from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import EVENTS, SECRETS
from tests.infra.controlplane import unique_name
from tests.infra.operator import condition
from tests.infra.prometheus import PrometheusFactory, PrometheusServer, series_ending_now
from tests.infra.registry import RegistryFactory
from tests.infra.waiting import eventually
from tests.integration.discoverypolicy.conftest import (
    OPERATOR_NAMESPACE,
    Operator,
    images,
    resync,
    source,
    status_of,
    synced,
)

Obj = dict[str, Any]

SEED = REPO_ROOT / "tests" / "data" / "seed" / "popular-build-images.yaml"
SEED_NAME = "popular-build-images"
SEED_ENDPOINT = "https://mimir.example.com"
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tools/scanner:7"
BUILDER = "registry.internal.test/ci/builder:1.4"
#: The seed's query: the most-used images of build-stuff in mycluster.
QUERY = """count(container_memory_working_set_bytes{
  container!="", container!="POD",
  namespace="build-stuff", cluster="mycluster"
}) by (image)"""


def build_stuff(image_pods: dict[str, int]) -> list[Any]:
    """``container_memory_working_set_bytes`` series: ``image_pods[image]`` pods in build-stuff, plus noise
    the seed's query must not count (other namespace, other cluster, the pause container)."""
    series: list[tuple[dict[str, str], float]] = []
    for image, pods in image_pods.items():
        for i in range(pods):
            labels = {"container": "build", "namespace": "build-stuff", "cluster": "mycluster"}
            series.append(({**labels, "pod": f"runner-{abs(hash(image)) % 997}-{i}", "image": image}, 1e8))
    noise = {
        "container": "app",
        "namespace": "production",
        "cluster": "mycluster",
        "pod": "web-0",
        "image": "nginx:1.25",
    }
    series.append((noise, 1e8))
    series.append(({**noise, "namespace": "build-stuff", "cluster": "othercluster"}, 1e8))
    series.append(({**noise, "namespace": "build-stuff", "container": "POD", "image": "pause:3.9"}, 1e8))
    return series_ending_now("container_memory_working_set_bytes", series)


def seed_prometheus(prometheus_server: PrometheusFactory) -> PrometheusServer:
    """Prometheus answering the seed's query, with the basic auth of the seed's Secret."""
    data = build_stuff({BUILDER: 3, "node:20": 2, "golang:1.22": 1, ECR_IMAGE: 4})
    return prometheus_server(data, basic_auth=("admin", "my-prometheus-password"))


def events_about(kube_events: list[Obj], name: str) -> list[tuple[str, str, str]]:
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("note", ""))
        for e in kube_events
        if (e.get("regarding") or {}).get("name") == name
        and (e.get("regarding") or {}).get("kind") == "DiscoveryPolicy"
    ]


async def policy_events(kube: KubeClient, name: str) -> list[tuple[str, str, str]]:
    items, _ = await kube.list(EVENTS, namespace="default")
    return events_about(items, name)


def gauge(policy: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value("drop_discovery_images", {"policy": policy})
    return value


async def delete_policy(kube: KubeClient, name: str) -> None:
    await kube.delete(DISCOVERY_POLICIES, name)

    async def gone() -> bool:
        try:
            await kube.get(DISCOVERY_POLICIES, name)
        except ApiError as err:
            return err.not_found
        return False

    await eventually(gone, 30, f"{name} deleted")


async def test_seed_policy_applied_verbatim_then_pointed_at_a_real_prometheus(
    kube: KubeClient, operator: Operator, control_plane: LocalCluster, prometheus_server: PrometheusFactory
) -> None:
    await kube.delete(DISCOVERY_POLICIES, SEED_NAME)
    await eventually(lambda: gauge(SEED_NAME) is None, 10, "no leftover gauge")

    # 1. The seed exactly as documented: its endpoint does not resolve here. Reported, not a crash.
    control_plane.kubectl("apply", "-f", str(SEED))
    status = await eventually(lambda: synced(kube, SEED_NAME), 60, "the verbatim seed synced")
    entry = source(status, "prometheus-0")
    assert entry["healthy"] is False
    assert entry["reason"] == "DNSError"
    assert "mimir.example.com" in entry["lastError"]
    assert "my-prometheus-password" not in str(status)
    assert condition(status, "SourcesHealthy")["reason"] == "DNSError"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AllSourcesFailed")
    assert status.get("discoveredImages", []) == []

    # 2. The same seed with only the endpoint pointed at a real Prometheus (basic auth from the
    #    seed's Secret): a spec edit, so it syncs within seconds, not after the 1h interval.
    prometheus = seed_prometheus(prometheus_server)
    copy = SEED.read_text().replace(SEED_ENDPOINT, prometheus.url)
    assert copy.count(prometheus.url) == 1
    loop = asyncio.get_running_loop()
    edited = loop.time()
    control_plane.kubectl("apply", "-f", "-", input=copy)

    async def healthy() -> Obj | None:
        current = await synced(kube, SEED_NAME)
        return current if current and source(current, "prometheus-0").get("healthy") else None

    status = await eventually(healthy, 15, "the edited seed synced")
    assert loop.time() - edited < 15
    assert images(status) == [
        (BUILDER, 3.0),
        ("docker.io/library/node:20", 2.0),
        ("docker.io/library/golang:1.22", 1.0),
    ]
    assert [i["sources"] for i in status["discoveredImages"]] == [["prometheus-0"]] * 3
    assert status["imageCount"] == 3
    assert status["lastSyncTime"]
    entry = source(status, "prometheus-0")
    assert entry["imagesFound"] == 4
    assert {d["reason"]: d["count"] for d in entry["dropped"]} == {"ExcludedByImageFilter": 1}
    assert entry["lastSuccessTime"]
    for type_, reason in (("Ready", "Discovered"), ("SourcesHealthy", "AllSourcesHealthy")):
        cond = condition(status, type_)
        assert (cond["status"], cond["reason"]) == ("True", reason)
        assert cond["observedGeneration"] == status["observedGeneration"]
    assert gauge(SEED_NAME) == 3.0

    async def announced() -> list[tuple[str, str, str]]:
        found = await policy_events(kube, SEED_NAME)
        return found if any(r == "ImagesDiscovered" for _, r, _ in found) else []

    events = await eventually(announced, 15, "events recorded")
    (added,) = [note for _, reason, note in events if reason == "ImagesDiscovered"]
    assert added.startswith("+3 -0: added ")
    assert BUILDER in added and ECR_IMAGE not in added
    assert ("Warning", "SourceFailed") in {(t, r) for t, r, _ in events}

    await delete_policy(kube, SEED_NAME)
    await eventually(lambda: gauge(SEED_NAME) is None, 10, "gauge removed with the policy")


GITLAB_SEED = REPO_ROOT / "tests" / "data" / "seed" / "gitlab-helpers.yaml"
GITLAB_URL = "https://registry.gitlab.com"
HELPER = "gitlab-org/gitlab-runner/gitlab-runner-helper"


async def test_gitlab_helpers_seed_verbatim_then_against_a_token_auth_registry(
    kube: KubeClient, operator: Operator, control_plane: LocalCluster, registry_server: RegistryFactory
) -> None:
    name = "gitlab-helpers"
    await kube.delete(DISCOVERY_POLICIES, name)
    control_plane.kubectl("apply", "-f", str(GITLAB_SEED))
    status = await eventually(lambda: synced(kube, name), 60, "the verbatim seed synced")
    assert (source(status, "registry-0")["reason"], condition(status, "Ready")["reason"]) == (
        "DNSError",
        "AllSourcesFailed",
    )

    # Only the url changes: a registry that answers 401 with a Bearer challenge, like the real one.
    registry = registry_server(auth="token")
    tags = ["v16.11.4", "v17.5.0", "v17.10.1", "v17.9.0", "v17.10.0", "v17.6.2", "v17.10.1-rc1"]
    tags += ["x86_64-v17.10.1", "x86_64-bleeding", "bleeding", "latest", "v17.11"]
    registry.push_tags(HELPER, tags)
    control_plane.kubectl("apply", "-f", "-", input=GITLAB_SEED.read_text().replace(GITLAB_URL, registry.url))

    async def healthy() -> Obj | None:
        current = await synced(kube, name)
        return current if current and source(current, "registry-0").get("healthy") else None

    status = await eventually(healthy, 30, "the edited seed synced")
    newest = ["v17.10.1", "v17.10.0", "v17.9.0", "v17.6.2", "v17.5.0"]
    assert images(status) == [
        (f"registry.gitlab.com/{HELPER}:x86_64-{tag}", float(5 - i)) for i, tag in enumerate(newest)
    ]
    assert registry.token_server is not None
    assert registry.token_server.requests, "the Bearer challenge was followed through the token server"
    assert all(r.account is None for r in registry.token_server.requests)  # anonymous, as for public images
    assert condition(status, "Ready")["reason"] == "Discovered"
    await delete_policy(kube, name)


def two_source_policy(name: str, prometheus: PrometheusServer, registry_url: str) -> Obj:
    return {
        "apiVersion": DISCOVERY_POLICIES.api_version,
        "kind": DISCOVERY_POLICIES.kind,
        "metadata": {"name": name},
        "spec": {
            "interval": "1h",
            "topX": 10,
            "sources": [
                {
                    "type": "prometheus",
                    "name": "usage",
                    "prometheus": {
                        "endpoint": prometheus.url,
                        "query": QUERY,
                    },
                },
                {
                    "type": "registry",
                    "name": "helpers",
                    "registry": {
                        "url": registry_url,
                        "repositories": ["ci/helper"],
                        "tagFilter": r"^v\d+\.\d+\.\d+$",
                        "topX": 2,
                    },
                },
            ],
        },
    }


async def test_failing_sources_keep_their_last_known_good_images_across_restarts(
    kube: KubeClient,
    operator: Operator,
    prometheus_server: PrometheusFactory,
    registry_server: RegistryFactory,
) -> None:
    prometheus = prometheus_server(build_stuff({BUILDER: 3, "redis:7": 1}))
    registry = registry_server(auth="none")
    registry.push_tags("ci/helper", ["v1.0.0", "v1.10.0", "v1.9.0", "bleeding"])
    name = unique_name("two-sources")
    await kube.create(DISCOVERY_POLICIES, two_source_policy(name, prometheus, registry.url))

    everything = [
        (BUILDER, 3.0),
        (f"{registry.host}/ci/helper:v1.10.0", 2.0),
        (f"{registry.host}/ci/helper:v1.9.0", 1.0),
        ("docker.io/library/redis:7", 1.0),
    ]
    status = await eventually(lambda: synced(kube, name), 30, "first sync")
    assert images(status) == everything
    assert condition(status, "SourcesHealthy")["status"] == "True"

    # One source down: the other's fresh images and the broken one's last-known-good stay.
    registry.process.stop()
    status = await resync(kube, name)
    assert images(status) == everything
    helpers = source(status, "helpers")
    assert (helpers["healthy"], helpers["reason"]) == (False, "ConnectionError")
    assert len(helpers["images"]) == 2
    healthy = condition(status, "SourcesHealthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "ConnectionError")
    assert healthy["message"].startswith("1 of 2 sources failing: helpers: ConnectionError")
    assert "stale since " + helpers["lastSuccessTime"] in healthy["message"]
    assert "usage" not in healthy["message"]
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "PartiallyDiscovered")

    # The operator restarts while the registry is down: the status is the store, nothing is lost.
    await operator.restart()
    status = await resync(kube, name)
    assert images(status) == everything
    assert len(source(status, "helpers")["images"]) == 2

    # Every source down: the published list is kept exactly, and Ready says since when it is stale.
    prometheus.process.stop()
    before = status["discoveredImages"]
    status = await resync(kube, name)
    assert status["discoveredImages"] == before
    assert status["imageCount"] == 4
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AllSourcesFailed")
    assert "keeping the 4 images published at" in ready["message"]
    assert condition(status, "SourcesHealthy")["reason"] == "ConnectionError"

    await operator.restart()
    status = await resync(kube, name)
    assert status["discoveredImages"] == before

    # A warning per source when it started failing, not one per sync.
    events = await eventually(lambda: _failures(kube, name, 2), 15, "one SourceFailed event per source")
    assert sorted(note.split(":")[0] for note in events) == ["helpers", "usage"]

    # Prometheus comes back: its fresh answer replaces its stored one; the registry's stays.
    prometheus.start()
    status = await resync(kube, name)
    assert source(status, "usage")["healthy"] is True
    assert images(status) == everything
    assert condition(status, "Ready")["reason"] == "PartiallyDiscovered"
    await eventually(lambda: _recovered(kube, name), 15, "SourceRecovered event")
    await delete_policy(kube, name)


async def _recovered(kube: KubeClient, name: str) -> bool:
    return ("Normal", "SourceRecovered") in {(t, r) for t, r, _ in await policy_events(kube, name)}


async def _failures(kube: KubeClient, name: str, expected: int) -> list[str] | None:
    notes = [n for t, r, n in await policy_events(kube, name) if (t, r) == ("Warning", "SourceFailed")]
    return notes if len(notes) == expected else None


async def test_missing_secret_and_key_fail_only_that_source_with_a_precise_reason(
    kube: KubeClient, operator: Operator, prometheus_server: PrometheusFactory
) -> None:
    prometheus = prometheus_server(build_stuff({"redis:7": 2}), basic_auth=("reader", "pw-123"))
    open_prometheus = prometheus_server(build_stuff({"node:20": 1}))
    secret, name = unique_name("creds"), unique_name("secret-policy")
    query = QUERY
    await kube.create(
        DISCOVERY_POLICIES,
        {
            "apiVersion": DISCOVERY_POLICIES.api_version,
            "kind": DISCOVERY_POLICIES.kind,
            "metadata": {"name": name},
            "spec": {
                "interval": "1h",
                "sources": [
                    {
                        "type": "prometheus",
                        "prometheus": {"endpoint": prometheus.url, "query": query},
                        "secretRef": {"name": secret},
                    },
                    {"type": "prometheus", "prometheus": {"endpoint": open_prometheus.url, "query": query}},
                ],
            },
        },
    )
    status = await eventually(lambda: synced(kube, name), 30, "first sync")
    failing = source(status, "prometheus-0")
    assert failing["reason"] == "SecretNotFound"
    assert f"{OPERATOR_NAMESPACE}/{secret}" in failing["lastError"]
    assert images(status) == [("docker.io/library/node:20", 1.0)]

    # The failing source is retried on its own after the Secret floor (5 s), not in a tight loop.
    assert operator.reconciler is not None
    memory = operator.reconciler._memory.get(name)
    assert memory is not None
    attempted = datetime.fromisoformat(failing["lastSyncTime"].replace("Z", "+00:00"))
    assert memory.failures == {"prometheus-0": 1}
    assert (memory.retry_at["prometheus-0"] - attempted).total_seconds() == SECRET_RETRY_FLOOR
    await asyncio.sleep(3)  # an observation window: no further attempt may happen in it
    assert source(await status_of(kube, name), "prometheus-0")["lastSyncTime"] == failing["lastSyncTime"]
    assert memory.failures == {"prometheus-0": 1}

    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret, "namespace": OPERATOR_NAMESPACE},
        "stringData": {"password": "pw-123"},
    }
    await kube.create(SECRETS, body, OPERATOR_NAMESPACE)
    status = await resync(kube, name)
    assert source(status, "prometheus-0")["reason"] == "SecretKeyMissing"
    assert memory.failures == {"prometheus-0": 2}  # the next retry waits twice as long
    attempted = datetime.fromisoformat(source(status, "prometheus-0")["lastSyncTime"].replace("Z", "+00:00"))
    assert (memory.retry_at["prometheus-0"] - attempted).total_seconds() == 2 * SECRET_RETRY_FLOOR
    assert "pw-123" not in str(status)

    await kube.patch(SECRETS, secret, {"stringData": {"username": "reader"}}, OPERATOR_NAMESPACE)
    status = await resync(kube, name)  # read again on every sync: no restart, no Secret watch
    assert source(status, "prometheus-0")["healthy"] is True
    assert images(status) == [("docker.io/library/redis:7", 2.0), ("docker.io/library/node:20", 1.0)]
    await kube.delete(SECRETS, secret, OPERATOR_NAMESPACE)
    await delete_policy(kube, name)


async def test_idle_policy_writes_nothing_between_syncs(
    kube: KubeClient,
    operator: Operator,
    prometheus_server: PrometheusFactory,
    policy_writes: Callable[[], float],
) -> None:
    prometheus = prometheus_server(build_stuff({"redis:7": 2}))
    name = unique_name("idle")
    body = {
        "apiVersion": DISCOVERY_POLICIES.api_version,
        "kind": DISCOVERY_POLICIES.kind,
        "metadata": {"name": name},
        "spec": {
            "interval": "1h",
            "sources": [
                {
                    "type": "prometheus",
                    "prometheus": {
                        "endpoint": prometheus.url,
                        "query": QUERY,
                    },
                }
            ],
        },
    }
    await kube.create(DISCOVERY_POLICIES, body)
    await eventually(lambda: synced(kube, name), 30, "first sync")
    await asyncio.sleep(1)  # let the informer see the status write before counting
    writes = policy_writes()
    syncs = sum(
        REGISTRY.get_sample_value("drop_discovery_sync_total", {"result": r}) or 0.0
        for r in ("success", "partial", "failed", "invalid")
    )
    first = await status_of(kube, name)

    # A metadata-only change and many informer resyncs (every 0.5 s) during the window: no sync, no write.
    await kube.patch(DISCOVERY_POLICIES, name, {"metadata": {"annotations": {"touched": "yes"}}})
    await asyncio.sleep(6)  # the observation window itself: nothing may happen in it
    assert policy_writes() - writes == 1.0  # only the annotation patch above
    after = sum(
        REGISTRY.get_sample_value("drop_discovery_sync_total", {"result": r}) or 0.0
        for r in ("success", "partial", "failed", "invalid")
    )
    assert after == syncs
    assert await status_of(kube, name) == first
    await delete_policy(kube, name)


async def test_interval_syncs_again_after_its_own_jittered_interval(
    kube: KubeClient, operator: Operator, prometheus_server: PrometheusFactory
) -> None:
    prometheus = prometheus_server(build_stuff({"redis:7": 2}))
    name = unique_name("interval")
    body = {
        "apiVersion": DISCOVERY_POLICIES.api_version,
        "kind": DISCOVERY_POLICIES.kind,
        "metadata": {"name": name},
        "spec": {
            "interval": "30s",
            "sources": [{"type": "prometheus", "prometheus": {"endpoint": prometheus.url, "query": QUERY}}],
        },
    }
    await kube.create(DISCOVERY_POLICIES, body)
    first = await eventually(lambda: synced(kube, name), 30, "first sync")
    expected = jittered_interval(name, 30.0)
    assert 27.0 <= expected <= 33.0

    async def next_sync() -> Obj | None:
        status = await status_of(kube, name)
        return status if status.get("lastSyncTime") != first["lastSyncTime"] else None

    second = await eventually(next_sync, expected + 15, "the interval's sync", interval=0.5)
    elapsed = (_time(second["lastSyncTime"]) - _time(first["lastSyncTime"])).total_seconds()
    # lastSyncTime has one-second resolution; the requeue fires no earlier than the interval.
    assert expected - 1 <= elapsed <= expected + 5
    assert images(second) == [("docker.io/library/redis:7", 2.0)]
    await delete_policy(kube, name)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
