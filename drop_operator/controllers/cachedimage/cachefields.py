"""The fields of Nodes and pull pods the node-caching reconciler reads: all its informers keep.

Nodes are the largest objects an operator caches (a kubelet reports up to 50 images, each with up
to five names, plus conditions with heartbeats, addresses, capacity, system info), and every node
of the cluster is cached. Each path below names the code that reads it; a new read of a Node or a
pull pod outside these paths sees the field as absent, and ``tests/unit/controllers/
test_cachefields.py`` runs the readers on whole and on projected objects to catch that.
Identity fields (name, uid, resourceVersion, generation, deletionTimestamp...) are always kept
(:data:`~drop_operator.runtime.transform.IDENTITY`).
"""

from __future__ import annotations

from drop_operator.runtime.transform import Fields

__all__ = ["NODE_FIELDS", "POD_FIELDS"]

NODE_FIELDS = Fields(
    # nodes.is_target, node_fingerprint, runs_platform (os/arch labels), the node selector
    "metadata.labels",
    # nodes.is_target: cordon and the taints that exclude; decide.warming_nodes: warming taints
    "spec.unschedulable",
    "spec.taints",
    # nodes.readiness: the Ready condition's status, and whether the node reported any condition
    "status.conditions[].type",
    "status.conditions[].status",
    # nodes.node_images, imagelist.image_listing / listed_size: names and sizes of listed images
    "status.images[].names",
    "status.images[].sizeBytes",
)
"""What :mod:`.nodes`, :mod:`.imagelist` and :mod:`.decide` read of a Node."""

POD_FIELDS = Fields(
    # is_pull_pod, pool_label (labels); pull pod parsing (annotations: node, reference);
    # watch_owned and the owner index (ownerReferences); PullPod.created (creationTimestamp)
    "metadata.labels",
    "metadata.annotations",
    "metadata.ownerReferences",
    "metadata.creationTimestamp",
    # pullpods.pod_node before the annotation: the node the pod was bound to
    "spec.nodeName",
    # pullpods.outcome: phase, the pod's failure reason and message, the containers' states
    "status.phase",
    "status.reason",
    "status.message",
    "status.containerStatuses[].name",
    "status.containerStatuses[].imageID",
    "status.containerStatuses[].state",
    "status.initContainerStatuses[].name",
    "status.initContainerStatuses[].state",
)
"""What :mod:`.pullpods` and the reconciler read of a pull pod."""
