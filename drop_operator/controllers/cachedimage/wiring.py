"""Wiring of the CachedImage reconciler into a :class:`~drop_operator.runtime.manager.Manager`.

Every trigger goes through the controller's watch API:

* CachedImages (spec changes, adds, deletes) reconcile themselves;
* pull pods (operator namespace, ``app.kubernetes.io/managed-by=drop-operator``) reconcile their
  controlling CachedImage, and a pull that ends wakes the images waiting for room in its pool;
* Node adds, deletes and updates that change what target selection or caching looks at (labels,
  taints, cordon, readiness, reported images; not heartbeats) reconcile every image, and the queue
  deduplicates;
* PullPolicy changes reconcile the images that reference the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drop_operator.controllers.cachedimage.cachefields import NODE_FIELDS, POD_FIELDS
from drop_operator.controllers.cachedimage.nodes import node_fingerprint
from drop_operator.controllers.cachedimage.pullpods import is_active
from drop_operator.controllers.cachedimage.reconciler import (
    IMAGES_BY_POOL,
    OWNER_INDEX,
    POOL_INDEX,
    CachedImageReconciler,
    image_pool,
    is_pull_pod,
    pool_label,
)
from drop_operator.controllers.common import (
    IMAGES_BY_PULL_POLICY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    controller_uid,
    meta,
    pull_policy_of,
)
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed
from drop_operator.runtime.resources import NODES, PODS, object_key

__all__ = ["CONTROLLER_NAME", "POD_SELECTOR", "node_changed", "pull_ended", "setup"]

CONTROLLER_NAME = "cachedimage"
POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

Obj = dict[str, Any]


def _owner_uid(pod: Obj) -> Iterable[str]:
    uid = controller_uid(pod, CACHED_IMAGES.kind)
    return (uid,) if uid else ()


def _pool_of_pod(pod: Obj) -> Iterable[str]:
    return (pool_label(pod),) if is_pull_pod(pod) else ()


def _pool_of_image(image: Obj) -> Iterable[str]:
    return (image_pool(image),)


def pull_ended(old: Obj | None, new: Obj) -> bool:
    """Predicate on pull pods: a pull finished (update to a final phase) or its pod went away."""
    if not is_pull_pod(new):
        return False
    return old is None or (is_active(old) and not is_active(new))


def node_changed(old: Obj | None, new: Obj) -> bool:
    """Predicate on Nodes: added, deleted, or changed in what targeting looks at (not heartbeats)."""
    return old is None or node_fingerprint(old) != node_fingerprint(new)


def setup(manager: Manager, settings: OperatorSettings) -> CachedImageReconciler:
    """Register the informers, indexes, watches and the controller; returns the reconciler."""
    images = manager.informer(CACHED_IMAGES)
    policies = manager.informer(PULL_POLICIES)
    nodes = manager.informer(NODES, fields=NODE_FIELDS)
    pods = manager.informer(
        PODS, namespace=settings.namespace, label_selector=POD_SELECTOR, fields=POD_FIELDS
    )
    pods.ensure_index(OWNER_INDEX, _owner_uid)
    pods.ensure_index(POOL_INDEX, _pool_of_pod)
    images.ensure_index(IMAGES_BY_PULL_POLICY, pull_policy_of)
    images.ensure_index(IMAGES_BY_POOL, _pool_of_image)

    reconciler = CachedImageReconciler(
        manager.client,
        settings,
        images=images,
        policies=policies,
        nodes=nodes,
        pods=pods,
        recorder=manager.event_recorder("drop-operator-cachedimage"),
    )
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=max(2, settings.workers))
    controller.watch_for(images, predicates=(generation_changed,))
    controller.watch_owned(pods, CACHED_IMAGES.kind)
    # Adds never end a pull; updates and deletes may free room in the pod's pool.
    controller.watch_mapped(
        pods, reconciler.take_waiting, predicates=(pull_ended,), events=("update", "delete")
    )
    controller.watch_mapped(nodes, reconciler.nodes_changed, predicates=(node_changed,))
    controller.watch_mapped(
        policies,
        lambda policy: [object_key(i) for i in images.by_index(IMAGES_BY_PULL_POLICY, meta(policy).name)],
    )
    return reconciler
