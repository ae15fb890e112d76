"""Wiring of the CachedImage reconciler into a :class:`~drop_operator.runtime.manager.Manager`.

Every trigger goes through the controller's watch API:

* CachedImages (spec changes, adds, deletes) reconcile themselves;
* pull pods (operator namespace, ``app.kubernetes.io/managed-by=drop-operator``) reconcile their
  controlling CachedImage when their pull ends (or a pod the cache saw finished appears); the
  image's pass hands the room it does not use to the images waiting in the pool, and a pull whose
  image is gone wakes them directly;
* Node adds, deletes and updates feed the reconciler's :class:`~.targetindex.TargetIndex`, and
  reconcile only the images the change concerns: those whose targeting class gained or lost the
  node (labels, taints, cordon, readiness), or whose names the node's image list gained or lost.
  Heartbeats and nodes no image targets reconcile nothing;
* PullPolicy changes reconcile the images that reference the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drop_operator.controllers.cachedimage.cachefields import NODE_FIELDS, POD_FIELDS
from drop_operator.controllers.cachedimage.nodes import node_fingerprint
from drop_operator.controllers.cachedimage.pullpods import is_active
from drop_operator.controllers.cachedimage.reconciler import (
    ACTIVE_POOL_INDEX,
    IMAGES_BY_POOL,
    OWNER_INDEX,
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
    nodecache,
    pull_policy_of,
)
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.controller import EventType
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed
from drop_operator.runtime.resources import CONFIG_MAPS, NODES, PODS, object_key

__all__ = ["CONTROLLER_NAME", "POD_SELECTOR", "node_changed", "pull_changed", "pull_ended", "setup"]

CONTROLLER_NAME = "cachedimage"
DELETES: tuple[EventType, ...] = ("delete",)
POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

Obj = dict[str, Any]


def _owner_uid(pod: Obj) -> Iterable[str]:
    uid = controller_uid(pod, CACHED_IMAGES.kind)
    return (uid,) if uid else ()


def _active_pool_of_pod(pod: Obj) -> Iterable[str]:
    return (pool_label(pod),) if is_pull_pod(pod) and is_active(pod) else ()


def _pool_of_image(image: Obj) -> Iterable[str]:
    return (image_pool(image),)


def is_active_pod(_old: Obj | None, pod: Obj) -> bool:
    """Predicate: a pull pod in flight (on a delete: deleted before its pull ended)."""
    return is_pull_pod(pod) and is_active(pod)


def pull_ended(old: Obj | None, new: Obj) -> bool:
    """Predicate on pull pods: a pull finished (update to a final phase) or its pod went away."""
    if not is_pull_pod(new):
        return False
    return old is None or (is_active(old) and not is_active(new))


def pull_changed(old: Obj | None, new: Obj) -> bool:
    """Predicate on pull pods for their own image: the pull ended (or came back), or a pod appears
    already finished (created while the watch was down). Scheduling and the pod's deletion after
    its result was stored change nothing a pass decides."""
    if not is_pull_pod(new):
        return False
    if old is None:
        return not is_active(new)
    return is_active(old) != is_active(new)


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
    records = manager.informer(
        CONFIG_MAPS, namespace=settings.namespace, label_selector=nodecache.RECORD_SELECTOR
    )
    pods.ensure_index(OWNER_INDEX, _owner_uid)
    pods.ensure_index(ACTIVE_POOL_INDEX, _active_pool_of_pod)
    images.ensure_index(IMAGES_BY_PULL_POLICY, pull_policy_of)
    images.ensure_index(IMAGES_BY_POOL, _pool_of_image)

    reconciler = CachedImageReconciler(
        manager.client,
        settings,
        images=images,
        policies=policies,
        nodes=nodes,
        pods=pods,
        records=records,
        recorder=manager.event_recorder("drop-operator-cachedimage"),
    )
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=max(2, settings.workers))
    controller.watch_for(images, predicates=(generation_changed,))
    controller.watch_trigger(reconciler.wake)
    controller.watch_owned(pods, CACHED_IMAGES.kind, predicates=(pull_changed,), events=("add", "update"))
    # A pod deleted while it still counted (by someone else): its image pulls there again.
    controller.watch_owned(pods, CACHED_IMAGES.kind, predicates=(is_active_pod,), events=DELETES)
    # Adds never end a pull; updates and deletes may free room in the pod's pool.
    controller.watch_mapped(
        pods, reconciler.take_waiting, predicates=(pull_ended,), events=("update", "delete")
    )
    controller.watch_mapped(nodes, reconciler.node_event, predicates=(node_changed,))
    controller.watch_mapped(
        policies,
        lambda policy: [object_key(i) for i in images.by_index(IMAGES_BY_PULL_POLICY, meta(policy).name)],
        predicates=(generation_changed,),  # spec, add, delete: not its status (imagesUsing) moving
    )
    return reconciler
