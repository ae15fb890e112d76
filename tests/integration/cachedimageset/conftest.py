"""The image-set reconciler running in-process against the session's real control plane.

Each test gets its own :class:`Operator` (a Manager with leader election off, short informer
resyncs, no probe server), so a test can stop and restart it. The DiscoveryPolicy's status is
written directly, standing in for the discovery reconciler: the set reconciler only reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from devtools.localcluster import LocalCluster
from drop_operator.api.cachedimageset import CACHED_IMAGE_SET_LABEL
from drop_operator.controllers.cachedimageset import setup
from drop_operator.controllers.kinds import CACHED_IMAGE_SETS, CACHED_IMAGES, DISCOVERY_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import KubeClient, Manager
from drop_operator.runtime.informer import Informer
from tests.infra.operator import InProcessOperator, running_fixture

Obj = dict[str, Any]

#: Informer resync period of the test operator: several resyncs fit in a few seconds.
RESYNC = 1.0


class Operator(InProcessOperator[None]):
    """The image-set reconciler in a Manager of its own; records every child its informer adds."""

    def __init__(
        self, client: KubeClient, *, grace_period: float = 5.0, resync_period: float | None = RESYNC
    ) -> None:
        super().__init__(
            client,
            setup,
            OperatorSettings(namespace="default", workers=2),
            resync_period=resync_period,
            grace_period=grace_period,
        )
        self.added: list[Obj] = []

    @property
    def children(self) -> Informer:
        assert self.manager is not None
        return self.manager.informer(CACHED_IMAGES)

    def started(self, manager: Manager) -> None:
        self.added = []
        self.children.add_handler(on_add=self.added.append)

    def added_names(self, set_name: str) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in self.added
            if (o["metadata"].get("labels") or {}).get(CACHED_IMAGE_SET_LABEL) == set_name
        ]


operator = running_fixture("operator", lambda kube, crds: Operator(kube))


# -- objects ---------------------------------------------------------------------------------------


def policy_body(name: str) -> Obj:
    return {
        "apiVersion": DISCOVERY_POLICIES.api_version,
        "kind": DISCOVERY_POLICIES.kind,
        "metadata": {"name": name},
        "spec": {
            "interval": "1h",
            "topX": 1000,
            "sources": [
                {"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9", "query": "up"}}
            ],
        },
    }


def healthy_conditions(ready: str = "True", sources: str = "True", message: str = "") -> list[Obj]:
    return [
        {
            "type": "Ready",
            "status": ready,
            "reason": "Synced" if ready == "True" else "AllSourcesFailed",
            "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        },
        {
            "type": "SourcesHealthy",
            "status": sources,
            "reason": "AllHealthy" if sources == "True" else "Timeout",
            "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        },
    ]


async def publish(
    kube: KubeClient, policy: str, images: Iterable[str], *, conditions: list[Obj] | None = None
) -> Obj:
    """Write the policy's status as the discovery reconciler would."""
    current = await kube.get(DISCOVERY_POLICIES, policy)
    listed = list(images)
    return await kube.patch_status(
        DISCOVERY_POLICIES,
        policy,
        {
            "status": {
                "observedGeneration": current["metadata"]["generation"],
                "lastSyncTime": "2026-01-01T00:00:00Z",
                "imageCount": len(listed),
                "discoveredImages": [
                    {"image": image, "score": float(len(listed) - i), "sources": ["prometheus-0"]}
                    for i, image in enumerate(listed)
                ],
                "conditions": conditions if conditions is not None else healthy_conditions(),
            }
        },
    )


def set_body(name: str, *, policy: str | None = None, images: Iterable[str] = (), **template: Any) -> Obj:
    spec: Obj = {"images": list(images), **template}
    if policy is not None:
        spec["discoveryPolicyRef"] = {"name": policy}
    return {
        "apiVersion": CACHED_IMAGE_SETS.api_version,
        "kind": CACHED_IMAGE_SETS.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


async def children_of(kube: KubeClient, set_name: str) -> list[Obj]:
    items, _ = await kube.list(CACHED_IMAGES, label_selector=f"{CACHED_IMAGE_SET_LABEL}={set_name}")
    return items


def reference(child: Obj) -> str:
    spec = child["spec"]
    return f"{spec['image']}@{spec['digest']}" if spec.get("digest") else f"{spec['image']}:{spec['tag']}"


async def status_of(kube: KubeClient, set_name: str) -> Obj:
    obj = await kube.get(CACHED_IMAGE_SETS, set_name)
    status: Obj = obj.get("status") or {}
    return status


# -- counting writes at the API server ---------------------------------------------------------------

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}


def apiserver_writes(cluster: LocalCluster, resources: set[str]) -> dict[tuple[str, str, str], float]:
    """``apiserver_request_total`` for write verbs on drop's group, by (verb, resource, subresource)."""
    out: dict[tuple[str, str, str], float] = {}
    for labels, value in cluster.apiserver_requests():
        if labels.get("group") != "drop.corewire.io" or labels.get("verb") not in WRITE_VERBS:
            continue
        if labels.get("resource") not in resources:
            continue
        key = (labels["verb"], labels["resource"], labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + value
    return out


@pytest.fixture
def write_counter(control_plane: LocalCluster) -> Callable[[], dict[tuple[str, str, str], float]]:
    return lambda: apiserver_writes(control_plane, {"cachedimages", "cachedimagesets"})
