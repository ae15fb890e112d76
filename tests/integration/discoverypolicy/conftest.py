"""The discovery reconciler running in-process against the session's real control plane.

Each test gets its own :class:`Operator` (a Manager with leader election off, fast informer
resyncs, no probe server), so a test can stop and restart it. Secrets live in ``drop-system`` as in
the product docs. Sources are real servers: Prometheus and an OCI registry on loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devtools.localcluster import LocalCluster
from drop_operator.controllers.discoverypolicy import DiscoveryReconciler, setup
from drop_operator.controllers.kinds import DISCOVERY_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import NAMESPACES
from tests.infra.operator import InProcessOperator
from tests.infra.waiting import eventually

Obj = dict[str, Any]

OPERATOR_NAMESPACE = "drop-system"
#: Informer resync period of the test operator: many resyncs happen during an idle window.
RESYNC = 0.5


class Operator(InProcessOperator[DiscoveryReconciler]):
    """The discovery reconciler in a Manager of its own; start/stop at will."""

    def __init__(self, client: KubeClient, *, grace_period: float = 5.0) -> None:
        super().__init__(
            client,
            setup,
            OperatorSettings(namespace=OPERATOR_NAMESPACE, workers=2),
            resync_period=RESYNC,
            grace_period=grace_period,
        )


@pytest_asyncio.fixture
async def operator_namespace(kube: KubeClient) -> str:
    with contextlib.suppress(ApiError):
        await kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
        )
    return OPERATOR_NAMESPACE


@pytest_asyncio.fixture
async def operator(kube: KubeClient, crds: Path, operator_namespace: str) -> AsyncIterator[Operator]:
    op = Operator(kube)
    await op.start()
    try:
        yield op
    finally:
        await op.stop()


# -- reading policies ------------------------------------------------------------------------------


async def status_of(kube: KubeClient, name: str) -> Obj:
    obj = await kube.get(DISCOVERY_POLICIES, name)
    status: Obj = obj.get("status") or {}
    return status


def source(status: Obj, name: str) -> Obj:
    for entry in status.get("sources") or []:
        if entry["name"] == name:
            return dict(entry)
    return {}


def images(status: Obj) -> list[tuple[str, float]]:
    return [(i["image"], i["score"]) for i in status.get("discoveredImages") or []]


async def synced(kube: KubeClient, name: str) -> Obj | None:
    """The status once it reflects the current generation, else None."""
    obj = await kube.get(DISCOVERY_POLICIES, name)
    status: Obj = obj.get("status") or {}
    return status if status.get("observedGeneration") == obj["metadata"]["generation"] else None


async def resync(kube: KubeClient, name: str) -> Obj:
    """Make the policy sync now by a harmless spec edit (topX + 1), and return the new status."""
    obj = await kube.get(DISCOVERY_POLICIES, name)
    await kube.patch(DISCOVERY_POLICIES, name, {"spec": {"topX": obj["spec"].get("topX", 50) + 1}})
    status: Obj = await eventually(lambda: synced(kube, name), 30, f"{name} synced after a spec edit")
    return status


# -- counting writes at the API server ---------------------------------------------------------------

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}


def discovery_policy_writes(cluster: LocalCluster) -> float:
    """Sum of ``apiserver_request_total`` for write verbs on discoverypolicies (any subresource)."""
    return sum(
        value
        for labels, value in cluster.apiserver_requests()
        if labels.get("resource") == "discoverypolicies" and labels.get("verb") in WRITE_VERBS
    )


@pytest.fixture
def policy_writes(control_plane: LocalCluster) -> Callable[[], float]:
    return lambda: discovery_policy_writes(control_plane)
