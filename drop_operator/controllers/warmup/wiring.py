"""Wiring of the warm-up controller into a :class:`~drop_operator.runtime.manager.Manager`.

Every trigger goes through the controller's watch API:

* Nodes (adds, and changes of taints or labels) reconcile themselves;
* CachedImages with ``warmUp`` (any change, also of a version-1 cached-nodes annotation, which is
  not a spec change) reconcile the nodes carrying their warming taint, found by an index;
* the images' records (ConfigMaps saying which nodes hold each image) do the same for the image
  that owns them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drop_operator.controllers.common import nodecache
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.controllers.warmup.cachefields import NODE_FIELDS
from drop_operator.controllers.warmup.reconciler import (
    IMAGES_BY_WARMING_TAINT,
    NODES_BY_TAINT_KEY,
    WarmUpReconciler,
    warming_taint_of,
)
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.resources import CONFIG_MAPS, NODES, object_key

__all__ = ["CONTROLLER_NAME", "gates_warm_up", "setup", "taints_or_labels_changed"]

CONTROLLER_NAME = "warmup"

Obj = dict[str, Any]


def _taint_keys(node: Obj) -> Iterable[str]:
    return {str(t.get("key")) for t in (node.get("spec") or {}).get("taints") or ()}


def _warming_taint(image: Obj) -> Iterable[str]:
    key = warming_taint_of(image)
    return (key,) if key else ()


def taints_or_labels_changed(old: Obj | None, new: Obj) -> bool:
    """Predicate on Nodes: added, or changed in taints or labels (not heartbeats)."""
    if old is None:
        return True
    return (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints") or (
        (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
    )


def gates_warm_up(old: Obj | None, new: Obj) -> bool:
    """Predicate on CachedImages: the image has (or had) ``warmUp``."""
    return warming_taint_of(new) is not None or (old is not None and warming_taint_of(old) is not None)


def setup(manager: Manager, settings: OperatorSettings) -> WarmUpReconciler:
    """Register the informers, indexes, watches and the controller; returns the reconciler."""
    nodes = manager.informer(NODES, fields=NODE_FIELDS)
    images = manager.informer(CACHED_IMAGES)
    records = manager.informer(
        CONFIG_MAPS, namespace=settings.namespace, label_selector=nodecache.RECORD_SELECTOR
    )
    nodes.ensure_index(NODES_BY_TAINT_KEY, _taint_keys)
    images.ensure_index(IMAGES_BY_WARMING_TAINT, _warming_taint)
    reconciler = WarmUpReconciler(
        manager.client,
        nodes=nodes,
        images=images,
        records=records,
        namespace=settings.namespace,
        recorder=manager.event_recorder("drop-operator-warmup"),
    )
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=settings.workers)
    controller.watch_for(nodes, predicates=(taints_or_labels_changed,))

    def warming_nodes(image: Obj) -> list[str]:
        key = warming_taint_of(image)
        return [object_key(n) for n in nodes.by_index(NODES_BY_TAINT_KEY, key)] if key else []

    controller.watch_mapped(images, warming_nodes, predicates=(gates_warm_up,))

    def record_of_gate(record: Obj) -> list[str]:
        owners = (record.get("metadata") or {}).get("ownerReferences") or ()
        found = (images.get(str(o.get("name"))) for o in owners if o.get("kind") == CACHED_IMAGES.kind)
        return [node for image in found if image is not None for node in warming_nodes(image)]

    controller.watch_mapped(records, record_of_gate)
    return reconciler
