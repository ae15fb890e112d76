"""CachedImage -> paced pull pods on the target nodes.

:func:`setup` wires the reconciler into a :class:`~drop_operator.runtime.manager.Manager`:

* CachedImages (spec changes, adds, deletes) reconcile themselves;
* pull pods (operator namespace, ``app.kubernetes.io/managed-by=drop-operator``) reconcile their
  controlling CachedImage, and a pull that ends wakes the images waiting for room in its pool;
* Node adds, deletes and updates that change what target selection or caching looks at (labels,
  taints, cordon, readiness, reported images; not heartbeats) reconcile every image, and the queue
  deduplicates;
* PullPolicy changes reconcile the images that reference the policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from drop_operator.controllers.cachedimage.nodes import node_fingerprint
from drop_operator.controllers.cachedimage.policystatus import CONTROLLER_NAME as POLICY_STATUS_CONTROLLER
from drop_operator.controllers.cachedimage.policystatus import PullPolicyStatusReconciler
from drop_operator.controllers.cachedimage.pullpods import LABEL_POOL, is_active
from drop_operator.controllers.cachedimage.reconciler import (
    OWNER_INDEX,
    POLICY_INDEX,
    POOL_INDEX,
    CachedImageReconciler,
    is_pull_pod,
)
from drop_operator.controllers.common import LABEL_MANAGED_BY, MANAGED_BY, controller_uid
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed
from drop_operator.runtime.resource import object_key
from drop_operator.runtime.resources import NODES, PODS

__all__ = ["CONTROLLER_NAME", "POD_SELECTOR", "setup"]

CONTROLLER_NAME = "cachedimage"
POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

Obj = dict[str, Any]


def _ensure_index(informer: Informer, name: str, fn: Callable[[Obj], Iterable[str]]) -> None:
    # Informers are shared: another setup on this manager may have added it already.
    with contextlib.suppress(ValueError):
        informer.add_index(name, fn)


def _owner_uid(pod: Obj) -> Iterable[str]:
    uid = controller_uid(pod, CACHED_IMAGES.kind)
    return (uid,) if uid else ()


def _pool_label(pod: Obj) -> Iterable[str]:
    if not is_pull_pod(pod):
        return ()
    return (str(((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_POOL, "")),)


def _policy_ref(image: Obj) -> Iterable[str]:
    name = ((image.get("spec") or {}).get("pullPolicyRef") or {}).get("name")
    return (str(name),) if name else ()


def setup(manager: Manager, settings: OperatorSettings) -> CachedImageReconciler:
    """Register the informers, indexes, handlers and the controller; returns the reconciler."""
    images = manager.informer(CACHED_IMAGES)
    policies = manager.informer(PULL_POLICIES)
    nodes = manager.informer(NODES)
    pods = manager.informer(PODS, namespace=settings.namespace, label_selector=POD_SELECTOR)
    _ensure_index(pods, OWNER_INDEX, _owner_uid)
    _ensure_index(pods, POOL_INDEX, _pool_label)
    _ensure_index(images, POLICY_INDEX, _policy_ref)

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
    reconciler.enqueue = controller.enqueue

    controller.watch_for(images, predicates=(generation_changed,))
    controller.watch_owned(pods, "CachedImage")

    def pod_ended(old: Obj, new: Obj) -> None:
        if is_pull_pod(new) and is_active(old) and not is_active(new):
            reconciler.wake_pool(new)

    def pod_deleted(pod: Obj) -> None:
        if is_pull_pod(pod):
            reconciler.wake_pool(pod)

    pods.add_handler(on_add=reconciler.on_pod_seen, on_update=pod_ended, on_delete=pod_deleted)

    def all_images() -> list[str]:
        return [object_key(obj) for obj in images.list()]

    def node_changed(old: Obj, new: Obj) -> None:
        if node_fingerprint(old) != node_fingerprint(new):
            for key in all_images():
                controller.enqueue(key)

    def node_added_or_deleted(_node: Obj) -> None:
        for key in all_images():
            controller.enqueue(key)

    nodes.add_handler(on_add=node_added_or_deleted, on_update=node_changed, on_delete=node_added_or_deleted)
    controller.watch_mapped(
        policies,
        lambda policy: [
            object_key(i) for i in images.by_index(POLICY_INDEX, str(policy["metadata"]["name"]))
        ],
    )

    usage = PullPolicyStatusReconciler(manager.client, policies=policies, images=images)
    usage_controller = manager.controller(POLICY_STATUS_CONTROLLER, usage.reconcile, workers=1)
    usage_controller.watch_for(policies, predicates=(generation_changed,))
    usage_controller.watch_mapped(images, _policy_ref)
    return reconciler
